"""Scale test (issue 10): one G3 instance as 1, 2 and 4 runners, 2,000 triggers each time.

The engine picks each execution's executor at random among the runners; each runner is its
own service process. Asserts that every execution is Completed exactly once (the observer
stream sees one Completed per hash, none Failed), that the WebSocket subscriber gets each
event exactly once, and that the work is shared: each runner's process completed some, and
together exactly all. Throughput is printed (``-s`` shows it), after an untimed warm-up; 1 runner is the
baseline of the same run. ``MESG_PUSHER_SCALE=N`` changes the number of triggers.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections import Counter
from typing import Any

import grpc
import pytest

from mesg_pusher._proto.mesg.api import execution_pb2 as api_execution
from mesg_pusher._proto.mesg.api import execution_pb2_grpc
from mesg_pusher._proto.mesg.types import execution_pb2 as types_execution
from mesg_pusher.harness.measure import CpuMeter
from mesg_pusher.harness.processes import EngineProcess, start_services, terminate_all
from mesg_pusher.harness.soketi import Soketi
from mesg_pusher.harness.ws_client import PusherWS
from mesg_pusher.local_engine.app import Application
from tests.support.e2e import received_numbers, trigger_many

N = int(os.environ.get("MESG_PUSHER_SCALE", "2000"))
WARMUP = 200  # untimed first: connection pools, soketi and the processes' first calls
STOPPED = re.compile(r"stopped: (\d+) completed, (\d+) failed")


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


@pytest.mark.timeout(240 + N // 20)
@pytest.mark.parametrize("runners", [1, 2, 4])
async def test_g3_runners_share_2000_triggers_each_completed_and_delivered_once(
    soketi: Soketi, runners: int
) -> None:
    engine = EngineProcess(env=soketi.pusher_env(), generation="g3", runners=runners).start()
    deployment = engine.deployment
    assert deployment is not None
    services = start_services(engine)
    channel = f"scale-{uuid.uuid4().hex[:8]}"
    finished: Counter[bytes] = Counter()
    watching = asyncio.Event()
    try:
        async with Application.connect(engine.endpoint) as app, PusherWS(soketi.ws_url()) as ws:
            instance = await app.resolve("com.mesg.pusher")
            watcher = asyncio.create_task(watch_finished(engine.endpoint, instance, finished, watching))
            await watching.wait()
            warmup = await trigger_many(app, instance, f"{channel}-warmup", WARMUP)
            await ws.subscribe(channel)
            delivered = asyncio.create_task(received_numbers(ws, channel, N))
            meters = [CpuMeter(service.pid) for service in services]
            engine_cpu = CpuMeter(engine.pid)
            for meter in (*meters, engine_cpu):
                meter.start()
            began = time.monotonic()
            results = await trigger_many(app, instance, channel, N)
            elapsed = time.monotonic() - began
            for meter in (*meters, engine_cpu):
                meter.stop()
            received = await delivered
            watcher.cancel()
        assert all(r.ok for r in warmup), {r.error for r in warmup if not r.ok}
        shares = Counter(result.executor for result in (*warmup, *results))
        print(
            f"\nscale g3, {runners} runner(s): {N} triggers in {elapsed:.2f} s = {N / elapsed:.0f}/s; "
            f"service CPU {CpuMeter.total(meters).cpu * 1000 / N:.2f} ms per trigger (all runners), "
            f"engine {engine_cpu.utilisation:.2f} of a core; "
            f"executions per runner (with {WARMUP} untimed first) {sorted(shares.values(), reverse=True)}"
        )
        assert [r.status for r in results].count("Completed") == N, {r.error for r in results if not r.ok}
        assert len({r.hash for r in results}) == N
        assert set(finished.values()) == {1} and len(finished) == N + WARMUP, "an execution finished twice"
        assert all(not key.startswith(b"failed:") for key in finished)
        assert received == Counter(range(N)), "an event was lost or delivered twice"
        assert set(shares) == {r.hash for r in deployment.runners}
    finally:
        codes = [service.stop() for service in services]
        terminate_all([engine])
    assert codes == [0] * runners
    completed = [int(STOPPED.findall(service.log())[-1][0]) for service in services]
    # Each process did its share, and together exactly all: no execution ran on two runners.
    assert sum(completed) == N + WARMUP and all(completed), completed
    assert completed == [shares[r.hash] for r in deployment.runners]
