"""soketi's rate limiter answering 429: every trigger retried within its timeout, delivered once.

application -> local engine -> real service process -> soketi with
``SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC`` set low. soketi 1.6.1 counts each event of a
batch and sends no ``Retry-After`` with its 429, so the service's backoff decides the pauses, and
with coalescing on a batch larger than the limit must be split to pass. A real WebSocket
subscriber counts what was published.
"""

from __future__ import annotations

import re
from collections import Counter

import aiohttp
import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, received_numbers, run, trigger_many
from tests.support.fixtures import SoketiFactory
from tests.support.pusher_ws import PusherWS
from tests.support.soketi import free_port
from tests.support.stack import running_stack

LIMIT = 4  # events per second, for the whole app
TRIGGERS = 30


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as got:
        return await got.text()


def sample(text: str, name: str) -> float:
    """One sample of the service's /metrics (0 if absent); ``name`` with its labels."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("coalesce", ["true", "false"])
async def test_a_burst_over_the_limit_is_retried_and_each_trigger_delivered_once(
    soketi_factory: SoketiFactory, coalesce: str
) -> None:
    limited = soketi_factory(env={"SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC": str(LIMIT)})
    metrics = free_port()
    env = {"PUSHER_COALESCE": coalesce, "PUSHER_TIMEOUT": "60000", "MESG_PUSHER_METRICS_PORT": str(metrics)}
    with running_stack(limited, env=env) as stack:
        name = channel("limited")
        async with Application.connect(stack.engine.endpoint) as app, PusherWS(limited.ws_url()) as ws:
            await ws.subscribe(name)
            instance = await app.resolve("com.mesg.pusher")
            results = await trigger_many(app, instance, name, TRIGGERS, window=TRIGGERS, timeout=120)
            assert [r.error for r in results if not r.ok] == []  # every execution completed
            seen = await received_numbers(ws, name, TRIGGERS)
            assert seen == Counter(range(TRIGGERS)), seen  # each delivered, and only once
            figures = await scrape(metrics)
            # The limit was reached: triggers were refused, and sent again.
            assert sample(figures, 'mesg_pusher_pusher_requests_total{status="429"}') > 0, figures
            if coalesce == "true":
                # Calls carried more events than the limit allows at once: only split could they pass.
                calls = sample(figures, "mesg_pusher_pusher_events_per_call_count")
                within = sample(figures, f'mesg_pusher_pusher_events_per_call_bucket{{le="{LIMIT:.1f}"}}')
                assert calls - within > 0, figures


async def test_a_batch_the_limit_never_lets_through_fails_with_the_code_when_the_time_is_up(
    soketi_factory: SoketiFactory,
) -> None:
    """``triggerBatch`` sends its events in one call, as asked: 5 events against a limit of 1
    a second is refused every time, and the execution ends within its timeout with the code."""
    limited = soketi_factory(env={"SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC": "1"})
    with running_stack(limited) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            batch = [{"channel": channel(), "name": "e", "data": str(i)} for i in range(5)]
            result = await run(app, instance, "triggerBatch", {"batch": batch, "timeout": 2000})
    assert result.status == "Failed", result.outputs
    error = result.error or ""
    assert error.startswith("pusher_rate_limited 429: Pusher answered HTTP 429: "), error
    assert "Too many requests" in error and "within 2 s" in error, error
