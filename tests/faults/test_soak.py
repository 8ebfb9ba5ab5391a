"""Soak: many executions, successes and failures mixed, through the real processes.

N = 2,000 by default (CI); ``MESG_PUSHER_SOAK=50000`` for the full run. Asserts that every
execution is answered (4 in 5 Completed, every 5th Failed for its bad socket_id), that the
service's RSS does not grow between 25% and 100% of the run (< 5 MB), and that it holds as many
sockets at the end as at 25% (no leaked connections). Figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import pytest

from mesg_local_engine.app import Application
from mesg_pusher.coalesce import CALLS_PER_APP
from tests.support.measure import memory_kb, open_sockets
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.soketi import Soketi

N = int(os.environ.get("MESG_PUSHER_SOAK", "2000"))
WINDOW = 200  # executions outstanding at once, as a busy application would have
MAX_RSS_GROWTH_KB = 5 * 1024
# Connections to Pusher in use vary with how fast it answers (up to CALLS_PER_APP calls at
# once); a leak grows with the executions, far past this.
SOCKET_SLACK = CALLS_PER_APP + 3


def soak_inputs(channel: str, i: int) -> dict[str, Any]:
    if i % 5 == 4:  # a failure: refused by the service's validation, never sent to Pusher
        return {"channel": channel, "name": "n", "data": {"i": i}, "socket_id": "not-a-socket-id"}
    return {"channel": channel, "name": "n", "data": {"i": i}}


# Pace is not what is tested (that is the benchmark's job): time enough for a loaded machine.
@pytest.mark.timeout(600 + N // 20)
async def test_soak_memory_and_sockets_stay_flat(soketi: Soketi) -> None:
    engine = EngineProcess(env=soketi.pusher_env(), extra_args=["--max-finished-executions", "1000"]).start()
    service = ServiceProcess(engine)
    channel = f"soak-{uuid.uuid4().hex[:8]}"
    samples: dict[int, tuple[int, int]] = {}  # executions answered -> (RSS kB, sockets)
    checkpoints = sorted({N // 4, N, *range(10_000, N + 1, 10_000)})
    answered = completed = 0
    failures: list[str] = []
    try:
        service.start_ready()
        pid = service.pid
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            slots = asyncio.Semaphore(WINDOW)

            async def one(i: int) -> None:
                nonlocal answered, completed
                try:
                    result = await app.execute_task_and_wait_result(
                        instance, "trigger", soak_inputs(channel, i), timeout=60
                    )
                finally:
                    slots.release()
                answered += 1
                expected_ok = i % 5 != 4
                if result.ok:
                    completed += 1
                if result.ok != expected_ok or (not result.ok and "socket_id" not in (result.error or "")):
                    failures.append(f"{i}: {result.status} {result.error}")
                if answered in checkpoints:
                    samples[answered] = (memory_kb(pid)[0], open_sockets(pid))

            began = time.monotonic()
            tasks = []
            for i in range(N):
                await slots.acquire()
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            runtime = time.monotonic() - began
        rss_end, peak = memory_kb(pid)
        report = ", ".join(
            f"{k}: RSS {v[0] / 1024:.1f} MB, {v[1]} sockets" for k, v in sorted(samples.items())
        )
        print(
            f"\nsoak N={N}: {runtime:.1f} s ({N / runtime:.0f}/s); {report}; "
            f"RSS end {rss_end / 1024:.1f} MB, peak {peak / 1024:.1f} MB"
        )
        assert answered == N and not failures, failures[:10]
        assert completed == N - N // 5
        rss_quarter, sockets_quarter = samples[N // 4]
        rss_full, sockets_full = samples[N]
        assert rss_full - rss_quarter < MAX_RSS_GROWTH_KB, (rss_quarter, rss_full)
        assert abs(sockets_full - sockets_quarter) <= SOCKET_SLACK, (sockets_quarter, sockets_full)
        assert service.running
    finally:
        assert service.stop() == 0
        engine.stop()
    assert f"stopped: {completed} completed, {N - completed} failed" in service.log()
