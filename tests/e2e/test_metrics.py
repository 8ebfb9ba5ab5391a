"""``MESG_PUSHER_METRICS_PORT``: /metrics scraped over HTTP and checked against what was done, /healthz.

Everything is real: the service process, the local engine, soketi with its webhooks, a
WebSocket subscriber; the exposition is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.metrics import Samples, value
from tests.support.metrics import scrape as support_scrape
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.pusher_ws import PusherWS
from tests.support.relay import TcpProxy
from tests.support.soketi import Soketi, free_port
from tests.support.stack import Stack, running_stack

METRICS_PORT = free_port()
WEBHOOK_PORT = free_port()
LISTENED = channel("metrics")

async def scrape(port: int = METRICS_PORT) -> Samples:
    return await support_scrape(port)


async def healthz(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def mstack() -> Iterator[Stack]:
    """The service with metrics on, listening to one channel and taking soketi's webhooks."""
    server = Soketi(
        webhooks=[{"url": f"http://127.0.0.1:{WEBHOOK_PORT}/webhook", "event_types": ["channel_occupied"]}]
    ).start()
    env = {
        "MESG_PUSHER_METRICS_PORT": str(METRICS_PORT),
        "PUSHER_SUBSCRIBE": LISTENED,
        "PUSHER_WEBHOOK_PORT": str(WEBHOOK_PORT),
    }
    try:
        with running_stack(server, env=env) as stack:
            stack.service.wait_for_log("health and metrics on")
            yield stack
    finally:
        server.stop()


@pytest.fixture
async def mapp(mstack: Stack) -> AsyncIterator[Application]:
    async with Application.connect(mstack.engine.endpoint) as application:
        yield application


async def test_metrics_count_what_was_done(mstack: Stack, mapp: Application) -> None:
    instance = await mapp.resolve("com.mesg.pusher")
    before = await scrape()
    published = channel("metrics-batch")
    for i in range(12):  # on the listened channel: each also comes back as a `received` event
        assert (await run(mapp, instance, "trigger", {"channel": LISTENED, "name": "m", "data": {"i": i}})).ok
    for _ in range(3):
        result = await run(
            mapp, instance, "trigger", {"channel": "no spaces allowed", "name": "m", "data": 1}
        )
        assert not result.ok
    batch = [{"channel": published, "name": "b", "data": {"i": i}} for i in range(4)]
    assert (await run(mapp, instance, "triggerBatch", {"batch": batch})).ok
    for _ in range(2):
        assert (await run(mapp, instance, "channels", {})).ok

    async def settled() -> bool:
        now = await scrape()
        delivered = value(now, "mesg_pusher_results_total", outcome="delivered") - value(
            before, "mesg_pusher_results_total", outcome="delivered"
        )
        received = value(now, "mesg_pusher_events_emitted_total", event="received") - value(
            before, "mesg_pusher_events_emitted_total", event="received"
        )
        return delivered == 18 and received == 12

    await eventually(settled)
    after = await scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mesg_pusher_executions_total", task="trigger", outcome="completed") == 12
    assert delta("mesg_pusher_executions_total", task="trigger", outcome="failed") == 3
    assert delta("mesg_pusher_executions_total", task="triggerBatch", outcome="completed") == 1
    assert delta("mesg_pusher_executions_total", task="channels", outcome="completed") == 2
    assert delta("mesg_pusher_executions_total", task="channels", outcome="failed") == 0
    assert delta("mesg_pusher_execution_duration_seconds_count", task="trigger") == 15
    assert delta("mesg_pusher_execution_duration_seconds_count", task="channels") == 2
    assert 0 < delta("mesg_pusher_execution_duration_seconds_sum", task="trigger") < 15 * 5
    # One call per valid trigger (one at a time: nothing to coalesce), the batch, two channels calls.
    assert delta("mesg_pusher_pusher_requests_total", status="200") == 15
    assert delta("mesg_pusher_pusher_events_per_call_count") == 13
    assert delta("mesg_pusher_pusher_events_per_call_sum") == 12 + 4
    assert delta("mesg_pusher_pusher_events_per_call_bucket", le="1.0") == 12
    assert value(after, "mesg_pusher_executions_in_flight") == 0
    assert value(after, "mesg_pusher_results_waiting") == 0
    assert value(after, "mesg_pusher_engine_stream_up") == 1
    assert value(after, "mesg_pusher_engine_reconnects_total") == 0
    # Process collectors come with the registry: an operator sees CPU and memory too.
    assert value(after, "process_resident_memory_bytes") > 0


async def test_webhook_events_are_counted(mstack: Stack) -> None:
    before = await scrape()
    occupied = channel("metrics-webhook")
    async with PusherWS(mstack.soketi.ws_url()) as ws:
        await ws.subscribe(occupied)  # soketi posts channel_occupied to the service's webhook port

        async def counted() -> bool:
            now = await scrape()
            return value(now, "mesg_pusher_events_emitted_total", event="webhook") > value(
                before, "mesg_pusher_events_emitted_total", event="webhook"
            )

        await eventually(counted)
    await asyncio.sleep(0.5)  # a second event, if one were wrongly counted, would show by now
    after = await scrape()
    webhook = {"event": "webhook"}
    assert value(after, "mesg_pusher_events_emitted_total", **webhook) == (
        value(before, "mesg_pusher_events_emitted_total", **webhook) + 1
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MESG_PUSHER_METRICS_PORT": "99999"},
            "variable MESG_PUSHER_METRICS_PORT must be a port number from 1 to 65535, not '99999'",
        ),
        (
            {"MESG_PUSHER_METRICS_PORT": "9102", "PUSHER_WEBHOOK_PORT": "9102"},
            "variables MESG_PUSHER_METRICS_PORT and PUSHER_WEBHOOK_PORT are both 9102: give each its own port",
        ),
    ],
)
async def test_bad_metrics_port_stops_the_service_at_start(
    mstack: Stack, env: dict[str, str], message: str
) -> None:
    service = ServiceProcess(mstack.engine, env=env)
    service.start()
    try:
        assert service.wait(20) == 2
    finally:
        service.stop()
    assert f"cannot start: {message}" in service.log()


async def test_healthz_is_503_with_the_reason_while_the_engine_is_away(soketi: Soketi) -> None:
    port = free_port()
    with running_stack(soketi, env={"MESG_PUSHER_METRICS_PORT": str(port)}) as stack:
        stack.service.wait_for_log("health and metrics on")
        assert await healthz(port) == (200, {"status": "ok"})

        stack.engine.stop()
        answers: list[tuple[int, dict[str, Any]]] = []

        async def unhealthy() -> bool:
            answers.append(await healthz(port))
            return answers[-1][0] == 503

        await eventually(unhealthy)
        reason = answers[-1][1]["reason"]
        assert reason.startswith("engine execution stream down for "), reason
        assert "engine unavailable" in reason
        assert value(await scrape(port), "mesg_pusher_engine_stream_up") == 0

        stack.engine.restart()

        async def healthy() -> bool:
            return (await healthz(port))[0] == 200

        await eventually(healthy, timeout=30)
        assert value(await scrape(port), "mesg_pusher_engine_reconnects_total") == 1


@dataclass
class Slowed:
    """A service with metrics on ``port``, whose Pusher answers late; its engine maybe behind ``path``."""

    engine: EngineProcess
    service: ServiceProcess
    path: TcpProxy | None
    port: int

    async def start_three(self, prefix: str) -> None:
        """Three triggers, each held up by the slow Pusher, in flight at once."""
        async with Application.connect(self.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            for i in range(3):
                await app.execute_task(
                    instance, "trigger", {"channel": channel(prefix), "name": "s", "data": i}
                )

        async def in_flight() -> bool:
            return value(await scrape(self.port), "mesg_pusher_executions_in_flight") == 3

        await eventually(in_flight)


@asynccontextmanager
async def slowed(
    soketi: Soketi, delay: float, env: dict[str, str], engine_path: bool = False
) -> AsyncIterator[Slowed]:
    port = free_port()
    engine = EngineProcess(env=soketi.pusher_env()).start()
    path = await TcpProxy(engine.port).start() if engine_path else None
    slow_pusher = await TcpProxy(soketi.port, delay=delay).start()
    variables = {"MESG_PUSHER_METRICS_PORT": str(port), "PUSHER_PORT": str(slow_pusher.port), **env}
    if path is not None:
        variables["MESG_ENDPOINT"] = f"127.0.0.1:{path.port}"
    service = ServiceProcess(engine, env=variables)
    try:
        await asyncio.to_thread(service.start_ready)
        service.wait_for_log("health and metrics on")
        yield Slowed(engine, service, path, port)
    finally:
        await asyncio.to_thread(service.kill)
        engine.stop()
        if path is not None:
            await path.stop()
        await slow_pusher.stop()


@pytest.mark.timeout(90)
async def test_healthz_is_503_when_results_stop_reaching_an_engine_that_looks_up(soketi: Soketi) -> None:
    """The path to the engine goes silent while executions wait on a slow Pusher: the stream
    still looks open (keepalive pings every 5 minutes), but no ``Update`` gets through."""
    async with slowed(soketi, 2.0, {}, engine_path=True) as stack:
        assert (await healthz(stack.port))[0] == 200
        await stack.start_three("stall")
        assert stack.path is not None and stack.path.blackhole() >= 1
        answers: list[tuple[int, dict[str, Any]]] = []

        async def unhealthy() -> bool:
            answers.append(await healthz(stack.port))
            return answers[-1][0] == 503

        await eventually(unhealthy, timeout=40)
        assert answers[-1][1]["reason"].startswith("3 results waiting for the engine; none delivered for ")
        assert all(status == 200 for status, _ in answers[:-1])  # healthy until the stall was long enough
        assert value(await scrape(stack.port), "mesg_pusher_engine_stream_up") == 1


async def test_sigterm_counts_queued_executions_as_stopped_and_healthz_says_stopping(soketi: Soketi) -> None:
    async with slowed(soketi, 3.0, {"MESG_PUSHER_CONCURRENCY": "1"}) as stack:
        await stack.start_three("stop")
        stack.service.signal(signal.SIGTERM)
        # The running one waits for the slow Pusher (3 s): the port still answers meanwhile.
        stopped = {"task": "trigger", "outcome": "stopped"}

        async def counted() -> bool:
            return value(await scrape(stack.port), "mesg_pusher_executions_total", **stopped) == 2

        await eventually(counted, timeout=2.5)
        status, body = await healthz(stack.port)
        assert status == 503
        assert body["reason"].startswith("stopping: finishing in-flight executions"), body
        assert await asyncio.to_thread(stack.service.wait, 20) == 0
