"""The service process across engine outages and signals: no result lost, exactly one each."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import trigger_many
from tests.support.metrics import wait_for_gauge
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.pusher_ws import PusherWS
from tests.support.relay import TcpProxy
from tests.support.soketi import Soketi, free_port


async def test_engine_path_drops_mid_run_and_every_result_arrives_once(
    soketi: Soketi, slow_pusher: TcpProxy
) -> None:
    engine = EngineProcess(env=soketi.pusher_env()).start()
    path = await TcpProxy(engine.port).start()
    metrics_port = free_port()
    service = ServiceProcess(
        engine,
        env={
            "MESG_ENDPOINT": f"127.0.0.1:{path.port}",
            "PUSHER_PORT": str(slow_pusher.port),
            "MESG_PUSHER_METRICS_PORT": str(metrics_port),
        },
    )
    try:
        await asyncio.to_thread(service.start_ready)  # the relay runs on this event loop
        channel = f"outage-{uuid.uuid4().hex[:8]}"
        async with Application.connect(engine.endpoint) as app, PusherWS(soketi.ws_url()) as ws:
            instance = await app.resolve("com.mesg.pusher")
            await ws.subscribe(channel)
            running = asyncio.create_task(trigger_many(app, instance, channel, 20))
            # The 20 are now waiting on the slow Pusher: a state, not a guess of time.
            await wait_for_gauge(metrics_port, "mesg_pusher_executions_in_flight", 20)
            offset = len(service.log())
            await path.stop()  # the engine is away when their results are ready
            await asyncio.to_thread(service.wait_for_log, "held for retry", 30, offset)
            await path.start()
            results = await running
            assert [r.status for r in results] == ["Completed"] * 20, [r.error for r in results]
            received = sorted(
                [(await ws.next_event(channel=channel, event="n"))["data"]["i"] for _ in range(20)]
            )
            assert received == list(range(20))
            with pytest.raises(TimeoutError):  # nothing was published twice
                await ws.next_event(channel=channel, event="n", timeout=1.0)
            # and the service went back to serving: once it has resubscribed (v0.16 does not
            # replay work created before that), a new execution completes
            await asyncio.to_thread(service.wait_for_log, "ready: subscribed", 30, offset)
            again = await trigger_many(app, instance, channel, 1)
            assert again[0].ok, again[0].error
    finally:
        assert service.stop() == 0
        engine.stop()
        await path.stop()


async def test_engine_restarted_service_reconnects_and_serves(soketi: Soketi) -> None:
    engine = EngineProcess(env=soketi.pusher_env()).start()
    service = ServiceProcess(engine)
    try:
        service.start_ready()
        offset = len(service.log())
        engine.stop()
        await asyncio.sleep(1.0)
        engine.restart()
        service.wait_for_log("ready: subscribed", timeout=20, after=offset)
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            results = await trigger_many(app, instance, f"restart-{uuid.uuid4().hex[:8]}", 5)
        assert all(r.ok for r in results), [r.error for r in results]
        assert "connecting to the engine" in service.log()[offset:]
    finally:
        assert service.stop() == 0
        engine.stop()


async def test_sigterm_finishes_running_and_answers_queued(soketi: Soketi, slow_pusher: TcpProxy) -> None:
    env = {**soketi.pusher_env(), "PUSHER_PORT": str(slow_pusher.port)}
    engine = EngineProcess(env=env).start()
    metrics_port = free_port()
    service = ServiceProcess(
        engine,
        env={
            "MESG_PUSHER_CONCURRENCY": "4",
            "MESG_PUSHER_GRACE_PERIOD": "10",
            "MESG_PUSHER_METRICS_PORT": str(metrics_port),
        },
    )
    try:
        service.start_ready()
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            running = asyncio.create_task(trigger_many(app, instance, f"term-{uuid.uuid4().hex[:8]}", 12))
            # All twelve received (four running, held by the slow Pusher; eight queued).
            await wait_for_gauge(metrics_port, "mesg_pusher_executions_in_flight", 12)
            service.signal(signal.SIGTERM)
            results = await running
            assert service.wait(15) == 0
        statuses = [r.status for r in results]
        assert statuses.count("Completed") == 4, [r.error for r in results]
        stopping = [r.error for r in results if r.status == "Failed"]
        assert len(stopping) == 8 and all("stopping" in e for e in stopping), stopping
        assert "stopped: 4 completed, 8 failed" in service.log()
    finally:
        service.stop()
        engine.stop()
