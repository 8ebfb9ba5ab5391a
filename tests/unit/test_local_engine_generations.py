"""The local engine as G2 (v0.17-v0.20) and G3 (v0.21-v0.26), over real gRPC on loopback.

What a service of each generation relies on: runners with random executors, the executorHash
filter, G3's signed Register, tokens, the runner API and its refusals with the engine's texts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from mesg_local_engine import LocalEngine, start_engine
from mesg_local_engine._proto.mesg.api import event_pb2 as api_event
from mesg_local_engine._proto.mesg.api import event_pb2_grpc, execution_pb2_grpc
from mesg_local_engine._proto.mesg.api import execution_pb2 as api_execution
from mesg_local_engine._proto.mesg.grpc.orchestrator import runner_pb2 as orchestrator
from mesg_local_engine._proto.mesg.grpc.orchestrator import runner_pb2_grpc as orchestrator_grpc
from mesg_local_engine._proto.mesg.grpc.runner import runner_pb2 as runner_api
from mesg_local_engine._proto.mesg.grpc.runner import runner_pb2_grpc as runner_grpc
from mesg_local_engine._proto.mesg.types import execution_pb2 as types_execution
from mesg_local_engine.app import Application
from mesg_local_engine.deployment import Deployment
from mesg_local_engine.hash_text import b58, from_b58
from mesg_local_engine.signature import SigningKey, register_payload
from mesg_local_engine.values import dict_to_struct
from tests.support.local_engine import start_process

Filter = api_execution.StreamExecutionRequest.Filter
TRIGGER = {"name": "my-event", "data": {"x": 1}, "channel": "c"}
OUTPUTS = {"message": "sent"}
NOT_FOUND_TOKEN = "credential token doesn't exist"


@pytest.fixture
async def g2() -> AsyncIterator[LocalEngine]:
    engine = await start_engine(generation="g2", runners=3)
    yield engine
    await engine.stop(0)


@pytest.fixture
async def g3() -> AsyncIterator[LocalEngine]:
    engine = await start_engine(generation="g3", runners=2)
    yield engine
    await engine.stop(0)


@pytest.fixture
async def channel(request: pytest.FixtureRequest) -> AsyncIterator[grpc.aio.Channel]:
    engine: LocalEngine = request.getfixturevalue(request.param)
    async with grpc.aio.insecure_channel(engine.endpoint) as channel:
        yield channel


async def ready(call: grpc.aio.UnaryStreamCall[Any, Any]) -> grpc.aio.UnaryStreamCall[Any, Any]:
    metadata = await call.initial_metadata()
    assert metadata.get("status") == "ready", await call.details()
    return call


async def create_many(engine: LocalEngine, channel: grpc.aio.Channel, count: int) -> list[bytes]:
    app = Application(channel)
    return [await app.execute_task(engine.instance_hash, "trigger", TRIGGER) for _ in range(count)]


async def take(call: grpc.aio.UnaryStreamCall[Any, Any], count: int) -> list[types_execution.Execution]:
    async with asyncio.timeout(10):
        return [await call.read() for _ in range(count)]


async def register(channel: grpc.aio.Channel, engine: LocalEngine, runner: int = 0, **override: Any) -> str:
    env = engine.deployment.mesg_env(runner)
    request = orchestrator.RunnerRegisterRequest(
        serviceHash=override.get("service_hash", from_b58(env["MESG_SERVICE_HASH"])),
        envHash=from_b58(env["MESG_ENV_HASH"]),
    )
    signature = override.get("signature", env["MESG_REGISTER_SIGNATURE"])
    metadata = () if signature is None else (("mesg_request_signature", signature),)
    response = await orchestrator_grpc.RunnerStub(channel).Register(request, metadata=metadata)
    return str(response.token)


def read_ready_line(process: Any, timeout: float = 15.0) -> str:
    """The engine's READY line (its stdout carries nothing else)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY "):
            return str(line)
        if process.poll() is not None:
            break
    raise AssertionError("no READY line: " + process.stderr.read())


def token(value: str) -> tuple[tuple[str, str], ...]:
    return (("mesg_credential_token", value),)


async def refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


# --- G2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["g2"], indirect=True)
async def test_g2_executors_are_random_runners_and_the_filter_keeps_a_runners_own(
    g2: LocalEngine, channel: grpc.aio.Channel
) -> None:
    stub = execution_pb2_grpc.ExecutionStub(channel)
    runners = [runner.hash for runner in g2.deployment.runners]
    mine = await ready(
        stub.Stream(
            api_execution.StreamExecutionRequest(
                filter=Filter(statuses=[types_execution.InProgress], executorHash=runners[0])
            )
        )
    )
    everyone = await ready(
        stub.Stream(
            api_execution.StreamExecutionRequest(filter=Filter(statuses=[types_execution.InProgress]))
        )
    )
    hashes = await create_many(g2, channel, 60)
    seen = await take(everyone, 60)
    executors = Counter(bytes(e.executorHash) for e in seen)
    assert set(executors) == set(runners)  # every runner got work; 60 draws among 3
    received = await take(mine, executors[runners[0]])
    assert {bytes(e.hash) for e in received} == {bytes(e.hash) for e in seen if e.executorHash == runners[0]}
    assert all(e.executorHash == runners[0] for e in received)
    # G2 results go through Execution.Update, as in G1.
    await stub.Update(api_execution.UpdateExecutionRequest(hash=hashes[0], outputs=dict_to_struct(OUTPUTS)))
    done = await stub.Get(api_execution.GetExecutionRequest(hash=hashes[0]))
    assert done.status == types_execution.Completed
    mine.cancel()
    everyone.cancel()


@pytest.mark.parametrize("generation", ["g2", "g3"])
async def test_each_runner_has_its_own_hash_and_the_env_of_its_generation(generation: str) -> None:
    engine = await start_engine(generation=generation, runners=2)
    try:
        deployment = Deployment.from_ready_line(engine.deployment.ready_line())
        assert deployment == engine.deployment
        first, second = deployment.mesg_env(0), deployment.mesg_env(1)
        assert first["MESG_INSTANCE_HASH"] == second["MESG_INSTANCE_HASH"] == engine.token
        assert first["MESG_RUNNER_HASH"] != second["MESG_RUNNER_HASH"]
        assert "MESG_TOKEN" not in first
        if generation == "g3":
            assert first["MESG_REGISTER_SIGNATURE"] != second["MESG_REGISTER_SIGNATURE"]
            assert first["MESG_SERVICE_HASH"] == b58(engine.service_hash)
            assert len(base64.b64decode(first["MESG_REGISTER_SIGNATURE"])) == 64
        else:
            assert "MESG_REGISTER_SIGNATURE" not in first
    finally:
        await engine.stop(0)


async def test_g1_has_no_runners_and_a_restarted_g3_accepts_the_same_signatures() -> None:
    with pytest.raises(ValueError, match="no runners"):
        await start_engine(generation="g1", runners=2)
    with pytest.raises(ValueError, match="unknown engine generation"):
        await start_engine(generation="g4")
    first = await start_engine(generation="g3", runners=2)
    await first.stop(0)
    # The signature in a runner's environment outlives the engine process that made it.
    again = await start_engine(generation="g3", runners=2)
    other_seed = await start_engine(generation="g3", runners=2, key_seed=b"another node set")
    try:
        assert [r.hash for r in again.deployment.runners] == [r.hash for r in first.deployment.runners]
        async with grpc.aio.insecure_channel(again.endpoint) as channel:
            assert await register(channel, first, 1)
        async with grpc.aio.insecure_channel(other_seed.endpoint) as channel:
            assert (await refusal(register(channel, first, 1)))[1] == "verification of the signature failed"
    finally:
        await again.stop(0)
        await other_seed.stop(0)


# --- G3: Register -----------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["g3"], indirect=True)
async def test_g3_register_checks_the_signature_with_the_engines_texts(
    g3: LocalEngine, channel: grpc.aio.Channel
) -> None:
    assert len(from_b58(await register(channel, g3))) == 32
    code, text = await refusal(register(channel, g3, signature=None))
    assert code == grpc.StatusCode.UNKNOWN
    assert (
        text == 'signature not found in metadata, make sure to set it using the key "mesg_request_signature"'
    )
    # Another key's signature over the same request, a runner's signature over another
    # request, and garbage: all refused.
    payload = register_payload(g3.service_hash, g3.deployment.env_hash)
    stranger = SigningKey(b"not this engine").sign(payload)
    raw = bytearray(base64.b64decode(g3.deployment.runners[0].signature))
    raw[5] ^= 1
    for signature in (stranger, base64.b64encode(raw).decode()):
        assert await refusal(register(channel, g3, signature=signature)) == (
            grpc.StatusCode.UNKNOWN,
            "verification of the signature failed",
        )
    _, text = await refusal(register(channel, g3, service_hash=b"\x01" * 32))
    assert text == "verification of the signature failed"
    code, text = await refusal(register(channel, g3, signature="%%% not base64"))
    assert text.startswith("illegal base64 data")


@pytest.mark.parametrize("channel", ["g3"], indirect=True)
async def test_g3_refuses_a_high_s_signature_as_tendermint_does(
    g3: LocalEngine, channel: grpc.aio.Channel
) -> None:
    raw = base64.b64decode(g3.deployment.runners[0].signature)
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high = raw[:32] + (order - int.from_bytes(raw[32:])).to_bytes(32, "big")  # same (r, -s): valid ECDSA
    _, text = await refusal(register(channel, g3, signature=base64.b64encode(high).decode()))
    assert text == "verification of the signature failed"


@pytest.mark.parametrize("channel", ["g3"], indirect=True)
async def test_g3_tokens_a_second_register_invalidates_the_first(
    g3: LocalEngine, channel: grpc.aio.Channel
) -> None:
    runner = runner_grpc.RunnerStub(channel)
    event = runner_api.EventRequest(key="received", data=dict_to_struct({"channel": "c", "event": "e"}))
    missing = await refusal(runner.Event(event))
    assert missing == (
        grpc.StatusCode.UNKNOWN,
        'credential not found in metadata, make sure to set it using the name "mesg_credential_token"',
    )
    assert (await refusal(runner.Event(event, metadata=token("made-up"))))[1] == NOT_FOUND_TOKEN
    first = await register(channel, g3, 0)
    other_runner = await register(channel, g3, 1)
    second = await register(channel, g3, 0)
    assert (await refusal(runner.Event(event, metadata=token(first))))[1] == NOT_FOUND_TOKEN
    await runner.Event(event, metadata=token(second))
    await runner.Event(event, metadata=token(other_runner))  # another runner's token stays


@pytest.mark.parametrize("channel", ["g3"], indirect=True)
async def test_g3_runner_api_streams_own_executions_and_refuses_anothers_result(
    g3: LocalEngine, channel: grpc.aio.Channel
) -> None:
    runner = runner_grpc.RunnerStub(channel)
    tokens = [await register(channel, g3, 0), await register(channel, g3, 1)]
    streams = [
        await ready(runner.Execution(runner_api.ExecutionRequest(), metadata=token(t))) for t in tokens
    ]
    everyone = await ready(
        execution_pb2_grpc.ExecutionStub(channel).Stream(
            api_execution.StreamExecutionRequest(filter=Filter(statuses=[types_execution.InProgress]))
        )
    )
    await create_many(g3, channel, 40)
    executors = [bytes(e.executorHash) for e in await take(everyone, 40)]
    counts = [executors.count(r.hash) for r in g3.deployment.runners]
    assert sum(counts) == 40 and all(counts), counts
    own = [await take(stream, count) for stream, count in zip(streams, counts, strict=True)]
    for index, executions in enumerate(own):
        assert {e.executorHash for e in executions} == {g3.deployment.runners[index].hash}
    execution = own[0][0].hash
    code, text = await refusal(
        runner.Result(
            runner_api.ResultRequest(executionHash=execution, outputs=dict_to_struct(OUTPUTS)),
            metadata=token(tokens[1]),
        )
    )
    first, second = (b58(r.hash) for r in g3.deployment.runners)
    assert (code, text) == (
        grpc.StatusCode.UNKNOWN,
        f'this runner ("{second}") is not authorized to submit the result of this execution, '
        f'the executor should be "{first}"',
    )
    result = runner_api.ResultRequest(executionHash=execution, outputs=dict_to_struct(OUTPUTS))
    await runner.Result(result, metadata=token(tokens[0]))
    done = await execution_pb2_grpc.ExecutionStub(channel).Get(
        api_execution.GetExecutionRequest(hash=execution)
    )
    assert done.status == types_execution.Completed
    # Finished: a second result is refused for good, and so is an execution the engine never had.
    assert "instead of" in (await refusal(runner.Result(result, metadata=token(tokens[0]))))[1]
    unknown = runner_api.ResultRequest(executionHash=b"\x07" * 32, error="x")
    assert (await refusal(runner.Result(unknown, metadata=token(tokens[0]))))[1].endswith("not found")
    for call in (*streams, everyone):
        call.cancel()


@pytest.mark.parametrize("channel", ["g3"], indirect=True)
async def test_g3_events_are_the_runners_instance_and_the_service_api_is_gone(
    g3: LocalEngine, channel: grpc.aio.Channel
) -> None:
    listener = await ready(
        event_pb2_grpc.EventStub(channel).Stream(
            api_event.StreamEventRequest(
                filter=api_event.StreamEventRequest.Filter(instanceHash=g3.instance_hash)
            )
        )
    )
    data = {"channel": "c", "event": "e"}
    await runner_grpc.RunnerStub(channel).Event(
        runner_api.EventRequest(key="received", data=dict_to_struct(data)),
        metadata=token(await register(channel, g3)),
    )
    async with asyncio.timeout(10):
        event = await listener.read()
    assert (event.key, event.instanceHash) == ("received", g3.instance_hash)
    listener.cancel()
    # Under G3 a service has only the runner API: the G1/G2 service calls do not exist.
    update = execution_pb2_grpc.ExecutionStub(channel).Update(api_execution.UpdateExecutionRequest(hash=b"x"))
    assert (await refusal(update))[0] == grpc.StatusCode.UNIMPLEMENTED
    create = event_pb2_grpc.EventStub(channel).Create(api_event.CreateEventRequest(key="received"))
    assert (await refusal(create))[0] == grpc.StatusCode.UNIMPLEMENTED


# --- the entry point ---------------------------------------------------------------------------


def test_entry_point_runs_one_service_process_per_runner_with_its_variables(tmp_path: Path) -> None:
    child = (
        "import json, os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        f"path = os.path.join({str(tmp_path)!r}, str(os.getpid()))\n"
        "open(path + '.tmp', 'w').write(json.dumps({k: v for k, v in os.environ.items() if k.startswith('MESG_')}))\n"
        "os.rename(path + '.tmp', path + '.json')\n"
        "time.sleep(60)\n"
    )
    # A MESG_TOKEN left in the shell must not reach a G3 service: it would contradict its set.
    process = start_process(
        "--generation",
        "g3",
        "--runners",
        "3",
        "--run-service",
        sys.executable,
        "-c",
        child,
        env={"MESG_TOKEN": "left-over"},
    )
    try:
        line = read_ready_line(process)
        deployment = Deployment.from_ready_line(line)
        deadline = time.monotonic() + 20
        while len(list(tmp_path.glob("*.json"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = sorted(
            (json.loads(path.read_text()) for path in tmp_path.glob("*.json")),
            key=lambda env: [b58(r.hash) for r in deployment.runners].index(env["MESG_RUNNER_HASH"]),
        )
        assert seen == [deployment.mesg_env(runner) for runner in range(3)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        process.kill()
        process.communicate()
