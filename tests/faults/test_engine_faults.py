"""Engine-side faults, with the real service process, the local engine and soketi.

- the engine is not there when the service starts, and comes 5 s later;
- the engine is SIGKILLed with 200 executions in flight and restarted with its state file;
- the engine ends the stream cleanly (SIGUSR1), or the path to it goes silent (keepalive);
- an Update the engine refuses (already finished, unknown hash) is logged once, not retried.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest

from mesg_local_engine import start_engine
from mesg_local_engine.app import Application
from mesg_local_engine.state import ExecutionJournal
from mesg_pusher.hash_text import b58
from tests.support.e2e import settled, trigger_inputs, trigger_many
from tests.support.metrics import wait_for_gauge
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.pusher_ws import PusherWS
from tests.support.relay import TcpProxy
from tests.support.soketi import Soketi, free_port

# --- helpers ------------------------------------------------------------------------------


async def wait_for_log(service: ServiceProcess, text: str, timeout: float = 20.0, after: int = 0) -> None:
    """``service.wait_for_log`` off the event loop (relays in the path run on this loop)."""
    await asyncio.to_thread(service.wait_for_log, text, timeout, after)


def stop_all(service: ServiceProcess, engine: EngineProcess) -> int | None:
    code = service.stop()
    engine.stop()
    return code


# --- the state file -----------------------------------------------------------------------


async def test_state_file_restores_executions_after_a_restart(tmp_path: Path) -> None:
    """In-process check of the journal: created, finished and torn records across a restart."""
    path = tmp_path / "engine.state"
    engine = await start_engine(state_file=path)
    async with Application.connect(engine.endpoint) as app:
        instance = await app.resolve("com.mesg.pusher")
        hashes = [await app.execute_task(instance, "trigger", trigger_inputs("c", i)) for i in range(3)]
        await app.update_execution(hashes[0], error="gave up")
    await engine.stop()
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(b"\x00\x00\x01\x00partial")  # a crash in the middle of a record

    engine = await start_engine(port=int(engine.endpoint.rsplit(":", 1)[1]), state_file=path)
    try:
        assert path.stat().st_size == size  # the torn tail was cut
        async with Application.connect(engine.endpoint) as app:
            first, second, _ = [await app.get_execution(h) for h in hashes]
            assert (first.status, first.error) == ("Failed", "gave up")
            assert second.status == "InProgress"
            await app.update_execution(hashes[1], error="late")  # accepted: the engine knows it
            second = await app.get_execution(hashes[1])
            assert (second.status, second.error) == ("Failed", "late")
            with pytest.raises(Exception, match="instead of"):
                await app.update_execution(hashes[0], error="again")
    finally:
        await engine.stop()
    assert len(ExecutionJournal(path).read()) == 5  # three creates, two updates


# --- engine side --------------------------------------------------------------------------


async def test_engine_started_5s_after_the_service(soketi: Soketi) -> None:
    engine = EngineProcess(env=soketi.pusher_env()).start()  # learn its port and instance token
    engine.stop()
    service = ServiceProcess(engine)
    try:
        service.start()
        await asyncio.sleep(5.0)
        log = service.log()
        assert service.running, log
        assert "ready: subscribed" not in log
        attempts = log.count(f"connecting to the engine at {engine.endpoint}")
        assert attempts >= 3, log  # it keeps trying, with backoff
        engine.restart()
        await wait_for_log(service, "ready: subscribed", 20)
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            results = await trigger_many(app, instance, f"late-{uuid.uuid4().hex[:8]}", 10)
        assert [r.status for r in results] == ["Completed"] * 10, [r.error for r in results]
    finally:
        assert stop_all(service, engine) == 0


async def test_engine_sigkilled_with_200_in_flight_every_result_arrives_once(
    soketi: Soketi, slow_pusher: TcpProxy, tmp_path: Path
) -> None:
    count, metrics_port = 200, free_port()
    engine = EngineProcess(env=soketi.pusher_env(), state_file=tmp_path / "engine.state").start()
    service = ServiceProcess(
        engine,
        env={
            "PUSHER_PORT": str(slow_pusher.port),
            "PUSHER_TIMEOUT": "30000",
            "MESG_PUSHER_CONCURRENCY": "256",  # all 200 at Pusher at once
            "MESG_PUSHER_METRICS_PORT": str(metrics_port),
        },
    )
    channel = f"kill-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(service.start_ready)
        async with PusherWS(soketi.ws_url()) as ws:
            await ws.subscribe(channel)
            async with Application.connect(engine.endpoint) as app:
                instance = await app.resolve("com.mesg.pusher")
                hashes = await asyncio.gather(
                    *(app.execute_task(instance, "trigger", trigger_inputs(channel, i)) for i in range(count))
                )
                # Received by the service (a state, not a guess of time), held by the slow Pusher.
                await wait_for_gauge(metrics_port, "mesg_pusher_executions_in_flight", count)
                offset = len(service.log())
                engine.kill()
            # The Pusher calls succeed while the engine is dead: each result is held.
            received = [
                (await ws.next_event(channel=channel, event="n", timeout=30))["data"]["i"]
                for _ in range(count)
            ]
            assert sorted(received) == list(range(count))
            await wait_for_log(service, "held for retry", 10, after=offset)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(engine.restart)
            assert f"{count} executions restored" in engine.log()
            async with Application.connect(engine.endpoint) as app:
                results = await settled(app, hashes, timeout=30)
                statuses = [r.status for r in results]
                assert statuses == ["Completed"] * count, {s: statuses.count(s) for s in set(statuses)}
                # and the service serves again
                await wait_for_log(service, "ready: subscribed", 20, after=offset)
                again = await trigger_many(app, await app.resolve("com.mesg.pusher"), channel, 1)
                assert again[0].ok, again[0].error
            # exactly once on Pusher: the 200 and the new one, nothing more
            assert (await ws.next_event(channel=channel, event="n", timeout=10))["data"]["i"] == 0
            with pytest.raises(TimeoutError):
                await ws.next_event(channel=channel, event="n", timeout=1.0)
        log = service.log()[offset:]
        assert "result dropped" not in log, log[-3000:]  # no Update was refused: none sent twice
        assert "engine back: delivering" in log
    finally:
        assert stop_all(service, engine) == 0


async def test_stream_closed_by_the_engine_service_resubscribes(soketi: Soketi) -> None:
    engine = EngineProcess(env=soketi.pusher_env()).start()
    service = ServiceProcess(engine)
    try:
        service.start_ready()
        for _ in range(2):
            offset = len(service.log())
            engine.signal(signal.SIGUSR1)
            await wait_for_log(service, "the engine closed the execution stream", 10, after=offset)
            await wait_for_log(service, "ready: subscribed", 10, after=offset)
        assert "SIGUSR1: closing" in engine.log()
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            results = await trigger_many(app, instance, f"closed-{uuid.uuid4().hex[:8]}", 5)
        assert all(r.ok for r in results), [r.error for r in results]
    finally:
        assert stop_all(service, engine) == 0


@pytest.mark.timeout(120)
async def test_silent_path_noticed_by_keepalive_service_resubscribes(soketi: Soketi) -> None:
    engine = EngineProcess(env=soketi.pusher_env()).start()
    path = await TcpProxy(engine.port).start()
    service = ServiceProcess(
        engine, env={"MESG_ENDPOINT": f"127.0.0.1:{path.port}", "MESG_PUSHER_KEEPALIVE_MS": "2000"}
    )
    try:
        await asyncio.to_thread(service.start_ready)
        # Pings every 2 s on an idle stream are accepted: no GOAWAY, no resubscription.
        offset = len(service.log())
        await asyncio.sleep(6.0)
        assert "ready: subscribed" not in service.log()[offset:], service.log()[offset:]
        assert path.blackhole() >= 1
        silenced = time.monotonic()
        # Nothing closes the connection: only the unanswered keepalive ping (2 s + 20 s) tells.
        await wait_for_log(service, "ready: subscribed", 60, after=offset)
        noticed = time.monotonic() - silenced
        assert noticed < 40, noticed
        assert path.connections >= 2
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            results = await trigger_many(app, instance, f"silent-{uuid.uuid4().hex[:8]}", 5)
        assert all(r.ok for r in results), [r.error for r in results]
    finally:
        code = await asyncio.to_thread(stop_all, service, engine)
        await path.stop()
    assert code == 0


async def test_update_refused_as_already_finished_is_logged_once(
    soketi: Soketi, slow_pusher: TcpProxy
) -> None:
    engine = EngineProcess(env=soketi.pusher_env()).start()
    service = ServiceProcess(engine, env={"PUSHER_PORT": str(slow_pusher.port), "PUSHER_TIMEOUT": "20000"})
    try:
        await asyncio.to_thread(service.start_ready)
        offset = len(service.log())
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            channel = f"refused-{uuid.uuid4().hex[:8]}"
            hashes = [
                await app.execute_task(instance, "trigger", trigger_inputs(channel, i)) for i in range(5)
            ]
            # Someone else finishes them while the service waits on the slow Pusher.
            for execution_hash in hashes:
                await app.update_execution(execution_hash, error="cancelled by the application")
            await _wait_count(service, "result dropped", 5, offset, timeout=20)
            await asyncio.sleep(3.0)  # any retry would show up by now
            lines = [line for line in service.log()[offset:].splitlines() if "result dropped" in line]
            assert len(lines) == 5, lines
            for execution_hash in hashes:
                mine = [line for line in lines if b58(execution_hash) in line]
                assert len(mine) == 1 and "instead of" in mine[0], lines
                result = await app.get_execution(execution_hash)
                assert (result.status, result.error) == ("Failed", "cancelled by the application")
            assert "held for retry" not in service.log()[offset:]
    finally:
        assert await asyncio.to_thread(stop_all, service, engine) == 0


async def test_update_of_unknown_execution_is_logged_once(soketi: Soketi, slow_pusher: TcpProxy) -> None:
    """An engine restarted without its state (in memory) forgets executions: NOT_FOUND, once."""
    engine = EngineProcess(env=soketi.pusher_env()).start()
    service = ServiceProcess(engine, env={"PUSHER_PORT": str(slow_pusher.port), "PUSHER_TIMEOUT": "20000"})
    try:
        await asyncio.to_thread(service.start_ready)
        offset = len(service.log())
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            channel = f"unknown-{uuid.uuid4().hex[:8]}"
            hashes = [
                await app.execute_task(instance, "trigger", trigger_inputs(channel, i)) for i in range(5)
            ]
            # Let the stream deliver them: killed first, the engine would lose the last one
            # before the service ever saw it (v0.16 does not replay).
            await asyncio.sleep(0.3)
        engine.kill()
        await wait_for_log(service, "held for retry", 15, after=offset)
        await asyncio.to_thread(engine.restart)
        await _wait_count(service, "result dropped", 5, offset, timeout=20)
        await asyncio.sleep(3.0)
        lines = [line for line in service.log()[offset:].splitlines() if "result dropped" in line]
        assert len(lines) == 5, lines
        for execution_hash in hashes:
            mine = [line for line in lines if b58(execution_hash) in line]
            assert len(mine) == 1 and "not found" in mine[0], lines
    finally:
        assert await asyncio.to_thread(stop_all, service, engine) == 0


async def _wait_count(service: ServiceProcess, text: str, count: int, offset: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while service.log()[offset:].count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not seen {count} times:\n{service.log()[offset:][-3000:]}")
        await asyncio.sleep(0.1)
