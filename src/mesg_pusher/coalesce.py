"""Concurrent single-channel triggers to one app: each goes at once, batched only when it must wait.

Under load, many ``trigger`` executions for the same app are in flight at once, and each HTTP
call costs far more CPU than the event it carries. A lane per option set lets up to
``CALLS_PER_APP`` calls run at a time. While a call could go now, an event goes now, on its own,
as ``trigger`` would: it never waits for another call to finish. Only once the cap is reached
do events queue, and each call that ends takes what is waiting, up to 10 events (Pusher's batch
limit), in one ``batch_events`` call. There is no linger: with Pusher 50 ms away, holding an
event for a fuller batch costs a round trip, and on loopback the queue fills by itself once the
process is saturated (calls take longer, so more events wait for each one).

The cap was picked by measurement (README, "Benchmark"): it must be at least the common
concurrency (16 in flight all go at once against a distant Pusher), and small enough that a
saturated process on loopback batches several events per call.

Every execution ends within its ``PUSHER_TIMEOUT`` of when it began waiting for Pusher, queued
or not: a queued event whose time runs out is failed with a timeout error (it was never sent),
and a batch call is given only the time its oldest event has left.

Every execution still gets its own exact result. Pusher validates a batch as a whole, so when
it refuses one (a 4xx naming bad content) nothing was published, and the events are sent again
one by one: the failing one, and only it, fails with Pusher's message. A failure that says
nothing about content (5xx, timeout, connection lost, wrong secret) is the answer for every
event of that call: retrying could publish twice.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pusher

from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import PusherHTTPError
from mesg_pusher.pusher_client import sdk_errors
from mesg_pusher.transport import Transport

MAX_BATCH = 10
CALLS_PER_APP = int(__import__("os").environ.get("COALESCE_CALLS", "16"))  # TEMP: measuring
SATURATED_CALLS = int(__import__("os").environ.get("COALESCE_SAT_CALLS", "2"))  # TEMP: measuring
SATURATION_LAG = float(__import__("os").environ.get("COALESCE_SAT_LAG_MS", "2")) / 1000  # TEMP: measuring
# Statuses that refuse a batch for what is in it; anything else is the same for each event.
CONTENT_REFUSALS = frozenset({400, 413})

Event = dict[str, str]


@dataclass(slots=True)
class _Waiting:
    event: Event
    done: asyncio.Future[None]
    deadline: float


@dataclass
class _Lane:
    client: pusher.Pusher
    transport: Transport
    queue: deque[_Waiting] = field(default_factory=deque)
    calls: int = 0
    # A flush is scheduled for this pass of the event loop.
    flushing: bool = False


class Coalescer:
    """Batches triggers per ``PusherOptions`` once their calls in flight reach the cap; no state once idle."""

    def __init__(
        self,
        max_batch: int = MAX_BATCH,
        calls_per_app: int = CALLS_PER_APP,
        saturated_calls: int = SATURATED_CALLS,
        saturation_lag: float = SATURATION_LAG,
    ) -> None:
        self._max_batch = max_batch
        self._calls_per_app = calls_per_app
        self._saturated_calls = saturated_calls
        self._saturation_lag = saturation_lag
        self._lanes: dict[PusherOptions, _Lane] = {}
        self._draining: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.events = 0

    def __len__(self) -> int:
        return len(self._lanes)

    async def trigger(self, options: PusherOptions, client: pusher.Pusher, event: Event) -> None:
        """Publish one event ``{channel, name, data[, socket_id]}``; returns once Pusher took it."""
        lane = self._lanes.get(options)
        if lane is None:
            lane = self._lanes[options] = _Lane(client, client._pusher_client.http.transport)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        lane.queue.append(_Waiting(event, done, loop.time() + options.timeout))
        if not lane.flushing:
            # Sent once the events that are ready now have all been seen: the next pass of the
            # event loop, no timer.
            lane.flushing = True
            loop.call_soon(self._flush, options, lane, loop.time())
        await done

    def _flush(self, options: PusherOptions, lane: _Lane, scheduled: float) -> None:
        """Send what waits, in as many calls as the cap allows; the rest waits for a call to end."""
        lane.flushing = False
        loop = asyncio.get_running_loop()
        # A flush that ran late means the process has more to do than CPU to do it: then the
        # events wait for a call to end, and leave together, rather than each paying a call.
        saturated = loop.time() - scheduled > self._saturation_lag
        cap = self._saturated_calls if saturated else self._calls_per_app
        while lane.calls < cap and (batch := self._take(lane)):
            lane.calls += 1
            task = loop.create_task(self._drain(options, lane, batch))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        if lane.calls == 0 and not lane.queue and self._lanes.get(options) is lane:
            del self._lanes[options]

    def _take(self, lane: _Lane) -> list[_Waiting]:
        """Up to a batch of the waiting events that are still waiting (not cancelled, not expired)."""
        batch: list[_Waiting] = []
        while lane.queue and len(batch) < self._max_batch:
            item = lane.queue.popleft()
            if not item.done.done():
                batch.append(item)
        return batch

    async def _drain(self, options: PusherOptions, lane: _Lane, batch: list[_Waiting]) -> None:
        try:
            while batch:
                await self._send(lane, batch)
                batch = self._take(lane)
        finally:
            lane.calls -= 1
            if lane.calls == 0 and not lane.queue and self._lanes.get(options) is lane:
                del self._lanes[options]

    async def _send(self, lane: _Lane, items: list[_Waiting]) -> None:
        self.calls += 1
        self.events += len(items)
        # The oldest event's time left bounds the call, so none ends later than its timeout.
        deadline = items[0].deadline
        if len(items) == 1:
            await self._settle(items, self._one(lane, items[0].event, deadline))
            return
        try:
            with sdk_errors():
                request = lane.client._pusher_client.trigger_batch.make_request(
                    [item.event for item in items], already_encoded=True
                )
            await lane.transport.send(request, deadline)
        except PusherHTTPError as exc:
            if exc.status not in CONTENT_REFUSALS:
                _fail(items, exc)
                return
            # Nothing was published: each event on its own, so each gets its own answer.
            await asyncio.gather(
                *(self._settle([item], self._one(lane, item.event, deadline)) for item in items)
            )
        except Exception as exc:
            _fail(items, exc)
        else:
            _succeed(items)

    @staticmethod
    async def _one(lane: _Lane, event: Event, deadline: float | None) -> None:
        with sdk_errors():
            request = lane.client._pusher_client.trigger.make_request(
                event["channel"], event["name"], event["data"], event.get("socket_id")
            )
        await lane.transport.send(request, deadline)

    @staticmethod
    async def _settle(items: list[_Waiting], call: Any) -> None:
        try:
            await call
        except Exception as exc:
            _fail(items, exc)
        else:
            _succeed(items)


def _succeed(items: list[_Waiting]) -> None:
    for item in items:
        if not item.done.done():
            item.done.set_result(None)


def _fail(items: list[_Waiting], exc: BaseException) -> None:
    for item in items:
        if not item.done.done():
            item.done.set_exception(exc)
