"""The service process stopped by signals, with the local engine and soketi.

- SIGTERM with 64 executions running and 500 queued: the running ones finish and report within
  the grace period, the queued ones are answered "stopping", exit 0.
- SIGKILL, then a restart: at most the executions in flight at the kill are lost (they stay
  InProgress: engine v0.16 never sends them again); nothing is failed or answered twice, and
  new executions complete.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from mesg_local_engine.app import Application, ExecutionResult
from mesg_pusher.worker import STOPPING
from tests.support.e2e import trigger_inputs
from tests.support.metrics import wait_for_gauge
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.pusher_ws import PusherWS
from tests.support.relay import TcpProxy
from tests.support.soketi import Soketi, free_port


async def statuses(app: Application, hashes: list[bytes]) -> list[ExecutionResult]:
    return list(await asyncio.gather(*(app.get_execution(h) for h in hashes)))


async def drain_events(ws: PusherWS, channel: str, quiet: float = 1.5) -> list[int]:
    """Every event ``n`` on ``channel`` until none comes for ``quiet`` seconds."""
    seen: list[int] = []
    while True:
        try:
            frame = await ws.next_event(channel=channel, event="n", timeout=quiet)
        except TimeoutError:
            return seen
        seen.append(frame["data"]["i"])


@pytest.fixture
async def very_slow_pusher(soketi: Soketi) -> AsyncIterator[TcpProxy]:
    """soketi behind a relay holding each request 6 s: the first 64 are still running at SIGTERM
    (sent once every execution was received, however long that took on a busy machine)."""
    proxy = await TcpProxy(soketi.port, delay=6.0).start()
    yield proxy
    await proxy.stop()


async def test_sigterm_with_64_running_and_500_queued(soketi: Soketi, very_slow_pusher: TcpProxy) -> None:
    running, queued, grace = 64, 500, 30.0
    metrics_port = free_port()
    engine = EngineProcess(env=soketi.pusher_env()).start()
    service = ServiceProcess(
        engine,
        env={
            "PUSHER_PORT": str(very_slow_pusher.port),
            "PUSHER_TIMEOUT": "30000",
            # A new connection per call: a kept-alive one, idle for the relay's 6 s, may be
            # closed by soketi just as the next call goes out (the 64 go out in two rounds).
            "PUSHER_KEEP_ALIVE": "false",
            "MESG_PUSHER_CONCURRENCY": str(running),
            "MESG_PUSHER_GRACE_PERIOD": str(grace),
            "MESG_PUSHER_METRICS_PORT": str(metrics_port),
        },
    )
    channel = f"term-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(service.start_ready)
        async with Application.connect(engine.endpoint) as app, PusherWS(soketi.ws_url()) as ws:
            await ws.subscribe(channel)
            instance = await app.resolve("com.mesg.pusher")
            waiting = asyncio.gather(
                *(
                    app.execute_task_and_wait_result(
                        instance, "trigger", trigger_inputs(channel, i), timeout=60
                    )
                    for i in range(running + queued)
                )
            )
            # All received (64 held by the slow Pusher, 500 queued): a state, not a guess of time.
            await wait_for_gauge(metrics_port, "mesg_pusher_executions_in_flight", running + queued)
            offset = len(service.log())
            service.signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = await asyncio.to_thread(service.wait, grace + 15)
            took = time.monotonic() - signalled
            results = await waiting
            events = await drain_events(ws, channel)
        assert code == 0
        assert took < grace + 10, took  # the grace period bounds it, with a loaded machine's margin
        log = service.log()[offset:]
        assert f"stopping: {running} running, {queued} queued" in log, log[-3000:]
        assert f"stopped: {running} completed, {queued} failed" in log, log[-3000:]
        assert "results undelivered" in log and "0 results undelivered" in log
        by_status = Counter(r.status for r in results)
        assert by_status == {"Completed": running, "Failed": queued}, by_status
        assert all(r.error == STOPPING for r in results if r.status == "Failed")
        assert "stopping" in STOPPING
        completed = sorted(i for i, r in enumerate(results) if r.ok)
        assert sorted(events) == completed  # the running ones reached Pusher once; no queued one did
    finally:
        service.stop()
        engine.stop()


async def test_sigkill_then_restart_loses_at_most_the_in_flight(
    soketi: Soketi, slow_pusher: TcpProxy
) -> None:
    total, concurrency = 30, 10
    engine = EngineProcess(env=soketi.pusher_env()).start()
    service = ServiceProcess(
        engine,
        env={
            "PUSHER_PORT": str(slow_pusher.port),
            "PUSHER_TIMEOUT": "20000",
            "MESG_PUSHER_CONCURRENCY": str(concurrency),
        },
    )
    channel = f"kill-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(service.start_ready)
        async with Application.connect(engine.endpoint) as app, PusherWS(soketi.ws_url()) as ws:
            await ws.subscribe(channel)
            instance = await app.resolve("com.mesg.pusher")
            hashes = [
                await app.execute_task(instance, "trigger", trigger_inputs(channel, i)) for i in range(total)
            ]
            deadline = time.monotonic() + 20
            while True:  # until the first batch is answered, the rest in flight
                done = [r for r in await statuses(app, hashes) if r.status != "InProgress"]
                if len(done) >= concurrency or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            service.kill()
            answered_before_kill = len(done)
            assert concurrency <= answered_before_kill < total
            await asyncio.sleep(1.0)
            after = await statuses(app, hashes)
            by_status = Counter(r.status for r in after)
            # Answered ones stay answered; nothing failed; the rest were in flight (received and
            # not answered): lost, as v0.16 never sends an execution again.
            assert set(by_status) <= {"Completed", "InProgress"}, by_status
            lost = by_status["InProgress"]
            assert lost <= total - answered_before_kill
            assert by_status["Completed"] >= answered_before_kill
            events = await drain_events(ws, channel)
            assert len(events) == len(set(events))  # no trigger twice
            completed = {i for i, r in enumerate(after) if r.ok}
            assert completed <= set(events)

            offset = len(service.log())
            await asyncio.to_thread(service.start_ready)
            new = await asyncio.gather(
                *(
                    app.execute_task_and_wait_result(
                        instance, "trigger", trigger_inputs(channel, 1000 + i), timeout=30
                    )
                    for i in range(10)
                )
            )
            assert all(r.ok for r in new), [r.error for r in new]
            # The lost ones are not replayed by the engine: still InProgress after the restart.
            again = await statuses(app, hashes)
            assert Counter(r.status for r in again)["InProgress"] == lost
            assert "ready: subscribed" in service.log()[offset:]
    finally:
        service.stop()
        engine.stop()
