"""Results on their way to the engine: sent at once, held and retried while it is away."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from mesg_pusher.backoff import backoff, wait_until_empty
from mesg_pusher.engine import EngineClient
from mesg_pusher.errors import EngineError, EngineRejected
from mesg_pusher.hash_text import b58

logger = logging.getLogger(__name__)

MAX_PENDING = 100_000


@dataclass(frozen=True, slots=True)
class Result:
    """Exactly one per execution: outputs, or an error message."""

    hash: bytes
    outputs: dict[str, Any] | None = None
    error: str | None = None


class Outbox:
    """Delivers each result with one call (``Execution.Update``; G3: ``Runner.Result``).

    A result the engine could not take (unreachable, timed out) waits in a FIFO queue and is
    retried oldest-first until delivered or the process stops; once the engine is known to be
    away, new results queue behind the old ones instead of failing one by one. A result the
    engine refuses (e.g. a status error) is logged once and dropped: retrying cannot help.
    """

    def __init__(self, engine: EngineClient, max_pending: int = MAX_PENDING) -> None:
        self._engine = engine
        self._pending: deque[Result] = deque()
        self._max_pending = max_pending
        self._sending: set[asyncio.Task[None]] = set()
        self._retrying: asyncio.Task[None] | None = None
        self.delivered = 0
        self.rejected = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Results not yet acknowledged by the engine."""
        return len(self._pending) + len(self._sending)

    def submit(self, result: Result) -> None:
        """Hand over a result; never blocks, never raises."""
        if self._pending:
            self._hold(result)
            return
        task = asyncio.get_running_loop().create_task(self._send(result))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, result: Result) -> None:
        try:
            await self._engine.update(result.hash, result.outputs, result.error)
            self.delivered += 1
        except EngineRejected as exc:
            self.rejected += 1
            logger.error("%s; result dropped", exc)
        except EngineError as exc:
            logger.warning("%s; result held for retry", exc)
            self._hold(result)

    def _hold(self, result: Result) -> None:
        if len(self._pending) >= self._max_pending:
            lost = self._pending.popleft()
            self.dropped += 1
            logger.error(
                "result queue full (%d): dropped the oldest, execution %s (%d so far)",
                self._max_pending,
                b58(lost.hash),
                self.dropped,
            )
        self._pending.append(result)
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        attempt = 0
        while self._pending:
            result = self._pending[0]
            try:
                await self._engine.update(result.hash, result.outputs, result.error)
            except EngineRejected as exc:
                self.rejected += 1
                logger.error("%s; result dropped", exc)
            except EngineError:
                delay = backoff(attempt)
                attempt += 1
                if attempt == 1 or attempt % 10 == 0:
                    logger.warning(
                        "engine away: %d results held; retrying (attempt %d)", len(self._pending), attempt
                    )
                await asyncio.sleep(delay)
                continue
            else:
                self.delivered += 1
                if attempt:
                    logger.info("engine back: delivering %d held results", len(self._pending) - 1)
                attempt = 0
            if self._pending and self._pending[0] is result:
                self._pending.popleft()

    async def drain(self, timeout: float) -> int:
        """Wait until everything is delivered or ``timeout`` passes; the count left over."""
        left = await wait_until_empty(lambda: self.pending, timeout)
        if left:
            logger.error("%d results could not be delivered before stopping", left)
        if self._retrying is not None:
            self._retrying.cancel()
        for task in list(self._sending):
            task.cancel()
        return left
