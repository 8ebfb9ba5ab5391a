"""Concurrent single-channel triggers to one app: each goes at once, batched only when it must wait.

Under load, many ``trigger`` executions for the same app are in flight at once, and each HTTP
call costs far more CPU than the event it carries. A lane per option set sends what is ready
on the next pass of the event loop (no timer): one event alone as ``trigger``, several that
became ready together in one ``batch_events`` call (up to the execution's batch limit, 10 on
Pusher's multi-tenant clusters: ``PusherOptions.limits``, and a lane is per option set). Up to
``CALLS_PER_APP`` calls run at once, so an event never waits for another call to end while
the cap allows one more; once the cap is reached, events wait, and each call that ends takes
what is waiting, while a full batch waiting leaves at once in a call of its own (how many
such calls there can be is bounded by the worker's in-flight limit). There is no linger:
with Pusher 50 ms away, holding an event for a fuller batch would cost it a round trip.

One exception, for a Pusher next door: when Pusher answers within ``SHORT_CALL`` (10 ms; a
moving average kept by the transport), waiting for the call in flight costs less than that, and sending
each event alone costs the CPU the process needs for the next ones; then a lane runs one call
at a time, plus one more for each full batch waiting. On loopback under load this is what
keeps several events per call.

The cap (12) was picked by measurement 50 ms away (``python -m benchmarks.bench``; the runs are
in CHANGELOG.md): at 16 in flight, 12 was as fast as 16 (the few beyond the cap leave with
triggers that became ready with them or with a full batch) while 8 cost a few ms; at 64 in flight, 12 and 8 beat 16 (fewer calls,
fuller batches, less CPU) and 4 lost. On loopback the short-call rule decides, not the cap.

Every execution ends within its ``PUSHER_TIMEOUT`` of when it began waiting for Pusher, queued
or not: a queued event waits only for calls that began before it (so end about when its own
time is up, or before), and the call it then leaves in is given only the time its oldest event
has left; one whose time ran out while it waited fails with a timeout error, never sent.

Every execution still gets its own exact result, and each event is published at most once: an
event is sent again only after an answer that says its call was not taken. Pusher validates a
batch as a whole, so when it refuses one (a 4xx naming bad content) nothing was published, and
the events are sent again one by one: the failing one, and only it, fails with Pusher's
message. A batch refused as not taken (429, 503: nothing of it was published either) is sent
again after the pause of ``retry.py`` (``Retry-After``, or the backoff) while its oldest event's
time allows: a 503 whole, as it says nothing of the batch; a 429 split in two halves, each
sent again (and split again if refused again), because a limit may count events, not calls
(soketi's counts each event of a batch), and a batch larger than what it allows at once could
never pass whole. A lone event is retried by the transport itself. A failure that says
nothing about content and does not say "not taken" (another 5xx, timeout, connection lost,
wrong secret) is the answer for every event of that call: retrying could publish twice.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pusher

from mesg_pusher import metrics, retry
from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import PusherHTTPError, PusherUnreachable
from mesg_pusher.pusher_client import batch_request, events_request, send, transport_of
from mesg_pusher.transport import Transport

CALLS_PER_APP = 12
SHORT_CALL = 0.010
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
    # Events per batch_events call: the option set's batch limit.
    max_batch: int
    queue: deque[_Waiting] = field(default_factory=deque)
    calls: int = 0
    # A flush is scheduled for this pass of the event loop.
    flushing: bool = False


class Coalescer:
    """Sends triggers per ``PusherOptions``, batched when ready together or made to wait; idle: no state."""

    def __init__(self, calls_per_app: int = CALLS_PER_APP, short_call: float = SHORT_CALL) -> None:
        self._calls_per_app = calls_per_app
        self._short_call = short_call
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
            lane = self._lanes[options] = _Lane(client, transport_of(client), options.limits.max_batch_size)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        lane.queue.append(_Waiting(event, done, loop.time() + options.timeout))
        if not lane.flushing:
            # Sent once the events that are ready now have all been seen: the next pass of the
            # event loop, no timer.
            lane.flushing = True
            loop.call_soon(self._flush, options, lane)
        await done

    def _flush(self, options: PusherOptions, lane: _Lane) -> None:
        """Send what waits, in as many calls as the cap allows; the rest waits for a call to end."""
        lane.flushing = False
        loop = asyncio.get_running_loop()
        # When calls are short (a Pusher next door), waiting for the one in flight costs less
        # than SHORT_CALL and saves a call per event: one call at a time, plus one per full batch.
        answer_time = lane.transport.answer_time
        short = answer_time is not None and answer_time < self._short_call
        while lane.queue:
            # Once the cap is reached (one call if calls are short), only a full batch opens
            # another call: the rest leaves with the next call that ends or the next full batch.
            cap = 1 if short else self._calls_per_app
            if lane.calls >= cap and len(lane.queue) < lane.max_batch:
                break
            batch = self._take(lane)
            if not batch:
                break
            lane.calls += 1
            task = loop.create_task(self._drain(options, lane, batch))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        if lane.calls == 0 and not lane.queue and self._lanes.get(options) is lane:
            del self._lanes[options]

    def _take(self, lane: _Lane) -> list[_Waiting]:
        """Up to a batch of the queued events whose execution still waits (not cancelled)."""
        batch: list[_Waiting] = []
        while lane.queue and len(batch) < lane.max_batch:
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

    async def _send(self, lane: _Lane, items: list[_Waiting], attempt: int = 0) -> None:
        """One call for ``items`` (their ``attempt``-th resend after a refusal), and its
        answer given to each of them."""
        now = asyncio.get_running_loop().time()
        if expired := [item for item in items if item.deadline <= now]:
            # Waited its whole timeout behind calls that were never answered: not sent.
            timeout, where = lane.transport.options.timeout, lane.transport.where
            _fail(
                expired,
                PusherUnreachable(
                    f"no answer from Pusher at {where} within {timeout:g} s: the calls to it ahead of "
                    "this event took all its time, so it was not sent"
                ),
            )
            items = [item for item in items if item.deadline > now]
            if not items:
                return
        self.calls += 1
        self.events += len(items)
        metrics.hooks.pusher_batch(len(items))
        # The oldest event's time left bounds the call, so none ends later than its timeout.
        deadline = items[0].deadline
        if len(items) == 1:
            await self._settle(items, self._one(lane, items[0].event, deadline))
            return
        try:
            request = batch_request(lane.client, [item.event for item in items])
            await send(lane.client, request, deadline, retry_refusals=False)
        except PusherHTTPError as exc:
            if exc.status in retry.NOT_TAKEN:
                await self._again(lane, items, exc, attempt)
            elif exc.status in CONTENT_REFUSALS:
                # Nothing was published: each event on its own, so each gets its own answer.
                await asyncio.gather(
                    *(self._settle([item], self._one(lane, item.event, deadline)) for item in items)
                )
            else:
                _fail(items, exc)
        except Exception as exc:
            _fail(items, exc)
        else:
            _succeed(items)

    async def _again(
        self, lane: _Lane, items: list[_Waiting], refusal: PusherHTTPError, attempt: int
    ) -> None:
        """A batch refused as not taken (429, 503): sent again after the pause, a 429 in halves;
        or, when the pause does not fit in the oldest event's time, that refusal for each."""
        wait = retry.pause(attempt + 1, refusal.retry_after)
        if not await retry.wait_within(items[0].deadline, wait):
            left = items[0].deadline - asyncio.get_running_loop().time()
            note = retry.not_retried(attempt + 1, refusal.retry_after, left, lane.transport.options.timeout)
            _fail(items, PusherHTTPError(refusal.status, refusal.body, note, refusal.retry_after))
            return
        items = [item for item in items if not item.done.done()]  # not cancelled meanwhile
        if refusal.status == 429 and len(items) > 1:
            half = (len(items) + 1) // 2
            await asyncio.gather(
                self._send(lane, items[:half], attempt + 1), self._send(lane, items[half:], attempt + 1)
            )
        elif items:
            await self._send(lane, items, attempt + 1)

    @staticmethod
    async def _one(lane: _Lane, event: Event, deadline: float | None) -> None:
        one: dict[str, Any] = {"name": event["name"], "channels": [event["channel"]], "data": event["data"]}
        if "socket_id" in event:
            one["socket_id"] = event["socket_id"]
        await send(lane.client, events_request(lane.client, one), deadline)

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
