"""The receive loop: executions in, exactly one result each out, within an in-flight limit.

Each execution becomes one asyncio task keyed by its hash (a hash seen twice runs once). A
semaphore caps how many run at once; the rest wait their turn. Results go to the ``Outbox``,
which retries while the engine is away. On shutdown: stop receiving, answer the queued
executions with an error (so no application waits forever), give the running ones a grace
period, then report what is left as interrupted, and deliver every result before returning.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import Counter, OrderedDict
from collections.abc import Mapping

from mesg_pusher import metrics
from mesg_pusher.backoff import backoff
from mesg_pusher.config import secrets_in
from mesg_pusher.engine import EngineClient, Execution
from mesg_pusher.errors import (
    INTERNAL_ERROR,
    INTERRUPTED,
    UNKNOWN_TASK,
    EngineError,
    MesgPusherError,
    ShuttingDown,
    error_text,
)
from mesg_pusher.logs import bind_execution
from mesg_pusher.outbox import Outbox, Result
from mesg_pusher.redact import scrub
from mesg_pusher.tasks import Handler, TaskContext

logger = logging.getLogger(__name__)

RECENT_HASHES = 10_000
STOPPING = error_text(
    ShuttingDown.code, "mesg-pusher is stopping: this execution was not started; create it again later"
)


class Worker:
    """Runs executions from one engine subscription until told to stop."""

    def __init__(
        self,
        engine: EngineClient,
        handlers: Mapping[str, Handler],
        context: TaskContext,
        *,
        concurrency: int = 64,
        grace_period: float = 10.0,
    ) -> None:
        self.engine = engine
        self.handlers = handlers
        self.context = context
        self.grace_period = grace_period
        self.outbox = Outbox(engine)
        self.counts: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[bytes, asyncio.Task[Result]] = {}
        self._started: set[bytes] = set()
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self._secrets = context.settings.secrets
        self._debug = logger.isEnabledFor(logging.DEBUG)

    @property
    def in_flight(self) -> int:
        """Executions received and not yet finished (running or waiting for a slot)."""
        return len(self._tasks)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down gracefully."""
        receiving = asyncio.create_task(self._receive(), name="receive")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        receiving.cancel()
        stopping.cancel()
        await asyncio.gather(receiving, stopping, return_exceptions=True)
        await self._shutdown()

    async def _receive(self) -> None:
        attempt = 0
        while True:
            try:
                async with self.engine.subscribe() as stream:
                    logger.info(
                        "ready: subscribed to executions on %s (%s)",
                        self.engine.endpoint,
                        self.engine.generation,
                    )
                    metrics.hooks.stream_up()
                    attempt = 0
                    async for execution in stream:
                        self._accept(execution)
                logger.warning("the engine closed the execution stream; subscribing again")
                metrics.hooks.stream_down("the engine closed the execution stream")
            except EngineError as exc:
                logger.warning("%s", exc)
                metrics.hooks.stream_down(str(exc))
            delay = backoff(attempt)
            attempt += 1
            logger.info(
                "connecting to the engine at %s (attempt %d) in %.1f s", self.engine.endpoint, attempt, delay
            )
            await asyncio.sleep(delay)

    def _accept(self, execution: Execution) -> None:
        key = execution.hash
        if key in self._tasks or key in self._recent:
            self.counts["duplicate"] += 1
            logger.info("execution %s received twice; running it once", execution.id)
            return
        task = asyncio.get_running_loop().create_task(self._process(execution))
        self._tasks[key] = task
        metrics.hooks.execution_received(key)
        task.add_done_callback(lambda done: self._finished(execution, done))

    async def _process(self, execution: Execution) -> Result:
        async with self._slots:
            bind_execution(execution.hash, execution.task_key)  # LOG_FORMAT=json names it
            self._started.add(execution.hash)
            return await self._run(execution)

    async def _run(self, execution: Execution) -> Result:
        handler = self.handlers.get(execution.task_key)
        if handler is None:
            known = ", ".join(self.handlers)
            return Result(
                execution.hash,
                error=error_text(
                    UNKNOWN_TASK, f"unknown task {execution.task_key!r}; this service has: {known}"
                ),
            )
        began = time.perf_counter() if self._debug else 0.0
        try:
            outputs = await handler(self.context, execution.inputs)
        except MesgPusherError as exc:
            error = error_text(exc.code, scrub(str(exc), self._secrets + secrets_in(execution.inputs)))
            logger.info("execution %s (%s) failed: %s", execution.id, execution.task_key, error)
            return Result(execution.hash, error=error)
        except Exception as exc:  # a bug of ours must cost one execution, not the service
            secrets = self._secrets + secrets_in(execution.inputs)
            logger.error(
                "execution %s (%s) raised an unexpected error:\n%s",
                execution.id,
                execution.task_key,
                scrub("".join(traceback.format_exception(exc)), secrets),
            )
            name = type(exc).__name__
            return Result(
                execution.hash,
                error=error_text(INTERNAL_ERROR, f"internal error in mesg-pusher ({name}); see its log"),
            )
        if self._debug:
            logger.debug(
                "execution %s (%s) completed in %.1f ms",
                execution.id,
                execution.task_key,
                (time.perf_counter() - began) * 1000,
            )
        return Result(execution.hash, outputs=outputs)

    def _finished(self, execution: Execution, task: asyncio.Task[Result]) -> None:
        key = execution.hash
        del self._tasks[key]
        started = key in self._started
        self._started.discard(key)
        self._recent[key] = None
        if len(self._recent) > RECENT_HASHES:
            self._recent.popitem(last=False)
        if task.cancelled():
            result = (
                Result(key, error=STOPPING)
                if not started
                else Result(
                    key,
                    error=error_text(
                        INTERRUPTED,
                        f"mesg-pusher stopped before this execution finished (grace period "
                        f"{self.grace_period:g} s); whether Pusher received it is unknown",
                    ),
                )
            )
        else:
            result = task.result()
        self.counts["failed" if result.error is not None else "completed"] += 1
        metrics.hooks.execution_finished(key, execution.task_key, task.cancelled(), result.error)
        self.outbox.submit(result)

    async def _shutdown(self) -> None:
        queued = [t for k, t in self._tasks.items() if k not in self._started]
        running = [t for k, t in self._tasks.items() if k in self._started]
        logger.info("stopping: %d running, %d queued (answered as not started)", len(running), len(queued))
        for task in queued:
            task.cancel()
        deadline = time.monotonic() + self.grace_period
        if running:
            _, late = await asyncio.wait(running, timeout=self.grace_period)
            for task in late:
                task.cancel()
            if late:
                logger.warning(
                    "%d executions still running after the grace period; reported as interrupted", len(late)
                )
        await asyncio.gather(*queued, *running, return_exceptions=True)
        undelivered = await self.outbox.drain(max(deadline - time.monotonic(), 5.0))
        logger.info(
            "stopped: %d completed, %d failed, %d duplicates ignored, %d results undelivered",
            self.counts["completed"],
            self.counts["failed"],
            self.counts["duplicate"],
            undelivered,
        )
