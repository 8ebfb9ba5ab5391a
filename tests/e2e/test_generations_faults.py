"""Engine-side faults per generation, with real service processes, the local engine
as G2 or G3 with two runners, and soketi:

- the engine restarts mid-run (G2, G3): nothing the engine still knows is lost, each result is
  delivered once, G3 runners register again by themselves;
- a G3 engine restarted without its executions: held results it refuses for good are logged
  once and dropped, and the service serves on;
- a wrong G3 signature: a clear error, retried with backoff, no crash loop, no traceback;
- a G3 token invalidated by another Register of the same runner: logged, registered again;
- the engine late at start (G2, G3).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest

from mesg_local_engine.app import Application
from mesg_pusher._proto.mesg.grpc.orchestrator import runner_pb2 as orchestrator
from mesg_pusher._proto.mesg.grpc.orchestrator import runner_pb2_grpc as orchestrator_grpc
from mesg_pusher.hash_text import from_b58
from tests.support.e2e import received_numbers, settled, still_serving, trigger_inputs, trigger_many
from tests.support.processes import (
    EngineProcess,
    ServiceProcess,
    start_services,
    terminate_all,
)
from tests.support.pusher_ws import PusherWS
from tests.support.relay import TcpProxy
from tests.support.soketi import Soketi

RUNNERS = 2


async def wait_for_logs(
    services: Sequence[ServiceProcess], text: str, timeout: float = 20.0, after: Sequence[int] = ()
) -> None:
    """Until every service's log shows ``text`` (after its offset in ``after``), off the event loop."""
    offsets = list(after) or [0] * len(services)
    for service, offset in zip(services, offsets, strict=True):
        await asyncio.to_thread(service.wait_for_log, text, timeout, offset)


def stop(services: Sequence[ServiceProcess], engine: EngineProcess) -> list[int | None]:
    """Stop the services (their exit codes), then the engine."""
    codes = [service.stop() for service in services]
    terminate_all([engine])
    return codes


async def kill_mid_run_and_restart(
    engine: EngineProcess,
    services: Sequence[ServiceProcess],
    soketi: Soketi,
    count: int,
) -> tuple[list[bytes], list[int], Counter[int]]:
    """Create ``count`` triggers, SIGKILL the engine while Pusher holds them, restart it.

    Returns their hashes, each service's log offset before the kill, and the ``i`` of every
    event the subscriber got.
    """
    channel = f"restart-{uuid.uuid4().hex[:8]}"
    async with PusherWS(soketi.ws_url()) as ws:
        await ws.subscribe(channel)
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            hashes = await asyncio.gather(
                *(app.execute_task(instance, "trigger", trigger_inputs(channel, i)) for i in range(count))
            )
            await asyncio.sleep(0.3)  # received by the services, held 1 s by the slow Pusher
            offsets = [len(service.log()) for service in services]
            engine.kill()
        # The Pusher calls succeed while the engine is dead: every result is held.
        received = asyncio.create_task(received_numbers(ws, channel, count))
        await wait_for_logs(services, "held for retry", 15, offsets)
        await asyncio.to_thread(engine.restart)
        return hashes, offsets, await received


@pytest.mark.timeout(180)
@pytest.mark.parametrize("generation", ["g2", "g3"])
async def test_engine_restart_mid_run_every_result_delivered_once(
    soketi: Soketi, slow_pusher: TcpProxy, tmp_path: Path, generation: str
) -> None:
    count = 100
    engine = EngineProcess(
        env=soketi.pusher_env(), generation=generation, runners=RUNNERS, state_file=tmp_path / "engine.state"
    ).start()
    services = start_services(engine, {"PUSHER_PORT": str(slow_pusher.port), "PUSHER_TIMEOUT": "20000"})
    try:
        hashes, offsets, received = await kill_mid_run_and_restart(engine, services, soketi, count)
        async with Application.connect(engine.endpoint) as app:
            results = await settled(app, hashes, timeout=30)
        statuses = Counter(r.status for r in results)
        assert statuses == {"Completed": count}, statuses
        assert received == Counter(range(count)), "an event was lost or sent twice"
        assert {r.executor for r in results} == {r.hash for r in engine.deployment.runners}  # type: ignore[union-attr]
        await wait_for_logs(services, "ready: subscribed", 20, offsets)
        for service, offset in zip(services, offsets, strict=True):
            log = service.log()[offset:]
            assert "result dropped" not in log, log[-3000:]  # no result refused: none sent twice
            assert "engine back: delivering" in log, log[-3000:]
            if generation == "g3":
                assert "registered again as runner" in log, log[-3000:]
        async with Application.connect(engine.endpoint) as app:
            await still_serving(app, f"after-{generation}")
    finally:
        codes = await asyncio.to_thread(stop, services, engine)
    assert codes == [0] * RUNNERS


@pytest.mark.timeout(180)
async def test_g3_restart_without_the_executions_refused_results_dropped_once(
    soketi: Soketi, slow_pusher: TcpProxy
) -> None:
    count = 20
    engine = EngineProcess(env=soketi.pusher_env(), generation="g3", runners=RUNNERS).start()
    services = start_services(engine, {"PUSHER_PORT": str(slow_pusher.port), "PUSHER_TIMEOUT": "20000"})
    try:
        # No state file: the restarted engine knows none of the executions in flight.
        _, offsets, received = await kill_mid_run_and_restart(engine, services, soketi, count)
        assert received == Counter(range(count))
        await wait_for_logs(services, "ready: subscribed", 20, offsets)

        def logs() -> list[str]:
            return [service.log()[offset:] for service, offset in zip(services, offsets, strict=True)]

        deadline = time.monotonic() + 30
        while sum(log.count("result dropped") for log in logs()) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        settled_logs = logs()
        await asyncio.sleep(2.0)  # a result retried after its refusal would show by now
        for before, after in zip(settled_logs, logs(), strict=True):
            later = after[len(before) :]
            assert "result dropped" not in later and "held for retry" not in later, later[-3000:]
        dropped = sum(log.count("result dropped") for log in logs())
        assert dropped == count, f"{dropped} results dropped, {count} refused: each must be dropped once"
        for log in logs():
            assert "registered again as runner" in log, log[-3000:]
            assert "Traceback" not in log, log[-3000:]
        async with Application.connect(engine.endpoint) as app:
            await still_serving(app, "after-forgotten")
    finally:
        codes = await asyncio.to_thread(stop, services, engine)
    assert codes == [0] * RUNNERS


@pytest.mark.timeout(60)
async def test_g3_wrong_signature_is_a_clear_error_retried_without_crashing(soketi: Soketi) -> None:
    engine = EngineProcess(env=soketi.pusher_env(), generation="g3", runners=1).start()
    raw = bytearray(base64.b64decode(engine.mesg_env()["MESG_REGISTER_SIGNATURE"]))
    raw[7] ^= 0x40
    service = ServiceProcess(engine, env={"MESG_REGISTER_SIGNATURE": base64.b64encode(raw).decode()})
    try:
        service.start()
        await asyncio.to_thread(service.wait_for_log, "verification of the signature failed", 20)
        await asyncio.sleep(6.0)
        log = service.log()
        assert service.running, log[-3000:]
        assert "ready: subscribed" not in log
        assert "Traceback" not in log, log[-3000:]
        assert "MESG_REGISTER_SIGNATURE" in log  # says what to check
        attempts = engine.log().count("verification of the signature failed")  # nothing logged there
        assert attempts == 0
        registers = log.count("connecting to the engine")
        assert 2 <= registers <= 10, log[-3000:]  # retried, with backoff: no tight loop
    finally:
        codes = await asyncio.to_thread(stop, [service], engine)
    assert codes == [0]


@pytest.mark.timeout(90)
async def test_g3_token_invalidated_by_another_register_is_logged_and_registered_again(
    soketi: Soketi,
) -> None:
    engine = EngineProcess(env=soketi.pusher_env(), generation="g3", runners=RUNNERS).start()
    services = start_services(engine)
    try:
        offsets = [len(service.log()) for service in services]
        # Another process registers as runner 0, with runner 0's own signature.
        env = engine.mesg_env(0)
        async with grpc.aio.insecure_channel(engine.endpoint) as channel:
            response = await orchestrator_grpc.RunnerStub(channel).Register(
                orchestrator.RunnerRegisterRequest(
                    serviceHash=from_b58(env["MESG_SERVICE_HASH"]), envHash=from_b58(env["MESG_ENV_HASH"])
                ),
                metadata=(("mesg_request_signature", env["MESG_REGISTER_SIGNATURE"]),),
            )
        assert response.token
        async with Application.connect(engine.endpoint) as app:
            results = await trigger_many(app, await app.resolve("com.mesg.pusher"), "invalidated", 40)
        assert all(r.ok for r in results), [r.error for r in results]
        assert {r.executor for r in results} == {r.hash for r in engine.deployment.runners}  # type: ignore[union-attr]
        first = services[0].log()[offsets[0] :]
        assert "another process registered as runner" in first, first[-3000:]
        assert "registered again as runner" in first, first[-3000:]
        assert "result dropped" not in first
        second = services[1].log()[offsets[1] :]
        assert "registered again" not in second  # the other runner's token was left alone
    finally:
        codes = await asyncio.to_thread(stop, services, engine)
    assert codes == [0] * RUNNERS


@pytest.mark.timeout(90)
@pytest.mark.parametrize("generation", ["g2", "g3"])
async def test_engine_late_at_start(soketi: Soketi, generation: str) -> None:
    engine = EngineProcess(env=soketi.pusher_env(), generation=generation, runners=RUNNERS).start()
    engine.stop()  # it has told us its port and the runners' variables; now it is away
    services = [ServiceProcess(engine, runner=index) for index in range(RUNNERS)]
    try:
        for service in services:
            service.start()
        await asyncio.sleep(4.0)
        for service in services:
            log = service.log()
            assert service.running, log[-3000:]
            assert "ready: subscribed" not in log
            assert "Traceback" not in log, log[-3000:]
        await asyncio.to_thread(engine.restart)
        await wait_for_logs(services, "ready: subscribed", 30)
        async with Application.connect(engine.endpoint) as app:
            await still_serving(app, f"late-{generation}", 20)
    finally:
        codes = await asyncio.to_thread(stop, services, engine)
    assert codes == [0] * RUNNERS
