"""Scale test: one G3 instance as 1, 2 and 4 runners, 2,000 triggers each time.

The engine picks each execution's executor at random among the runners; each runner is its
own service process. Asserts, for every run, that every execution is Completed exactly once
(the observer stream sees one Completed per hash, none Failed), that the WebSocket subscriber
gets each event exactly once, and that the work is shared: each runner's process completed
some, and together exactly all.

The three instances run side by side and are measured in turns (1, 2, 4 runners, then again
``MESG_PUSHER_SCALE_ROUNDS`` times), so a spell when this shared machine is slower weighs on
every runner count alike; 1 runner is the baseline of the same run. Figures are printed
(``-s`` shows them): throughput, and service CPU per trigger over all runners.
``MESG_PUSHER_SCALE=N`` changes the number of triggers per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from mesg_local_engine.app import Application
from mesg_pusher._proto.mesg.api import execution_pb2 as api_execution
from mesg_pusher._proto.mesg.api import execution_pb2_grpc
from mesg_pusher._proto.mesg.types import execution_pb2 as types_execution
from tests.support.e2e import received_numbers, trigger_many
from tests.support.measure import COALESCED, CpuMeter
from tests.support.processes import EngineProcess, ServiceProcess, start_services, terminate_all
from tests.support.pusher_ws import PusherWS
from tests.support.soketi import Soketi

N = int(os.environ.get("MESG_PUSHER_SCALE", "2000"))
ROUNDS = int(os.environ.get("MESG_PUSHER_SCALE_ROUNDS", "1"))
RUNNER_COUNTS = (1, 2, 4)
WARMUP = 200  # untimed first: connection pools, soketi and the processes' first calls
STOPPED = re.compile(r"stopped: (\d+) completed, (\d+) failed")


@dataclass
class RunnerSet:
    """One instance as ``runners`` runners: its engine, its processes, what they were given."""

    runners: int
    engine: EngineProcess
    services: tuple[ServiceProcess, ...]
    shares: Counter[bytes] = field(default_factory=Counter)
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


@contextlib.contextmanager
def deployed(soketi: Soketi) -> Iterator[list[RunnerSet]]:
    engines: list[EngineProcess] = []
    services: list[ServiceProcess] = []
    try:
        runner_sets = []
        for runners in RUNNER_COUNTS:
            engine = EngineProcess(env=soketi.pusher_env(), generation="g3", runners=runners).start()
            engines.append(engine)
            processes = start_services(engine, timeout=60)  # seven processes starting on 2 busy cores
            services.extend(processes)
            runner_sets.append(RunnerSet(runners, engine, processes))
        yield runner_sets
    finally:
        terminate_all([*engines, *services])


async def watch_finished(endpoint: str, instance: bytes, seen: Counter[bytes], ready: asyncio.Event) -> None:
    """Count every Completed or Failed execution of the instance, by hash, as the engine publishes it."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call: Any = execution_pb2_grpc.ExecutionStub(channel).Stream(
            api_execution.StreamExecutionRequest(
                filter=api_execution.StreamExecutionRequest.Filter(
                    statuses=[types_execution.Completed, types_execution.Failed], instanceHash=instance
                )
            )
        )
        await call.initial_metadata()
        ready.set()
        async for execution in call:
            status = "" if execution.status == types_execution.Completed else "failed:"
            seen[status.encode() + bytes(execution.hash)] += 1


async def run_once(soketi: Soketi, runner_set: RunnerSet) -> None:
    """2,000 triggers through one instance, checked, measured, added to its figures."""
    engine, services = runner_set.engine, runner_set.services
    channel = f"scale-{uuid.uuid4().hex[:8]}"
    finished: Counter[bytes] = Counter()
    watching = asyncio.Event()
    async with Application.connect(engine.endpoint) as app, PusherWS(soketi.ws_url()) as ws:
        instance = await app.resolve("com.mesg.pusher")
        watcher = asyncio.create_task(watch_finished(engine.endpoint, instance, finished, watching))
        await watching.wait()
        warmup = await trigger_many(app, instance, f"{channel}-warmup", WARMUP)
        await ws.subscribe(channel)
        delivered = asyncio.create_task(received_numbers(ws, channel, N))
        meters = [CpuMeter(service.pid) for service in services]
        for meter in meters:
            meter.start()
        began = time.monotonic()
        results = await trigger_many(app, instance, channel, N)
        elapsed = time.monotonic() - began
        for meter in meters:
            meter.stop()
        received = await delivered
        watcher.cancel()
    assert all(r.ok for r in warmup), {r.error for r in warmup if not r.ok}
    assert [r.status for r in results].count("Completed") == N, {r.error for r in results if not r.ok}
    assert len({r.hash for r in results}) == N
    assert set(finished.values()) == {1} and len(finished) == N + WARMUP, "an execution finished twice"
    assert all(not key.startswith(b"failed:") for key in finished)
    assert received == Counter(range(N)), "an event was lost or delivered twice"
    shares = Counter(result.executor for result in (*warmup, *results))
    assert engine.deployment is not None
    assert set(shares) == {r.hash for r in engine.deployment.runners}
    runner_set.shares += shares
    runner_set.rates.append(N / elapsed)
    runner_set.cpu_ms.append(CpuMeter.total(meters).cpu * 1000 / N)
    print(
        f"\nscale g3, {runner_set.runners} runner(s): {N} triggers in {elapsed:.2f} s = {N / elapsed:.0f}/s; "
        f"service CPU {runner_set.cpu_ms[-1]:.2f} ms per trigger (all runners); "
        f"executions per runner (with {WARMUP} untimed first) {sorted(shares.values(), reverse=True)}"
    )


@pytest.mark.timeout(300 + ROUNDS * N // 10)
async def test_g3_runners_share_2000_triggers_each_completed_and_delivered_once(soketi: Soketi) -> None:
    with deployed(soketi) as runner_sets:
        for _ in range(ROUNDS):
            for runner_set in runner_sets:
                await run_once(soketi, runner_set)
        for runner_set in runner_sets:
            codes = [service.stop() for service in runner_set.services]
            assert codes == [0] * runner_set.runners
    baseline = statistics.median(runner_sets[0].rates)
    for runner_set in runner_sets:
        rate = statistics.median(runner_set.rates)
        coalesced = [COALESCED.findall(service.log()) for service in runner_set.services]
        triggers = sum(int(found[-1][0]) for found in coalesced if found)
        calls = sum(int(found[-1][1]) for found in coalesced if found)
        print(
            f"\nscale g3 median of {ROUNDS}: {runner_set.runners} runner(s) {rate:.0f}/s "
            f"({rate / baseline:.2f} of 1 runner), service CPU {statistics.median(runner_set.cpu_ms):.2f} ms "
            f"per trigger, {triggers / max(calls, 1):.1f} triggers per Pusher call; "
            f"all rates {[round(r) for r in runner_set.rates]}"
        )
        runners = runner_set.engine.deployment.runners  # type: ignore[union-attr]
        completed = [int(STOPPED.findall(service.log())[-1][0]) for service in runner_set.services]
        # Each process did its share, and together exactly all: no execution ran on two runners.
        assert completed == [runner_set.shares[r.hash] for r in runners]
        assert sum(completed) == ROUNDS * (N + WARMUP) and all(completed), completed
