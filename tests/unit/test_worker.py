"""The worker's rules, in process, against a fake engine client.

The fake is a test double of the engine-client interface the generation adapters implement
(``subscribe``, ``update``, ``emit``, ``close``): executions are pushed into its stream by
the test, results are recorded in arrival order, and it can be made "away" (every call fails
as an ``EngineError``, the way an unreachable engine fails). Handlers are small coroutines
that wait on events the test sets, so every test waits for states, never for wall-clock
margins. A failing rule shows here with the line that broke it, not as a lost result at the
end of a SIGTERM run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from mesg_pusher.config import PusherSettings
from mesg_pusher.engine import Execution
from mesg_pusher.errors import EngineError, EngineRejected, InputError
from mesg_pusher.pusher_client import ClientPool
from mesg_pusher.tasks import Handler, TaskContext
from mesg_pusher.worker import STOPPING, Worker

pytestmark = pytest.mark.timeout(30)

END = object()  # pushed into the stream: the engine closes it


@dataclass
class Delivered:
    hash: bytes
    outputs: Mapping[str, Any] | None
    error: str | None


@dataclass
class FakeEngine:
    """The engine as the worker sees it; the test drives its stream and its availability."""

    generation: str = "g1"
    endpoint: str = "fake-engine:0"
    away: bool = False
    reject: set[bytes] = field(default_factory=set)
    results: list[Delivered] = field(default_factory=list)
    events: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    subscriptions: int = 0
    attempts: int = 0  # update calls, failed ones included
    _stream: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    # -- the engine-client interface ------------------------------------------------------
    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Execution]]:
        if self.away:
            raise EngineError("execution stream: engine unavailable (UNAVAILABLE: fake)")
        self.subscriptions += 1
        await self._notify()
        yield self._read()

    async def update(
        self, execution_hash: bytes, outputs: Mapping[str, Any] | None = None, error: str | None = None
    ) -> None:
        self.attempts += 1
        if self.away:
            await self._notify()
            raise EngineError("result: engine unavailable (UNAVAILABLE: fake)")
        if execution_hash in self.reject:
            raise EngineRejected("result: engine answered FAILED_PRECONDITION: not in progress")
        self.results.append(Delivered(execution_hash, outputs, error))
        await self._notify()

    async def emit(self, key: str, data: Mapping[str, Any]) -> None:
        self.events.append((key, data))

    async def close(self) -> None:
        pass

    # -- driving it -------------------------------------------------------------------------
    def send(self, *executions: Execution) -> None:
        for execution in executions:
            self._stream.put_nowait(execution)

    def end_stream(self) -> None:
        self._stream.put_nowait(END)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``condition`` holds; an assertion naming what was delivered if it never does."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(condition)
        except TimeoutError:
            delivered = [int.from_bytes(r.hash, "big") for r in self.results]
            raise AssertionError(
                f"not reached within {timeout:g} s; results delivered for executions {delivered}"
            ) from None

    def result(self, execution_hash: bytes) -> Delivered:
        (found,) = [r for r in self.results if r.hash == execution_hash]
        return found

    async def _read(self) -> AsyncIterator[Execution]:
        while True:
            item = await self._stream.get()
            if item is END:
                return
            yield item

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def execution(number: int, task: str = "echo", **inputs: Any) -> Execution:
    return Execution(number.to_bytes(32, "big"), task, inputs)


@dataclass
class Gates:
    """Lets handlers run only when the test says so, and tells which are running."""

    running: set[int] = field(default_factory=set)
    peak: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    _open: dict[int, asyncio.Event] = field(default_factory=dict)

    def gate(self, n: int) -> asyncio.Event:
        return self._open.setdefault(n, asyncio.Event())

    def release(self, *numbers: int) -> None:
        for n in numbers:
            self.gate(n).set()

    async def held(self, ctx: TaskContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        n = int(inputs["n"])
        self.running.add(n)
        self.peak = max(self.peak, len(self.running))
        self.started.set()
        try:
            await self.gate(n).wait()
        finally:
            self.running.discard(n)
        return {"n": n}


async def echo(ctx: TaskContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {"echo": dict(inputs)}


async def refuse(ctx: TaskContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    raise InputError("input 'x' is wrong")


async def crash(ctx: TaskContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    raise ZeroDivisionError("a bug")


@dataclass
class Running:
    worker: Worker
    engine: FakeEngine
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def stopped(self) -> None:
        self.stop.set()
        await self.task


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start a worker on a fake engine; every worker still running at teardown is stopped."""
    started: list[Running] = []

    async def make(
        handlers: Mapping[str, Handler], *, concurrency: int = 8, grace_period: float = 5.0
    ) -> Running:
        engine = FakeEngine()
        context = TaskContext(PusherSettings({}), ClientPool())
        worker = Worker(
            engine,  # type: ignore[arg-type]  # a double of the interface, not an adapter
            handlers,
            context,
            concurrency=concurrency,
            grace_period=grace_period,
        )
        stop = asyncio.Event()
        running = Running(worker, engine, stop, asyncio.create_task(worker.run(stop)))
        started.append(running)
        await engine.wait_for(lambda: engine.subscriptions >= 1)
        return running

    yield make
    for running in started:
        if not running.task.done():
            await running.stopped()


async def test_exactly_one_result_per_execution(start: Callable[..., Awaitable[Running]]) -> None:
    running = await start({"echo": echo, "refuse": refuse, "crash": crash})
    engine = running.engine
    engine.send(
        execution(1, x=1),
        execution(2, "refuse"),
        execution(3, "crash"),
        execution(4, "nope"),
    )
    await engine.wait_for(lambda: len(engine.results) == 4)
    assert engine.result((1).to_bytes(32, "big")).outputs == {"echo": {"x": 1}}
    assert engine.result((2).to_bytes(32, "big")).error == "invalid_input: input 'x' is wrong"
    crashed = engine.result((3).to_bytes(32, "big"))
    assert crashed.outputs is None
    assert crashed.error == "internal_error: internal error in mesg-pusher (ZeroDivisionError); see its log"
    unknown = engine.result((4).to_bytes(32, "big")).error
    assert (
        unknown is not None and unknown.startswith("unknown_task: unknown task 'nope'") and "echo" in unknown
    )
    await running.stopped()
    assert len(engine.results) == 4  # nothing more at shutdown
    assert running.worker.counts["completed"] == 1 and running.worker.counts["failed"] == 3


async def test_a_duplicate_delivery_is_ignored(start: Callable[..., Awaitable[Running]]) -> None:
    gates = Gates()
    running = await start({"held": gates.held})
    engine = running.engine
    first = execution(1, "held", n=1)
    engine.send(first, first)  # again while it runs
    await gates.started.wait()
    gates.release(1)
    await engine.wait_for(lambda: len(engine.results) == 1)
    engine.send(first, execution(2, "held", n=2))  # again after it finished, then a new one
    gates.release(2)
    await engine.wait_for(lambda: len(engine.results) == 2)
    await running.stopped()
    assert [r.hash for r in engine.results] == [first.hash, (2).to_bytes(32, "big")]
    assert running.worker.counts["duplicate"] == 2


async def test_the_in_flight_limit_holds(start: Callable[..., Awaitable[Running]]) -> None:
    gates = Gates()
    running = await start({"held": gates.held}, concurrency=3)
    engine = running.engine
    engine.send(*(execution(n, "held", n=n) for n in range(10)))
    # Let the worker take in everything it was sent, then check who runs.
    while running.worker.in_flight < 10:
        await asyncio.sleep(0)
    for _ in range(20):  # several loop passes: nobody beyond the limit may start
        await asyncio.sleep(0)
    assert len(gates.running) == 3
    assert running.worker.in_flight == 10
    for n in range(10):
        gates.release(n)
        await asyncio.sleep(0)
    await engine.wait_for(lambda: len(engine.results) == 10)
    assert gates.peak == 3
    assert sorted(int(r.outputs["n"]) for r in engine.results if r.outputs) == list(range(10))


async def test_queued_executions_are_answered_at_shutdown(start: Callable[..., Awaitable[Running]]) -> None:
    gates = Gates()
    running = await start({"held": gates.held}, concurrency=2, grace_period=5.0)
    engine = running.engine
    engine.send(*(execution(n, "held", n=n) for n in range(5)))
    while len(gates.running) < 2 or running.worker.in_flight < 5:
        await asyncio.sleep(0)
    running.stop.set()
    # The queued three are answered as not started, while the running two go on.
    await engine.wait_for(lambda: len(engine.results) == 3)
    assert {r.error for r in engine.results} == {STOPPING}
    assert gates.running == {0, 1}
    gates.release(0, 1)
    await running.task
    assert [r.outputs for r in engine.results[3:]] in ([{"n": 0}, {"n": 1}], [{"n": 1}, {"n": 0}])
    assert running.worker.counts["completed"] == 2 and running.worker.counts["failed"] == 3


async def test_the_grace_period_ends_with_an_interrupted_result(
    start: Callable[..., Awaitable[Running]],
) -> None:
    gates = Gates()
    running = await start({"held": gates.held}, concurrency=4, grace_period=0.2)
    engine = running.engine
    engine.send(execution(1, "held", n=1), execution(2, "held", n=2))
    while len(gates.running) < 2:
        await asyncio.sleep(0)
    running.stop.set()
    gates.release(1)  # finishes within the grace period: its real result
    await running.task  # the second never finishes: cancelled when the grace period ends
    assert engine.result((1).to_bytes(32, "big")).outputs == {"n": 1}
    interrupted = engine.result((2).to_bytes(32, "big")).error
    assert interrupted is not None
    assert interrupted.startswith(
        "interrupted: mesg-pusher stopped before this execution finished (grace period 0.2 s)"
    )
    assert gates.running == set()
    assert len(engine.results) == 2


async def test_results_are_held_while_the_engine_is_away_then_delivered_in_order(
    start: Callable[..., Awaitable[Running]],
) -> None:
    gates = Gates()
    running = await start({"held": gates.held}, concurrency=10)
    engine = running.engine
    engine.send(*(execution(n, "held", n=n) for n in range(6)))
    while len(gates.running) < 6:
        await asyncio.sleep(0)
    engine.away = True
    for n in range(6):  # finish one at a time, in this order, while nothing can be delivered
        gates.release(n)
        while running.worker.outbox.pending < n + 1 or n in gates.running:
            await asyncio.sleep(0)
    attempts = engine.attempts
    await engine.wait_for(lambda: engine.attempts >= attempts + 2)  # it keeps retrying meanwhile
    assert engine.results == []
    assert running.worker.outbox.pending == 6
    engine.away = False
    await engine.wait_for(lambda: len(engine.results) == 6)
    assert [r.outputs for r in engine.results] == [{"n": n} for n in range(6)]
    assert running.worker.outbox.delivered == 6


async def test_a_result_the_engine_refuses_is_dropped_not_retried(
    start: Callable[..., Awaitable[Running]],
) -> None:
    running = await start({"echo": echo})
    engine = running.engine
    engine.reject.add((1).to_bytes(32, "big"))
    engine.send(execution(1), execution(2))
    await engine.wait_for(lambda: len(engine.results) == 1)
    await running.stopped()
    assert [r.hash for r in engine.results] == [(2).to_bytes(32, "big")]
    assert running.worker.outbox.rejected == 1
    assert engine.attempts == 2  # one call each: a refusal is not retried


async def test_a_closed_stream_is_subscribed_to_again(start: Callable[..., Awaitable[Running]]) -> None:
    running = await start({"echo": echo})
    engine = running.engine
    engine.end_stream()
    await engine.wait_for(lambda: engine.subscriptions == 2)
    engine.send(execution(7, x=7))
    await engine.wait_for(lambda: len(engine.results) == 1)
    assert engine.results[0].outputs == {"echo": {"x": 7}}
