"""The local engine over real gRPC on loopback: engine v0.16 semantics, entry point, client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from mesg_local_engine import EngineState, LocalEngine, main, start_engine
from mesg_local_engine._proto.mesg.api import event_pb2 as api_event
from mesg_local_engine._proto.mesg.api import (
    event_pb2_grpc,
    execution_pb2_grpc,
    instance_pb2_grpc,
    service_pb2_grpc,
)
from mesg_local_engine._proto.mesg.api import execution_pb2 as api_execution
from mesg_local_engine._proto.mesg.api import instance_pb2 as api_instance
from mesg_local_engine._proto.mesg.api import service_pb2 as api_service
from mesg_local_engine._proto.mesg.types import execution_pb2 as types_execution
from mesg_local_engine._proto.mesg.types.service_pb2 import Service
from mesg_local_engine.app import Application, ExecutionResult, ResolveError
from mesg_local_engine.definition import load_service
from mesg_local_engine.hash_text import b58, from_b58
from mesg_local_engine.state import EventFilter, ExecutionFilter, merge_env
from mesg_local_engine.values import dict_to_struct, struct_to_dict
from tests.support.local_engine import MESG_YML, read_ready, start_process

ROOT = Path(__file__).resolve().parents[2]
Filter = api_execution.StreamExecutionRequest.Filter
IN_PROGRESS, COMPLETED, FAILED = (
    types_execution.InProgress,
    types_execution.Completed,
    types_execution.Failed,
)
TRIGGER = {"name": "my-event", "data": {"x": 1}, "channel": "c"}


def with_events(events: dict[str, dict[str, str]]) -> api_service.CreateServiceRequest:
    """This repository's mesg.yml with other events: key -> {data key: type}."""
    request = load_service(MESG_YML)
    del request.events[:]
    for key, data in events.items():
        request.events.add(key=key, data=[Service.Parameter(key=k, type=t) for k, t in data.items()])
    return request


@pytest.fixture
async def engine() -> AsyncIterator[LocalEngine]:
    engine = await start_engine()
    yield engine
    await engine.stop(0)


@pytest.fixture
async def channel(engine: LocalEngine) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(engine.endpoint) as channel:
        yield channel


@pytest.fixture
def executions(channel: grpc.aio.Channel) -> execution_pb2_grpc.ExecutionStub:
    return execution_pb2_grpc.ExecutionStub(channel)


async def subscribe(
    stub: execution_pb2_grpc.ExecutionStub, **fields: Any
) -> grpc.aio.UnaryStreamCall[Any, Any]:
    call = stub.Stream(api_execution.StreamExecutionRequest(filter=Filter(**fields)))
    metadata = await call.initial_metadata()
    assert metadata.get("status") == "ready"
    return call


async def create(
    stub: execution_pb2_grpc.ExecutionStub,
    engine: LocalEngine,
    task: str = "trigger",
    inputs: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
) -> bytes:
    response = await stub.Create(
        api_execution.CreateExecutionRequest(
            instanceHash=engine.instance_hash,
            taskKey=task,
            inputs=dict_to_struct(TRIGGER if inputs is None else inputs),
            tags=list(tags),
        )
    )
    return bytes(response.hash)


async def update(
    stub: execution_pb2_grpc.ExecutionStub,
    execution_hash: bytes,
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    if error is not None:
        request = api_execution.UpdateExecutionRequest(hash=execution_hash, error=error)
    else:
        request = api_execution.UpdateExecutionRequest(
            hash=execution_hash, outputs=dict_to_struct(outputs or {})
        )
    await stub.Update(request)


async def drain(call: grpc.aio.UnaryStreamCall[Any, Any], quiet: float = 0.3) -> list[Any]:
    """Everything the stream delivers until it has been quiet for ``quiet`` seconds."""
    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(call.read(), quiet))
        except TimeoutError:
            return received


async def rpc_error(awaitable: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    return info.value


# --- streams ---------------------------------------------------------------------------------


async def test_streams_send_the_ready_header(channel: grpc.aio.Channel) -> None:
    call = execution_pb2_grpc.ExecutionStub(channel).Stream(api_execution.StreamExecutionRequest())
    assert ("status", "ready") in tuple(await call.initial_metadata())
    call.cancel()
    events = event_pb2_grpc.EventStub(channel).Stream(api_event.StreamEventRequest())
    assert ("status", "ready") in tuple(await events.initial_metadata())
    events.cancel()


async def test_no_replay_of_earlier_executions(executions: Any, engine: LocalEngine) -> None:
    await create(executions, engine, tags=("before",))
    call = await subscribe(executions)
    later = await create(executions, engine, tags=("after",))
    received = await drain(call)
    assert [message.hash for message in received] == [later]
    call.cancel()


async def test_create_is_in_progress_and_seen_by_an_in_progress_subscriber(
    executions: Any, engine: LocalEngine
) -> None:
    call = await subscribe(executions, statuses=[IN_PROGRESS], instanceHash=engine.instance_hash)
    execution_hash = await create(executions, engine, tags=("t1",))
    message = await call.read()
    assert len(execution_hash) == 32
    assert message.hash == execution_hash
    assert message.status == IN_PROGRESS
    assert message.instanceHash == engine.instance_hash
    assert message.taskKey == "trigger"
    assert list(message.tags) == ["t1"]
    assert struct_to_dict(message.inputs) == TRIGGER
    stored = await executions.Get(api_execution.GetExecutionRequest(hash=execution_hash))
    assert stored == message
    call.cancel()


async def test_filters(executions: Any, engine: LocalEngine) -> None:
    subscribers = {
        "all": await subscribe(executions),
        "in_progress": await subscribe(executions, statuses=[IN_PROGRESS]),
        "finished": await subscribe(executions, statuses=[COMPLETED, FAILED]),
        "task": await subscribe(executions, taskKey="channel"),
        "star": await subscribe(executions, taskKey="*"),
        "tags": await subscribe(executions, tags=["x", "y"]),
        "instance": await subscribe(executions, instanceHash=engine.instance_hash),
        "other": await subscribe(executions, instanceHash=b"\1" * 32),
    }
    a = await create(executions, engine, "channel", {"channel": "c"}, tags=("x",))
    b = await create(executions, engine, tags=("y", "x", "z"))
    await update(executions, a, {"occupied": True})
    await update(executions, b, error="boom")
    received = await asyncio.gather(*(drain(call) for call in subscribers.values()))
    seen = {
        name: [(message.hash, message.status) for message in messages]
        for name, messages in zip(subscribers, received, strict=True)
    }
    everything = [(a, IN_PROGRESS), (b, IN_PROGRESS), (a, COMPLETED), (b, FAILED)]
    assert seen == {
        "all": everything,
        "in_progress": [(a, IN_PROGRESS), (b, IN_PROGRESS)],
        "finished": [(a, COMPLETED), (b, FAILED)],
        "task": [(a, IN_PROGRESS), (a, COMPLETED)],
        "star": everything,
        "tags": [(b, IN_PROGRESS), (b, FAILED)],
        "instance": everything,
        "other": [],
    }
    for call in subscribers.values():
        call.cancel()


def test_filter_matching_rules() -> None:
    tags = ("a", "b")
    assert ExecutionFilter().matches(COMPLETED, b"i", "t", ())
    assert ExecutionFilter(statuses=frozenset({COMPLETED, FAILED})).matches(FAILED, b"i", "t", ())
    assert not ExecutionFilter(statuses=frozenset({IN_PROGRESS})).matches(FAILED, b"i", "t", ())
    assert not ExecutionFilter(instance_hash=b"j").matches(FAILED, b"i", "t", ())
    assert not ExecutionFilter(task_key="u").matches(FAILED, b"i", "t", ())
    assert ExecutionFilter(tags=("b", "a")).matches(FAILED, b"i", "t", tags)
    assert not ExecutionFilter(tags=("a", "c")).matches(FAILED, b"i", "t", tags)
    assert EventFilter(key="k").matches(b"h", b"i", "k")
    assert not EventFilter(key="k").matches(b"h", b"i", "l")
    assert not EventFilter(hash=b"g").matches(b"h", b"i", "k")
    assert not EventFilter(instance_hash=b"j").matches(b"h", b"i", "k")
    star = api_event.StreamEventRequest.Filter(key="*")
    assert EventFilter.from_proto(star).matches(b"h", b"i", "anything")


# --- execution lifecycle ---------------------------------------------------------------------


async def test_update_completes_once(executions: Any, engine: LocalEngine) -> None:
    call = await subscribe(executions, statuses=[COMPLETED])
    execution_hash = await create(executions, engine)
    await update(executions, execution_hash, {"message": "sent"})
    message = await call.read()
    assert (message.hash, message.status) == (execution_hash, COMPLETED)
    assert struct_to_dict(message.outputs) == {"message": "sent"}
    assert message.error == ""
    again = await rpc_error(update(executions, execution_hash, {"message": "sent"}))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert again.details() == 'Execution status error: "Completed" instead of "InProgress"'
    call.cancel()


async def test_update_with_an_error_fails_the_execution(executions: Any, engine: LocalEngine) -> None:
    execution_hash = await create(executions, engine)
    await update(executions, execution_hash, error="Pusher said 401")
    stored = await executions.Get(api_execution.GetExecutionRequest(hash=execution_hash))
    assert (stored.status, stored.error) == (FAILED, "Pusher said 401")
    again = await rpc_error(update(executions, execution_hash, error="x"))
    assert again.details() == 'Execution status error: "Failed" instead of "InProgress"'


async def test_invalid_outputs_fail_the_execution_but_not_the_call(
    executions: Any, engine: LocalEngine
) -> None:
    call = await subscribe(executions, statuses=[FAILED])
    execution_hash = await create(executions, engine)
    await update(executions, execution_hash, {"message": 1, "extra": True})  # call succeeds
    message = await call.read()
    expected = 'service "pusher" - outputs of task "trigger" are invalid: value of "message" is not a string'
    assert (message.hash, message.status, message.error) == (execution_hash, FAILED, expected)
    stored = await executions.Get(api_execution.GetExecutionRequest(hash=execution_hash))
    assert (stored.status, stored.error) == (FAILED, expected)
    assert not stored.HasField("outputs")
    call.cancel()


async def test_update_errors(executions: Any, engine: LocalEngine) -> None:
    nowhere = b"\7" * 32
    unknown = await rpc_error(update(executions, nowhere, {"message": "sent"}))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    assert unknown.details() == f'execution "{b58(nowhere)}" not found'
    execution_hash = await create(executions, engine)
    empty = await rpc_error(executions.Update(api_execution.UpdateExecutionRequest(hash=execution_hash)))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = await rpc_error(executions.Get(api_execution.GetExecutionRequest(hash=b"x")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_create_errors(executions: Any, engine: LocalEngine) -> None:
    unknown_task = await rpc_error(create(executions, engine, "nope"))
    assert unknown_task.code() == grpc.StatusCode.NOT_FOUND
    assert unknown_task.details() == 'service "pusher" - task "nope" not found'

    invalid = await rpc_error(create(executions, engine, inputs={"name": 1, "channels": "c"}))
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.details() == (
        'service "pusher" - inputs of task "trigger" are invalid: '
        'value of "name" is not a string\n'
        'value of "data" is required\n'
        'value of "channels" is not an array'
    )

    no_instance = await rpc_error(
        executions.Create(
            api_execution.CreateExecutionRequest(
                instanceHash=b"\2" * 32, taskKey="trigger", inputs=dict_to_struct(TRIGGER)
            )
        )
    )
    assert no_instance.code() == grpc.StatusCode.NOT_FOUND
    assert "instance" in no_instance.details()


async def test_finished_executions_are_bounded() -> None:
    engine = await start_engine(max_finished_executions=2)
    try:
        async with grpc.aio.insecure_channel(engine.endpoint) as channel:
            stub = execution_pb2_grpc.ExecutionStub(channel)
            hashes = [await create(stub, engine) for _ in range(4)]
            for execution_hash in hashes[:3]:
                await update(stub, execution_hash, {"message": "sent"})
            assert engine.state.execution_count == 3  # two finished, one in progress
            gone = await rpc_error(stub.Get(api_execution.GetExecutionRequest(hash=hashes[0])))
            assert gone.code() == grpc.StatusCode.NOT_FOUND
            for execution_hash in hashes[1:]:
                await stub.Get(api_execution.GetExecutionRequest(hash=execution_hash))
    finally:
        await engine.stop(0)


async def test_a_subscriber_that_falls_behind_is_disconnected() -> None:
    engine = await start_engine(queue_size=1)
    try:
        async with grpc.aio.insecure_channel(engine.endpoint) as channel:
            stub = execution_pb2_grpc.ExecutionStub(channel)
            slow = await subscribe(stub)
            request = api_execution.CreateExecutionRequest(
                instanceHash=engine.instance_hash,
                taskKey="trigger",
                inputs=dict_to_struct(TRIGGER),
            )
            for _ in range(3):  # no await in between: the stream cannot drain its queue
                engine.state.create_execution(request)
            error = await rpc_error(slow.read())
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            healthy = await subscribe(stub)  # the engine itself carries on
            execution_hash = await create(stub, engine)
            assert (await healthy.read()).hash == execution_hash
            healthy.cancel()
    finally:
        await engine.stop(0)


def test_overflow_only_drops_the_full_subscriber() -> None:
    async def scenario() -> None:
        state = EngineState(queue_size=2)
        service_hash = state.create_service(load_service(MESG_YML))
        instance_hash = state.create_instance(service_hash, ())
        busy = state.subscribe_executions(ExecutionFilter())
        picky = state.subscribe_executions(ExecutionFilter(task_key="channel"))
        request = api_execution.CreateExecutionRequest(
            instanceHash=instance_hash, taskKey="trigger", inputs=dict_to_struct(TRIGGER)
        )
        for _ in range(3):
            state.create_execution(request)
        assert busy.dropped and busy.queue.qsize() == 2
        assert not picky.dropped and picky.queue.empty()

    asyncio.run(scenario())


# --- events ----------------------------------------------------------------------------------


async def test_events() -> None:
    engine = await start_engine(definition=with_events({"started": {"at": "Number"}}))
    try:
        async with grpc.aio.insecure_channel(engine.endpoint) as channel:
            stub = event_pb2_grpc.EventStub(channel)

            def request(key: str, data: dict[str, Any]) -> api_event.CreateEventRequest:
                return api_event.CreateEventRequest(
                    instanceHash=engine.instance_hash, key=key, data=dict_to_struct(data)
                )

            before = await stub.Create(request("started", {"at": 1}))
            call = stub.Stream(
                api_event.StreamEventRequest(filter=api_event.StreamEventRequest.Filter(key="started"))
            )
            assert (await call.initial_metadata()).get("status") == "ready"
            created = await stub.Create(request("started", {"at": 2, "extra": "ok"}))
            event = await call.read()
            assert event.hash == created.hash != before.hash
            assert (event.key, event.instanceHash) == ("started", engine.instance_hash)
            assert struct_to_dict(event.data) == {"at": 2, "extra": "ok"}
            call.cancel()

            missing_key = await rpc_error(stub.Create(request("", {"at": 1})))
            assert missing_key.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert missing_key.details() == "create event: key missing"
            invalid = await rpc_error(stub.Create(request("started", {"at": "now"})))
            assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert invalid.details() == (
                'create event: data service "pusher" - data of event "started" are invalid: '
                'value of "at" is not a number'
            )
            unknown = await rpc_error(stub.Create(request("stopped", {})))
            assert unknown.code() == grpc.StatusCode.NOT_FOUND
            assert unknown.details() == ('create event: data service "pusher" - event "stopped" not found')
    finally:
        await engine.stop(0)


# --- services and instances ------------------------------------------------------------------


async def test_services(channel: grpc.aio.Channel, engine: LocalEngine) -> None:
    stub = service_pb2_grpc.ServiceStub(channel)
    listed = (await stub.List(api_service.ListServiceRequest())).services
    assert [(s.sid, s.name, s.hash) for s in listed] == [("com.mesg.pusher", "pusher", engine.service_hash)]
    service = await stub.Get(api_service.GetServiceRequest(hash=engine.service_hash))
    assert service == engine.service
    assert [task.key for task in service.tasks][:4] == ["trigger", "triggerBatch", "channels", "channel"]
    assert [event.key for event in service.events] == [e.key for e in load_service(MESG_YML).events]
    batch = next(param for param in service.tasks[1].inputs if param.key == "batch")
    assert (batch.type, batch.repeated, batch.object[0].key) == ("Object", True, "channel")
    assert service.configuration.env[0] == "PUSHER_APP_ID="

    request = load_service(MESG_YML)
    assert (await stub.Hash(request)).hash == engine.service_hash
    assert (await stub.Exists(api_service.ExistsServiceRequest(hash=engine.service_hash))).exists
    assert not (await stub.Exists(api_service.ExistsServiceRequest(hash=b"\3" * 32))).exists
    duplicate = await rpc_error(stub.Create(request))
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
    unknown = await rpc_error(stub.Get(api_service.GetServiceRequest(hash=b"\3" * 32)))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND

    request.description = "another version"
    created = await stub.Create(request)
    assert len(created.hash) == 32 and created.hash != engine.service_hash
    assert (await stub.Hash(request)).hash == created.hash
    assert (await stub.Exists(api_service.ExistsServiceRequest(hash=created.hash))).exists
    assert len((await stub.List(api_service.ListServiceRequest())).services) == 2


async def test_instances(channel: grpc.aio.Channel, engine: LocalEngine) -> None:
    stub = instance_pb2_grpc.InstanceStub(channel)
    mine = api_instance.ListInstanceRequest(serviceHash=engine.service_hash)
    listed = (await stub.List(mine)).instances
    assert [(i.hash, i.serviceHash) for i in listed] == [(engine.instance_hash, engine.service_hash)]
    got = await stub.Get(api_instance.GetInstanceRequest(hash=engine.instance_hash))
    assert got.serviceHash == engine.service_hash

    created = await stub.Create(
        api_instance.CreateInstanceRequest(
            serviceHash=engine.service_hash, env=["PUSHER_APP_ID=42", "EXTRA=1"]
        )
    )
    assert created.hash != engine.instance_hash
    env = engine.state.instance_env(created.hash)
    assert env[0] == "PUSHER_APP_ID=42" and env[1] == "PUSHER_APP_KEY=" and env[-1] == "EXTRA=1"
    assert len((await stub.List(api_instance.ListInstanceRequest())).instances) == 2
    duplicate = await rpc_error(
        stub.Create(
            api_instance.CreateInstanceRequest(
                serviceHash=engine.service_hash, env=["EXTRA=1", "PUSHER_APP_ID=42"]
            )
        )
    )
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
    bad_env = await rpc_error(
        stub.Create(api_instance.CreateInstanceRequest(serviceHash=engine.service_hash, env=["NOEQUALS"]))
    )
    assert bad_env.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_service = await rpc_error(stub.Create(api_instance.CreateInstanceRequest(serviceHash=b"\4" * 32)))
    assert no_service.code() == grpc.StatusCode.NOT_FOUND

    await stub.Delete(api_instance.DeleteInstanceRequest(hash=created.hash, deleteData=True))
    assert [i.hash for i in (await stub.List(mine)).instances] == [engine.instance_hash]
    gone = await rpc_error(stub.Get(api_instance.GetInstanceRequest(hash=created.hash)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    again = await rpc_error(stub.Delete(api_instance.DeleteInstanceRequest(hash=created.hash)))
    assert again.code() == grpc.StatusCode.NOT_FOUND


async def test_same_definition_and_env_give_the_same_hashes() -> None:
    first = await start_engine(env=["PUSHER_APP_ID=1"])
    second = await start_engine(env=["PUSHER_APP_ID=1"])
    third = await start_engine(env=["PUSHER_APP_ID=2"])
    try:
        assert first.service_hash == second.service_hash == third.service_hash
        assert first.token == second.token != third.token
        assert from_b58(first.token) == first.instance_hash
        assert first.env[0] == "PUSHER_APP_ID=1"
    finally:
        for engine in (first, second, third):
            await engine.stop(0)


def test_merge_env_overrides_in_place_and_appends() -> None:
    assert merge_env(["A=", "B=2"], ["B=3", "C=x=y", "A=1"]) == ("A=1", "B=3", "C=x=y")


# --- the application client ------------------------------------------------------------------


def serve(
    channel: grpc.aio.Channel,
    instance_hash: bytes,
    handler: Callable[[str, dict[str, Any]], dict[str, Any] | str],
) -> asyncio.Task[None]:
    """A minimal service: answer each InProgress execution with outputs or an error."""
    stub = execution_pb2_grpc.ExecutionStub(channel)

    async def run(ready: asyncio.Future[None]) -> None:
        call = await subscribe(stub, statuses=[IN_PROGRESS], instanceHash=instance_hash)
        ready.set_result(None)
        async for execution in call:
            result = handler(execution.taskKey, struct_to_dict(execution.inputs))
            if isinstance(result, str):
                await update(stub, execution.hash, error=result)
            else:
                await update(stub, execution.hash, result)

    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run(ready))
    task.ready = ready  # type: ignore[attr-defined]
    return task


def pusher_like(task: str, inputs: dict[str, Any]) -> dict[str, Any] | str:
    if inputs.get("name") == "fail":
        return "Pusher said no"
    if inputs.get("name") == "wrong":
        return {"message": 1}
    return {"message": "sent"}


@pytest.fixture
async def app(channel: grpc.aio.Channel, engine: LocalEngine) -> AsyncIterator[Application]:
    worker = serve(channel, engine.instance_hash, pusher_like)
    await worker.ready  # type: ignore[attr-defined]
    async with Application(channel) as application:
        yield application
    worker.cancel()


async def test_resolve(app: Application, engine: LocalEngine) -> None:
    assert await app.resolve("com.mesg.pusher") == engine.instance_hash
    with pytest.raises(ResolveError, match=r"com\.other"):
        await app.resolve("com.other")


async def test_resolve_without_instance(channel: grpc.aio.Channel, engine: LocalEngine) -> None:
    await instance_pb2_grpc.InstanceStub(channel).Delete(
        api_instance.DeleteInstanceRequest(hash=engine.instance_hash)
    )
    with pytest.raises(ResolveError, match="no running instance"):
        await Application(channel).resolve("com.mesg.pusher")


async def test_execute_task_and_wait_result(app: Application, engine: LocalEngine) -> None:
    instance = await app.resolve("com.mesg.pusher")
    done = await app.execute_task_and_wait_result(instance, "trigger", TRIGGER)
    assert done == ExecutionResult(done.hash, "Completed", {"message": "sent"}, None)
    assert done.ok
    failed = await app.execute_task_and_wait_result(instance, "trigger", {**TRIGGER, "name": "fail"})
    assert (failed.status, failed.outputs, failed.error) == ("Failed", None, "Pusher said no")
    wrong = await app.execute_task_and_wait_result(instance, "trigger", {**TRIGGER, "name": "wrong"})
    assert wrong.status == "Failed"
    assert wrong.error == (
        'service "pusher" - outputs of task "trigger" are invalid: value of "message" is not a string'
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await app.execute_task_and_wait_result(instance, "trigger", {"name": "x"})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_concurrent_waits_share_one_stream(app: Application, engine: LocalEngine) -> None:
    limit = asyncio.Semaphore(64)

    async def one(index: int) -> ExecutionResult:
        async with limit:
            return await app.execute_task_and_wait_result(
                engine.instance_hash, "trigger", {**TRIGGER, "channel": f"c{index}"}
            )

    results = await asyncio.gather(*(one(index) for index in range(300)))
    assert {result.status for result in results} == {"Completed"}
    assert len({result.hash for result in results}) == 300
    # the worker's stream and the application's single result stream
    assert len(engine.state._execution_subs) == 2


async def test_result_before_create_returns_is_kept(app: Application, engine: LocalEngine) -> None:
    results = await app._result_stream()
    early = types_execution.Execution(
        hash=b"\5" * 32, status=COMPLETED, outputs=dict_to_struct({"message": "sent"})
    )
    results._route(early)
    assert await results.wait(b"\5" * 32) == ExecutionResult(
        b"\5" * 32, "Completed", {"message": "sent"}, None
    )


async def test_wait_times_out(channel: grpc.aio.Channel, engine: LocalEngine) -> None:
    async with Application(channel) as app:  # no service is answering
        # The result stream is opened first, with no time limit: on a busy machine opening it
        # could outlast the short timeout, which is about the wait for a result.
        await app._result_stream()
        with pytest.raises(TimeoutError):
            await app.execute_task_and_wait_result(engine.instance_hash, "trigger", TRIGGER, timeout=0.2)
        assert app._results is not None and app._results._waiters == {}


async def test_waiters_fail_when_the_engine_goes_away() -> None:
    engine = await start_engine()
    async with Application.connect(engine.endpoint) as app:  # no service is answering
        waiting = asyncio.ensure_future(
            app.execute_task_and_wait_result(engine.instance_hash, "trigger", TRIGGER, timeout=10)
        )
        while not (app._results and app._results._waiters):
            await asyncio.sleep(0.01)
        await engine.stop(0)
        with pytest.raises(ConnectionError, match="result stream"):
            await waiting


async def test_listen_events() -> None:
    engine = await start_engine(definition=with_events({"ping": {}, "pong": {}}))
    try:
        async with grpc.aio.insecure_channel(engine.endpoint) as channel:
            app = Application(channel)
            stub = event_pb2_grpc.EventStub(channel)
            async with await app.listen_events(engine.instance_hash, key="pong") as events:
                for key in ("ping", "pong"):
                    await stub.Create(
                        api_event.CreateEventRequest(
                            instanceHash=engine.instance_hash,
                            key=key,
                            data=dict_to_struct({"n": 1}),
                        )
                    )
                assert await anext(events) == ("pong", {"n": 1})
            await app.close()
    finally:
        await engine.stop(0)


# --- the entry point -------------------------------------------------------------------------


def test_entry_point_prints_ready_and_stops_on_sigterm() -> None:
    process = start_process()
    try:
        fields = read_ready(process)
        assert set(fields) == {"endpoint", "token", "service", "generation", "env", "runners"}
        assert (fields["generation"], fields["env"], fields["runners"]) == ("g1", "", "")
        assert fields["endpoint"].startswith("127.0.0.1:")
        assert len(from_b58(fields["token"])) == len(from_b58(fields["service"])) == 32

        async def resolve() -> bytes:
            async with grpc.aio.insecure_channel(fields["endpoint"]) as channel:
                return await Application(channel).resolve("com.mesg.pusher")

        assert asyncio.run(resolve()) == from_b58(fields["token"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.communicate()


def test_entry_point_runs_the_service_with_its_env(tmp_path: Path) -> None:
    report = tmp_path / "env.json"
    child = (
        "import json, os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "keys = ['MESG_ENDPOINT', 'MESG_TOKEN', 'PUSHER_APP_ID', 'PUSHER_CLUSTER']\n"
        f"open({str(report)!r} + '.tmp', 'w').write(json.dumps("
        "{'pid': os.getpid(), **{k: os.environ.get(k) for k in keys}}))\n"
        f"os.rename({str(report)!r} + '.tmp', {str(report)!r})\n"
        "print('service output', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = start_process(
        "--env",
        "PUSHER_APP_ID=123",
        "--run-service",
        sys.executable,
        "-c",
        child,
        env={"PUSHER_CLUSTER": "from-the-shell"},
    )
    try:
        fields = read_ready(process)
        deadline = time.monotonic() + 10
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = json.loads(report.read_text())
        assert seen["MESG_ENDPOINT"] == fields["endpoint"]
        assert seen["MESG_TOKEN"] == fields["token"]
        assert seen["PUSHER_APP_ID"] == "123"
        assert seen["PUSHER_CLUSTER"] == ""  # the instance's empty default wins
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(seen["pid"], 0)
        out, err = process.communicate()
        assert out == ""  # stdout carries the READY line only
        assert "service output" in err
    finally:
        process.kill()
        process.communicate()


def test_entry_point_exits_with_the_service_status() -> None:
    process = start_process("--run-service", sys.executable, "-c", "raise SystemExit(3)")
    try:
        read_ready(process)
        assert process.wait(10) == 3
    finally:
        process.kill()
        process.communicate()


def test_main_rejects_a_bad_definition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "mesg.yml"
    bad.write_text("- not a service\n")
    assert main(["--port", "0", "--mesg-yml", str(bad)]) == 2
    assert "expected a map" in capsys.readouterr().err
