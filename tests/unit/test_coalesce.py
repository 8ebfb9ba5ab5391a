"""Coalescing of concurrent triggers into batch_events, against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from mesg_pusher.coalesce import Coalescer
from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import PusherHTTPError
from tests.unit.conftest import Seen, json_reply


def options(port: int) -> PusherOptions:
    return PusherOptions(app_id="1", key="k", secret="s3cr3t", host="127.0.0.1", use_tls=False, port=port)


def events_of(seen: Seen) -> list[dict[str, Any]]:
    body = json.loads(seen.body)
    if seen.path.endswith("/batch_events"):
        return list(body["batch"])
    return [{"channel": c, "name": body["name"], "data": body["data"]} for c in body["channels"]]


def pusher_like(refuse: str | None = None, status: int = 400, delay: float = 0.05) -> Any:
    """Answers like Pusher; a request holding an event named ``refuse`` gets ``status``."""

    async def reply(seen: Seen, index: int) -> web.Response:
        await asyncio.sleep(delay)
        if refuse is not None and any(e["name"] == refuse for e in events_of(seen)):
            return json_reply(status, {"error": f"event {refuse} refused"})
        return json_reply(200, {})

    return reply


async def publish(coalescer: Coalescer, client: Any, opts: PusherOptions, names: list[str]) -> list[Any]:
    return await asyncio.gather(
        *(coalescer.trigger(opts, client, {"channel": "c", "name": n, "data": "{}"}) for n in names),
        return_exceptions=True,
    )


async def test_a_lone_trigger_is_sent_at_once_as_a_trigger(http_server: Any, make_client: Any) -> None:
    server = await http_server(pusher_like())
    coalescer = Coalescer()
    await publish(coalescer, make_client(server.port), options(server.port), ["only"])
    assert [s.path for s in server.requests] == ["/apps/1/events"]
    assert len(coalescer) == 0  # no state left once idle


async def test_concurrent_triggers_leave_together(http_server: Any, make_client: Any) -> None:
    server = await http_server(pusher_like())
    coalescer = Coalescer()
    names = [f"e{i}" for i in range(40)]
    results = await publish(coalescer, make_client(server.port), options(server.port), names)
    assert results == [None] * 40
    sent = [e["name"] for s in server.requests for e in events_of(s)]
    assert sorted(sent) == sorted(names)  # each exactly once
    assert len(server.requests) < 10  # far fewer calls than events
    assert all(len(events_of(s)) <= 10 for s in server.requests)
    assert (coalescer.events, coalescer.calls) == (40, len(server.requests))


async def test_a_refused_batch_is_retried_one_by_one_and_only_the_bad_one_fails(
    http_server: Any, make_client: Any
) -> None:
    server = await http_server(pusher_like(refuse="bad", status=400))
    names = [f"e{i}" for i in range(12)]
    names[7] = "bad"
    results = await publish(Coalescer(), make_client(server.port), options(server.port), names)
    failures = {names[i]: r for i, r in enumerate(results) if r is not None}
    assert list(failures) == ["bad"]
    assert isinstance(failures["bad"], PusherHTTPError) and failures["bad"].status == 400
    assert "event bad refused" in str(failures["bad"])
    accepted = [s for s in server.requests if all(e["name"] != "bad" for e in events_of(s))]
    published = [e["name"] for s in accepted for e in events_of(s)]
    assert sorted(published) == sorted(n for n in names if n != "bad")  # each good one exactly once


@pytest.mark.parametrize("status", [401, 500, 503])
async def test_a_failure_that_is_not_about_content_fails_every_event_without_retry(
    http_server: Any, make_client: Any, status: int
) -> None:
    server = await http_server(pusher_like(refuse="e0", status=status))
    names = [f"e{i}" for i in range(10)]
    results = await publish(Coalescer(), make_client(server.port), options(server.port), names)
    # The ten gathered into one call; its answer is every event's answer.
    assert len(server.requests) == 1 and len(events_of(server.requests[0])) == 10
    assert all(isinstance(r, PusherHTTPError) and r.status == status for r in results), results


async def _trigger_later(
    coalescer: Coalescer, client: Any, opts: PusherOptions, delay: float, names: list[str]
) -> Any:
    await asyncio.sleep(delay)
    return await publish(coalescer, client, opts, names)


async def test_a_busy_lane_lingers_for_a_fuller_batch(http_server: Any, make_client: Any) -> None:
    # Each call takes 0.1 s; a long linger (0.6 s) makes the timing unmistakable.
    server = await http_server(pusher_like(delay=0.1))
    coalescer, client, opts = Coalescer(linger=0.6), make_client(server.port), options(server.port)
    await asyncio.gather(
        publish(coalescer, client, opts, ["first"]),  # idle lane: sent at once, alone
        _trigger_later(coalescer, client, opts, 0.03, ["a", "b"]),  # queued behind it: load
        _trigger_later(coalescer, client, opts, 0.3, ["c"]),  # arrives while the lane lingers
    )
    assert [sorted(e["name"] for e in events_of(s)) for s in server.requests] == [["first"], ["a", "b", "c"]]


async def test_a_lingering_lane_sends_as_soon_as_a_batch_is_full(http_server: Any, make_client: Any) -> None:
    server = await http_server(pusher_like(delay=0.1))
    coalescer, client, opts = Coalescer(linger=5.0), make_client(server.port), options(server.port)
    began = asyncio.get_running_loop().time()
    await asyncio.gather(
        publish(coalescer, client, opts, ["first"]),
        _trigger_later(coalescer, client, opts, 0.03, ["a", "b"]),
        _trigger_later(coalescer, client, opts, 0.3, [f"e{i}" for i in range(8)]),  # now 10 wait
    )
    assert asyncio.get_running_loop().time() - began < 2.0  # not the 5 s linger
    assert [len(events_of(s)) for s in server.requests] == [1, 10]


async def test_a_lone_queued_event_does_not_linger(http_server: Any, make_client: Any) -> None:
    server = await http_server(pusher_like(delay=0.1))
    coalescer, client, opts = Coalescer(linger=5.0), make_client(server.port), options(server.port)
    began = asyncio.get_running_loop().time()
    await asyncio.gather(
        publish(coalescer, client, opts, ["first"]),
        _trigger_later(coalescer, client, opts, 0.03, ["second"]),  # two in flight: no sign of load
    )
    assert asyncio.get_running_loop().time() - began < 2.0
    assert [len(events_of(s)) for s in server.requests] == [1, 1]
    assert len(coalescer) == 0
