"""Events on their way to the engine: one FIFO, sent in order, retried while the engine is away.

Order matters for events (a ``member_added`` must not overtake its ``channel_occupied``), so
one sender task sends them one at a time, unlike the ``Outbox``'s concurrent first attempt.
Each event gets a future that says how it ended, so the webhook can answer Pusher only once
every event it carried was accepted (and answer 503, withdrawing them, when not in time).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mesg_pusher import metrics
from mesg_pusher.backoff import backoff, wait_until_empty
from mesg_pusher.engine import EngineClient
from mesg_pusher.errors import EngineError, EngineRejected

logger = logging.getLogger(__name__)

MAX_PENDING = 10_000

Outcome = Literal["accepted", "rejected", "dropped"]


@dataclass(slots=True)
class _Pending:
    key: str
    data: Mapping[str, Any]
    done: asyncio.Future[Outcome] = field(repr=False)


class Emitter:
    """Sends events with ``EngineClient.emit``; ``emit`` never blocks and never raises.

    A transport failure (``EngineError``) keeps the event at the head of the queue and retries
    it with capped exponential backoff; a refusal (``EngineRejected``: the data does not match
    mesg.yml) is logged with the engine's reason and the event is dropped. When the queue is
    full the oldest waiting event is dropped and counted.
    """

    def __init__(self, engine: EngineClient, max_pending: int = MAX_PENDING) -> None:
        self._engine = engine
        self._max_pending = max_pending
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self.accepted = 0
        self.rejected = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Events not yet accepted or refused by the engine (waiting or being sent)."""
        return len(self._queue) + int(self._busy)

    def room(self) -> int:
        """How many events can be queued without dropping any."""
        return max(0, self._max_pending - len(self._queue))

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send_all(), name="emitter")

    def emit(self, key: str, data: Mapping[str, Any]) -> asyncio.Future[Outcome]:
        """Queue an event; the future ends with how it went (cancel it to withdraw the event)."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if len(self._queue) >= self._max_pending:
            lost = self._queue.popleft()
            self.dropped += 1
            if not lost.done.done():
                lost.done.set_result("dropped")
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.error(
                    "event queue full (%d): dropped the oldest %r event (%d dropped so far)",
                    self._max_pending,
                    lost.key,
                    self.dropped,
                )
        self._queue.append(_Pending(key, data, done))
        self._wakeup.set()
        self.start()
        return done

    async def _send_all(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            item = self._queue.popleft()
            if item.done.done():  # withdrawn (cancelled) before its turn
                continue
            self._busy = True
            try:
                outcome = await self._send(item)
            finally:
                self._busy = False
            if not item.done.done():
                item.done.set_result(outcome)

    async def _send(self, item: _Pending) -> Outcome:
        attempt = 0
        while True:
            try:
                await self._engine.emit(item.key, item.data)
            except EngineRejected as exc:
                self.rejected += 1
                logger.error("%s; event dropped", exc)
                return "rejected"
            except EngineError as exc:
                if item.done.done():  # withdrawn while the engine is away
                    return "dropped"
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    logger.warning("%s; %d events held, retrying (attempt %d)", exc, self.pending, attempt)
                await asyncio.sleep(backoff(attempt - 1))
                continue
            self.accepted += 1
            metrics.hooks.event_emitted(item.key)
            if attempt:
                logger.info("engine back: event %r delivered; %d more queued", item.key, len(self._queue))
            return "accepted"

    async def close(self, timeout: float) -> int:
        """Send what is queued within ``timeout``, then stop; the count left undelivered."""
        left = await wait_until_empty(lambda: self.pending, timeout)
        if left:
            logger.error("%d events could not be delivered before stopping", left)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in self._queue:
            if not item.done.done():
                item.done.set_result("dropped")
        self._queue.clear()
        return left
