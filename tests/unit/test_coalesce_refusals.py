"""Coalesced batches refused as not taken (429, 503): sent again, a 429 split, each event once.

Against a real local HTTP server that answers like a rate-limited Pusher (or soketi: its
limiter counts each event of a batch); what is asserted is what each request carried, which
requests were taken, and each trigger's own result.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import web

from mesg_pusher.coalesce import Coalescer
from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import PusherHTTPError
from tests.support.http_server import Seen, json_reply


def options(port: int, timeout: float = 10.0) -> PusherOptions:
    return PusherOptions(
        app_id="1", key="k", secret="s3cr3t", host="127.0.0.1", use_tls=False, port=port, timeout=timeout
    )


def events_of(seen: Seen) -> list[str]:
    body = json.loads(seen.body)
    if seen.path.endswith("/batch_events"):
        return [event["name"] for event in body["batch"]]
    return [body["name"]] * len(body["channels"])


class Limited:
    """Takes at most ``limit`` events per ``window`` seconds, counting each event of a batch,
    and answers 429 to a request that would go over (nothing of it taken), as soketi does."""

    def __init__(self, limit: int, window: float, retry_after: str | None = None) -> None:
        self.limit, self.window, self.retry_after = limit, window, retry_after
        self.began = time.monotonic()
        self.used = 0
        self.taken: list[list[str]] = []
        self.refused: list[list[str]] = []

    def __call__(self, seen: Seen, index: int) -> web.Response:
        now = time.monotonic()
        if now - self.began >= self.window:
            self.began, self.used = now, 0
        events = events_of(seen)
        if self.used + len(events) > self.limit:
            self.refused.append(events)
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return (
                json_reply(429, {"error": "Too many requests.", "code": 429})
                if headers is None
                else (web.Response(status=429, text='{"error": "Too many requests."}', headers=headers))
            )
        self.used += len(events)
        self.taken.append(events)
        return json_reply(200, {})


async def publish(coalescer: Coalescer, client: Any, opts: PusherOptions, names: list[str]) -> list[Any]:
    return await asyncio.gather(
        *(coalescer.trigger(opts, client, {"channel": "c", "name": n, "data": "{}"}) for n in names),
        return_exceptions=True,
    )


async def test_a_burst_over_the_limit_is_published_once_each_and_every_trigger_completes(
    http_server: Any, make_client: Any
) -> None:
    limiter = Limited(limit=3, window=0.2)
    server = await http_server(limiter)
    names = [f"e{i}" for i in range(24)]
    results = await publish(Coalescer(), make_client(server.port, timeout=10), options(server.port), names)
    assert results == [None] * len(names)
    published = [name for taken in limiter.taken for name in taken]
    assert sorted(published) == sorted(names)  # each exactly once
    assert limiter.refused, "the limit was never reached: nothing was retried"
    assert any(len(refused) > 3 for refused in limiter.refused)  # batches over the limit, split
    assert all(len(taken) <= 3 for taken in limiter.taken)
    assert len(server.requests) == len(limiter.taken) + len(limiter.refused)


async def test_a_batch_refused_with_429_is_sent_again_in_halves(http_server: Any, make_client: Any) -> None:
    # A limit of 5 events at once: a batch of 10 can never pass whole; its halves can.
    limiter = Limited(limit=5, window=0.05)
    server = await http_server(limiter)
    names = [f"e{i}" for i in range(10)]
    results = await publish(Coalescer(), make_client(server.port), options(server.port), names)
    assert results == [None] * 10
    sizes = [len(events_of(seen)) for seen in server.requests]
    assert sizes[0] == 10 and sorted(sizes[1:3]) == [5, 5], sizes
    assert sorted(name for taken in limiter.taken for name in taken) == sorted(names)


async def test_a_batch_refused_with_503_is_sent_again_whole_after_retry_after(
    http_server: Any, make_client: Any
) -> None:
    def reply(seen: Seen, index: int) -> web.Response:
        if index == 0:
            return web.Response(status=503, text="busy", headers={"Retry-After": "1"})
        return json_reply(200, {})

    server = await http_server(reply)
    names = [f"e{i}" for i in range(10)]
    results = await publish(Coalescer(), make_client(server.port), options(server.port), names)
    assert results == [None] * 10
    assert [events_of(seen) for seen in server.requests] == [names, names]  # whole, the same events


async def test_the_resend_comes_after_retry_after(http_server: Any, make_client: Any) -> None:
    limiter = Limited(limit=5, window=3600, retry_after="1")
    stamps: list[float] = []

    def reply(seen: Seen, index: int) -> web.Response:
        stamps.append(time.monotonic())
        if index == 0:
            return limiter(seen, index)
        return json_reply(200, {})

    server = await http_server(reply)
    results = await publish(
        Coalescer(), make_client(server.port), options(server.port), [f"e{i}" for i in range(8)]
    )
    assert results == [None] * 8
    assert len(events_of(server.requests[0])) == 8
    assert all(0.95 <= later - stamps[0] < 8 for later in stamps[1:]), stamps


async def test_retry_after_past_the_oldest_events_time_fails_each_at_once_with_the_code(
    http_server: Any, make_client: Any
) -> None:
    server = await http_server(
        lambda seen, index: web.Response(status=429, text="slow down", headers={"Retry-After": "60"})
    )
    names = [f"e{i}" for i in range(10)]
    began = time.monotonic()
    results = await publish(Coalescer(), make_client(server.port, timeout=5), options(server.port, 5), names)
    assert time.monotonic() - began < 4  # at once, not when the time is up
    assert len(server.requests) == 1
    for result in results:
        assert isinstance(result, PusherHTTPError) and result.status == 429, results
        assert result.code == "pusher_rate_limited 429", result
        text = str(result)
        assert text.startswith("Pusher answered HTTP 429: slow down; "), text
        assert "Pusher asked to come back in 60 s" in text, text


@pytest.mark.parametrize("status", [429, 503])
async def test_refused_until_the_time_runs_out_each_trigger_fails_once_with_the_refusal(
    http_server: Any, make_client: Any, status: int
) -> None:
    server = await http_server(lambda seen, index: web.Response(status=status, text="no"))
    names = [f"e{i}" for i in range(6)]
    began = time.monotonic()
    results = await publish(Coalescer(), make_client(server.port, timeout=1), options(server.port, 1), names)
    assert time.monotonic() - began < 1 + 2
    assert all(isinstance(r, PusherHTTPError) and r.status == status for r in results), results
    assert len(server.requests) >= 2  # sent again while the time allowed
