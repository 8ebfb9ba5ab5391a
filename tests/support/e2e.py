"""Helpers of the end-to-end tests: unique channel names, running tasks as an application, and
counting what a subscriber received."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mesg_local_engine.app import Application, ExecutionResult
from mesg_pusher.definition import check_task_outputs, load_definition
from tests.support.pusher_ws import PusherWS

DEFINITION = load_definition()


def channel(prefix: str = "test") -> str:
    """A channel name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def run(app: Application, instance: bytes, task: str, inputs: dict[str, Any]) -> ExecutionResult:
    """Execute and wait; a completed execution's outputs must satisfy mesg.yml."""
    result = await app.execute_task_and_wait_result(instance, task, inputs, timeout=20)
    if result.ok:
        # The engine would silently turn outputs that do not match mesg.yml into a failure.
        assert check_task_outputs(DEFINITION.name, DEFINITION.tasks[task], result.outputs or {}) is None
    return result


def trigger_inputs(channel: str, i: int) -> dict[str, Any]:
    """A trigger of event ``n`` carrying ``{"i": i}``: the subscriber can tell each one apart."""
    return {"channel": channel, "name": "n", "data": {"i": i}}


async def trigger_many(
    app: Application, instance: bytes, channel: str, count: int, window: int = 200, timeout: float = 60
) -> list[ExecutionResult]:
    """``count`` triggers with at most ``window`` in flight, as a busy application; in order."""
    slots = asyncio.Semaphore(window)

    async def one(i: int) -> ExecutionResult:
        async with slots:
            return await app.execute_task_and_wait_result(
                instance, "trigger", trigger_inputs(channel, i), timeout=timeout
            )

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def received_numbers(ws: PusherWS, channel: str, count: int, timeout: float = 30) -> Counter[int]:
    """The ``i`` of the next ``count`` ``n`` events on ``channel``, then of any more in 1 s."""
    seen: Counter[int] = Counter()
    for _ in range(count):
        seen[(await ws.next_event(channel=channel, event="n", timeout=timeout))["data"]["i"]] += 1
    with contextlib.suppress(TimeoutError):
        while True:
            seen[(await ws.next_event(channel=channel, event="n", timeout=1.0))["data"]["i"]] += 1
    return seen


async def settled(app: Application, hashes: Sequence[bytes], timeout: float) -> list[ExecutionResult]:
    """Poll ``Execution.Get`` until none of ``hashes`` is InProgress (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        results = list(await asyncio.gather(*(app.get_execution(h) for h in hashes)))
        if all(r.status != "InProgress" for r in results) or time.monotonic() > deadline:
            return results
        await asyncio.sleep(0.2)


async def still_serving(app: Application, channel: str, count: int = 10) -> None:
    """The service answers new work: ``count`` triggers, every one Completed."""
    results = await trigger_many(app, await app.resolve("com.mesg.pusher"), channel, count)
    assert all(r.ok for r in results), [r.error for r in results]
