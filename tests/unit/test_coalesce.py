"""Coalescing of concurrent triggers into batch_events, against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import web

from mesg_pusher.coalesce import Coalescer
from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import PusherHTTPError, PusherUnknownOutcome, PusherUnreachable
from tests.support.http_server import Seen, json_reply

#: How long a condition is waited for before the test fails: generous, for a loaded machine.
WAIT = 10.0


def options(port: int, timeout: float = 2.0) -> PusherOptions:
    return PusherOptions(
        app_id="1", key="k", secret="s3cr3t", host="127.0.0.1", use_tls=False, port=port, timeout=timeout
    )


def events_of(seen: Seen) -> list[dict[str, Any]]:
    body = json.loads(seen.body)
    if seen.path.endswith("/batch_events"):
        return list(body["batch"])
    return [{"channel": c, "name": body["name"], "data": body["data"]} for c in body["channels"]]


def pusher_like(
    refuse: str | None = None,
    status: int = 400,
    delay: float = 0.05,
    stall_from: int | None = None,
    together: int = 0,
) -> Any:
    """Answers like Pusher; a request holding an event named ``refuse`` gets ``status``; from
    request number ``stall_from`` on, it never answers (a Pusher that stalled). With
    ``together=n``, no request is answered before n are in flight at once: calls that waited for
    one another never get there, and end in a 500 naming why (a proof by state, not by time)."""
    arrived = 0
    all_in = asyncio.Event()

    async def reply(seen: Seen, index: int) -> web.Response:
        nonlocal arrived
        arrived += 1
        if together:
            if arrived >= together:
                all_in.set()
            try:
                await asyncio.wait_for(all_in.wait(), WAIT)
            except TimeoutError:
                return json_reply(500, {"error": f"only {arrived} of {together} calls came at once"})
        await asyncio.sleep(delay if stall_from is None or index < stall_from else 3600)
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


async def test_triggers_ready_together_leave_together_at_once(http_server: Any, make_client: Any) -> None:
    # Neither call is answered before both are in flight: had one waited for the other, it
    # would fail.
    server = await http_server(pusher_like(together=2))
    coalescer = Coalescer(calls_per_app=16)
    names = [f"e{i}" for i in range(16)]
    results = await publish(coalescer, make_client(server.port, timeout=2 * WAIT), options(server.port, 2 * WAIT), names)
    assert results == [None] * 16
    assert [len(events_of(s)) for s in server.requests] == [10, 6]  # ready at once: batched
    assert len(coalescer) == 0


async def test_a_trigger_never_waits_for_a_call_in_flight_below_the_cap(
    http_server: Any, make_client: Any
) -> None:
    # Events come 0.1 s apart and no call is answered before all four are in flight: one that
    # waited for the call ahead would never be sent, and the others would fail.
    server = await http_server(pusher_like(together=4))
    coalescer, client = Coalescer(calls_per_app=4), make_client(server.port, timeout=2 * WAIT)
    opts = options(server.port, 2 * WAIT)
    ends = await asyncio.gather(
        *(later(0.1 * i, timed(coalescer.trigger(opts, client, event(f"e{i}")))) for i in range(4))
    )
    assert all(error is None for _, error in ends), ends
    assert len(server.requests) == 4  # each on its own


async def test_beyond_the_cap_waiting_triggers_leave_together(http_server: Any, make_client: Any) -> None:
    server = await http_server(pusher_like())
    coalescer = Coalescer(calls_per_app=2)
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
    # One call at a time: e0 goes alone, the 10 waiting behind it (bad among them) leave together.
    results = await publish(Coalescer(), make_client(server.port), options(server.port), names)
    assert len(events_of(server.requests[0])) == 10  # bad among them
    failures = {names[i]: r for i, r in enumerate(results) if r is not None}
    assert list(failures) == ["bad"]
    assert isinstance(failures["bad"], PusherHTTPError) and failures["bad"].status == 400
    assert "event bad refused" in str(failures["bad"])
    accepted = [s for s in server.requests if all(e["name"] != "bad" for e in events_of(s))]
    published = [e["name"] for s in accepted for e in events_of(s)]
    assert sorted(published) == sorted(n for n in names if n != "bad")  # each good one exactly once


# A 429 or a 503 says the batch was not taken: retried (tests/unit/test_coalesce_refusals.py).
@pytest.mark.parametrize("status", [401, 500, 502])
async def test_a_failure_that_is_not_about_content_fails_every_event_without_retry(
    http_server: Any, make_client: Any, status: int
) -> None:
    server = await http_server(pusher_like(refuse="e0", status=status))
    names = [f"e{i}" for i in range(10)]
    results = await publish(Coalescer(), make_client(server.port), options(server.port), names)
    # The ten left in one call; its answer is every event's answer.
    assert len(server.requests) == 1 and len(events_of(server.requests[0])) == 10
    assert all(isinstance(r, PusherHTTPError) and r.status == status for r in results), results


def event(name: str) -> dict[str, str]:
    return {"channel": "c", "name": name, "data": "{}"}


async def later(delay: float, call: Any) -> Any:
    await asyncio.sleep(delay)
    return await call


async def timed(call: Any) -> tuple[float, Any]:
    """How long ``call`` took from its start, and its result or error."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        result = await call
    except Exception as exc:
        result = exc
    return loop.time() - began, result


async def test_an_event_queued_behind_a_stalled_call_ends_within_its_own_timeout(
    http_server: Any, make_client: Any
) -> None:
    server = await http_server(pusher_like(stall_from=0))  # accepts, never answers
    timeout = 2.0
    coalescer, client = Coalescer(calls_per_app=1), make_client(server.port, timeout=timeout)
    opts = options(server.port, timeout=timeout)
    # "a" takes the only call; "b" and "c" come while it is stalled, and wait.
    ends = await asyncio.gather(
        *(later(0.05 * bool(n != "a"), timed(coalescer.trigger(opts, client, event(n)))) for n in "abc")
    )
    # "a" ran out of time; "b" and "c" then left with only what they had left, not a fresh
    # timeout: that would end them near 2 * timeout. No timeout ends early (the lower bound);
    # the upper bound leaves a loaded machine a whole second.
    assert [len(events_of(s)) for s in server.requests] == [1, 2]
    for elapsed, error in ends:
        assert timeout - 0.05 < elapsed < timeout + 1.0, ends
        assert isinstance(error, PusherUnknownOutcome) and "no answer from Pusher" in str(error)
    assert len(coalescer) == 0


async def test_a_batch_sent_late_is_given_only_the_time_its_oldest_event_has_left(
    http_server: Any, make_client: Any
) -> None:
    # The first call answers after 1.2 s; the batch that then leaves never gets an answer.
    timeout = 2.0
    server = await http_server(pusher_like(delay=1.2, stall_from=1))
    coalescer, client = Coalescer(calls_per_app=1), make_client(server.port, timeout=timeout)
    opts = options(server.port, timeout=timeout)
    ends = await asyncio.gather(
        *(later(0.05 * bool(n != "a"), timed(coalescer.trigger(opts, client, event(n)))) for n in "abc")
    )
    assert ends[0][1] is None and 1.2 <= ends[0][0] < timeout
    assert [len(events_of(s)) for s in server.requests] == [1, 2]
    for elapsed, error in ends[1:]:
        assert isinstance(error, PusherUnknownOutcome) and "no answer from Pusher" in str(error)
        # The timeout from when each began waiting (2 s), not from when its batch left (3.15 s):
        # the bound leaves a loaded machine most of a second.
        assert timeout - 0.05 < elapsed < timeout + 0.9, ends
    assert len(coalescer) == 0


async def test_when_calls_are_short_events_wait_for_the_call_in_flight(
    http_server: Any, make_client: Any
) -> None:
    # Calls take 0.6 s, counted as short here: a lane then runs one call at a time. e1-e3 come
    # within 0.06 s of e0, while its call is in flight (half a second to spare on a loaded machine).
    server = await http_server(pusher_like(delay=0.6))
    coalescer = Coalescer(short_call=5.0)
    client, opts = make_client(server.port, timeout=WAIT), options(server.port, WAIT)
    await coalescer.trigger(opts, client, event("first"))  # how long calls take: now known
    await asyncio.gather(
        *(later(0.02 * i, coalescer.trigger(opts, client, event(f"e{i}"))) for i in range(4))
    )
    assert [len(events_of(s)) for s in server.requests] == [1, 1, 3]  # e1-e3 left together
    assert len(coalescer) == 0


async def test_beyond_the_cap_a_full_batch_leaves_at_once(http_server: Any, make_client: Any) -> None:
    # "first" is not answered before the full batch is in flight too: had the batch waited for
    # the call ahead, neither would be answered, and both would fail.
    server = await http_server(pusher_like(together=2))
    coalescer, client = Coalescer(calls_per_app=1), make_client(server.port, timeout=2 * WAIT)
    opts = options(server.port, 2 * WAIT)
    first = asyncio.ensure_future(coalescer.trigger(opts, client, event("first")))
    await asyncio.sleep(0.05)  # "first" holds the only call
    ends = await asyncio.gather(*(timed(coalescer.trigger(opts, client, event(f"e{i}"))) for i in range(10)))
    await first
    assert [len(events_of(s)) for s in server.requests] == [1, 10]
    assert all(error is None for _, error in ends), ends


async def test_an_event_whose_time_ran_out_while_it_waited_is_not_sent(
    http_server: Any, make_client: Any
) -> None:
    server = await http_server(pusher_like(stall_from=0))
    coalescer, client = Coalescer(calls_per_app=1), make_client(server.port, timeout=0.3)
    opts = options(server.port, timeout=0.3)
    a = asyncio.ensure_future(coalescer.trigger(opts, client, event("a")))
    await asyncio.sleep(0.05)
    b = asyncio.ensure_future(coalescer.trigger(opts, client, event("b")))  # waits behind "a"
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # the process stalls: "a" times out late, after "b"'s time is up too
    results = await asyncio.gather(a, b, return_exceptions=True)
    assert isinstance(results[0], PusherUnknownOutcome)
    assert isinstance(results[1], PusherUnreachable)
    assert "no answer from Pusher" in str(results[1]) and "not sent" in str(results[1])
    assert len(server.requests) == 1
