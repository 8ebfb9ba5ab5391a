"""Bad input, oversized: refused quickly, with memory bounded by a small multiple of the input.

Handler level (a real ``TaskContext`` against the session soketi): 5 MB of data (a string and a
nested object), 10,000 channels, a batch of 10,000 events, a 1 MB event name, 1 MB channel
names and user ids, and a deeply nested object. Each must end in an ``InputError`` naming the
input within ``FAST`` seconds, and tracemalloc's peak during the call stays under
``4 x input + 5 MB``.

Nesting: protobuf (upb, as in the service and the local engine) refuses to parse a message
deeper than 100 levels; a Struct spends 3 levels per nested object and 2 per nested list, so
about 32 objects fit. A deeper Struct cannot reach the service's code at all (the gRPC message
fails to deserialize); the tests pin that limit and run the deepest parseable input through.

End to end (application -> local engine -> service process -> soketi): 10,000 channels and a
1 MB event name fail with the service's message, a 5 MB input is refused by the engine's gRPC
limit before the service sees it, and the service keeps serving afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError

from mesg_local_engine.app import Application
from mesg_pusher.codec import Struct, dict_to_struct, struct_to_dict
from mesg_pusher.config import PusherSettings
from mesg_pusher.definition import check_task_inputs, load_definition
from mesg_pusher.errors import InputError, MesgPusherError
from mesg_pusher.pusher_client import ClientPool
from mesg_pusher.tasks import TASKS, TaskContext
from tests.support.e2e import channel, run
from tests.support.soketi import Soketi
from tests.support.stack import Stack, running_stack

DEFINITION = load_definition()
MB = 1 << 20
# Seconds: an oversized input is refused by checking sizes (microseconds), not by processing it;
# the bound is far above that, for a loaded machine, and tracemalloc's peak proves the same.
FAST = 2.0
SLACK = 5 * MB


def _nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def _nested_lists(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _big_object(size: int) -> dict[str, Any]:
    """About ``size`` bytes of JSON as an object of objects, lists and strings."""
    row = {"id": 1, "name": "é✓ row", "tags": ["a", "b", "c"], "text": "t" * 60}
    count = size // len(json.dumps(row, ensure_ascii=False).encode()) + 1
    return {"rows": [dict(row, id=i) for i in range(count)], "meta": {"deep": _nested(20)}}


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


# name -> (task, inputs, the input the error must name)
CASES: dict[str, tuple[str, Any, str]] = {
    "data-5MB-string": (
        "trigger",
        lambda: {"channel": "big", "name": "ev", "data": "x" * (5 * MB)},
        "'data'",
    ),
    "data-5MB-object": (
        "trigger",
        lambda: {"channel": "big", "name": "ev", "data": _big_object(5 * MB)},
        "'data'",
    ),
    "data-5MB-sendToUser": (
        "sendToUser",
        lambda: {"user_id": "u1", "name": "ev", "data": _big_object(5 * MB)},
        "'data'",
    ),
    "data-5MB-in-batch": (
        "triggerBatch",
        lambda: {"batch": [{"channel": "big", "name": "ev", "data": "x" * (5 * MB)}]},
        "'batch[0].data'",
    ),
    "data-nested-500-deep-over-10KB": (
        "trigger",
        lambda: {"channel": "big", "name": "ev", "data": _nested(500, "z" * 20_000)},
        "'data'",
    ),
    "10000-channels": (
        "trigger",
        lambda: {"channels": [f"big-{i}" for i in range(10_000)], "name": "ev", "data": "x"},
        "'channels'",
    ),
    "10000-channels-subscribe": (
        "subscribe",
        lambda: {"channels": [f"big-{i}" for i in range(10_000)]},
        "'channels'",
    ),
    "10000-events": (
        "triggerBatch",
        lambda: {"batch": [{"channel": f"big-{i}", "name": "ev", "data": "x"} for i in range(10_000)]},
        "'batch'",
    ),
    "event-name-1MB": ("trigger", lambda: {"channel": "big", "name": "n" * MB, "data": "x"}, "'name'"),
    "event-name-1MB-batch": (
        "triggerBatch",
        lambda: {"batch": [{"channel": "big", "name": "n" * MB, "data": "x"}]},
        "'batch[0].name'",
    ),
    "event-name-1MB-sendToUser": (
        "sendToUser",
        lambda: {"user_id": "u1", "name": "n" * MB, "data": "x"},
        "'name'",
    ),
    "channel-name-1MB": ("trigger", lambda: {"channel": "c" * MB, "name": "ev", "data": "x"}, "'channel'"),
    "channel-name-1MB-query": ("channel", lambda: {"channel": "c" * MB}, "'channel'"),
    "prefix-1MB": ("channels", lambda: {"filter_by_prefix": "p" * MB}, "'filter_by_prefix'"),
    "user-id-1MB": ("terminateUserConnections", lambda: {"user_id": "u" * MB}, "'user_id'"),
    "socket-id-1MB": (
        "trigger",
        lambda: {"channel": "big", "name": "ev", "data": "x", "socket_id": "1" * MB},
        "'socket_id'",
    ),
}


@pytest.fixture
def context(soketi: Soketi) -> Iterator[TaskContext]:
    yield TaskContext(PusherSettings(soketi.pusher_env()), ClientPool())


async def _measure(
    ctx: TaskContext, task: str, inputs: dict[str, Any]
) -> tuple[BaseException | None, float, int]:
    """Run the handler twice: once timed, once under tracemalloc (which slows Python down)."""
    began = time.perf_counter()
    try:
        await TASKS[task](ctx, inputs)
        error: BaseException | None = None
    except BaseException as exc:
        error = exc
    elapsed = time.perf_counter() - began
    tracemalloc.start()
    try:
        with contextlib.suppress(MesgPusherError):
            await TASKS[task](ctx, inputs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return error, elapsed, peak


@pytest.mark.parametrize("case", list(CASES))
async def test_oversize_input_is_refused_quickly_with_bounded_memory(case: str, context: TaskContext) -> None:
    task, build, named = CASES[case]
    inputs = build()
    size = _json_size(inputs)
    assert size >= 20_000  # really oversized
    try:
        error, elapsed, peak = await _measure(context, task, inputs)
    finally:
        await context.pool.close()
    assert isinstance(error, InputError), f"{case}: expected InputError, got {error!r}"
    message = str(error)
    assert named in message, message
    assert len(message) < 1000, "the message must not echo the oversized input"
    assert elapsed < FAST, f"{case}: refused after {elapsed:.3f} s"
    assert peak < 4 * size + SLACK, f"{case}: peak {peak / MB:.1f} MB for {size / MB:.1f} MB of input"


async def test_oversize_inputs_still_refused_after_the_wire_round_trip(context: TaskContext) -> None:
    """The same sizes decoded from a Struct, as the service receives them (numbers as doubles)."""
    for case in ("data-5MB-object", "10000-channels", "10000-events", "event-name-1MB"):
        task, build, named = CASES[case]
        inputs = struct_to_dict(Struct.FromString(dict_to_struct(build()).SerializeToString()))
        assert check_task_inputs(DEFINITION.name, DEFINITION.tasks[task], inputs) is None
        began = time.perf_counter()
        with pytest.raises(InputError, match=named):
            await TASKS[task](context, inputs)
        assert time.perf_counter() - began < FAST, case
    await context.pool.close()


async def test_deep_but_small_data_is_sent_or_refused_never_crashes(context: TaskContext) -> None:
    """500 nested objects in ~3 KB are within Pusher's documented limits (10 KB, no depth limit):
    the handler may send them or refuse them, but must not raise RecursionError or the like.
    Only reachable by calling the handler: such a Struct cannot be parsed off the wire."""
    inputs = {"channel": channel("deep"), "name": "ev", "data": _nested(500)}
    began = time.perf_counter()
    try:
        outputs = await TASKS["trigger"](context, inputs)
    except InputError as exc:
        assert "'data'" in str(exc)
    else:
        assert outputs == {"message": "sent"}
    finally:
        await context.pool.close()
    assert time.perf_counter() - began < FAST


# --- the protobuf parser's depth limit: what the engine can hand over ---------------------------


def _deepest_parseable(make: Any) -> int:
    """The deepest nesting of ``make(depth)`` as ``data`` that parses back from the wire."""
    depth = 1
    while True:
        wire = dict_to_struct({"data": make(depth + 1)}).SerializeToString()
        try:
            Struct.FromString(wire)
        except DecodeError:
            return depth
        depth += 1


@pytest.mark.parametrize("make", [_nested, _nested_lists], ids=["objects", "lists"])
async def test_struct_deeper_than_the_parser_limit_never_reaches_the_service(
    make: Any, context: TaskContext
) -> None:
    deepest = _deepest_parseable(make)
    # upb's limit is 100 message levels: ~3 per object (Struct, map entry, Value), 2 per list.
    assert 20 <= deepest <= 100
    # One level deeper: the message itself fails to parse, so gRPC cannot deliver it either
    # (the local engine, in Python, refuses such a Create; the service would fail to
    # deserialize it off the stream).
    too_deep = dict_to_struct(
        {"channel": "deep", "name": "ev", "data": make(deepest + 1)}
    ).SerializeToString()
    with pytest.raises(DecodeError):
        Struct.FromString(too_deep)
    # At the limit everything works: decode, the engine's check, the handler (fast, bounded).
    wire = dict_to_struct(
        {"channel": channel("deep"), "name": "ev", "data": make(deepest)}
    ).SerializeToString()
    began = time.perf_counter()
    inputs = struct_to_dict(Struct.FromString(wire))
    assert check_task_inputs(DEFINITION.name, DEFINITION.tasks["trigger"], inputs) is None
    try:
        outputs = await TASKS["trigger"](context, inputs)
    finally:
        await context.pool.close()
    assert outputs == {"message": "sent"}
    assert time.perf_counter() - began < FAST


# --- oversized inputs that are not refused (bugs) -----------------------------------------------


@pytest.mark.parametrize("task", ["trigger", "triggerBatch"])
async def test_oversize_info_is_refused(task: str, context: TaskContext) -> None:
    event = {"channel": channel("big"), "name": "ev", "data": "x", "info": "user_count," * (MB // 11)}
    inputs = event if task == "trigger" else {"batch": [event]}
    try:
        with pytest.raises(InputError, match="info"):
            await asyncio.wait_for(TASKS[task](context, inputs), 5)
    finally:
        await context.pool.close()


@pytest.mark.parametrize("task", ["authorizeChannel", "authenticateUser"])
async def test_oversize_user_data_is_refused(task: str, context: TaskContext) -> None:
    big = _big_object(5 * MB)
    if task == "authorizeChannel":
        inputs = {"socket_id": "1.2", "channel": "presence-big", "user_id": "u1", "user_info": big}
    else:
        inputs = {"socket_id": "1.2", "user_data": {"id": "u1", **big}}
    try:
        with pytest.raises(InputError):
            await TASKS[task](context, inputs)
    finally:
        await context.pool.close()


# --- end to end: the real service process keeps serving ----------------------------------------


async def _still_serving(stack: Stack, app: Application, instance: bytes) -> None:
    assert stack.service.running
    result = await run(
        app, instance, "trigger", {"channel": channel("after"), "name": "ev", "data": {"ok": 1}}
    )
    assert result.ok, result.error
    assert result.outputs == {"message": "sent"}


@pytest.mark.parametrize(
    "inputs, named",
    [
        (
            {"channels": [f"big-{i}" for i in range(10_000)], "name": "ev", "data": "x"},
            "'channels' has 10000",
        ),
        ({"channel": "big", "name": "n" * MB, "data": "x"}, "'name' is 1048576 characters"),
    ],
    ids=["10000-channels", "event-name-1MB"],
)
async def test_oversize_e2e_fails_clearly_and_the_service_keeps_serving(
    inputs: dict[str, Any], named: str, stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    began = time.perf_counter()
    result = await run(app, pusher_instance, "trigger", inputs)
    elapsed = time.perf_counter() - began
    assert not result.ok
    assert result.error is not None and named in result.error, result.error
    assert len(result.error) < 1000
    assert elapsed < 15, f"took {elapsed:.1f} s end to end"  # not stuck on it; generous under load
    await _still_serving(stack, app, pusher_instance)


async def test_oversize_e2e_5MB_is_refused_by_the_engine_and_the_service_keeps_serving(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    """gRPC's default 4 MB message limit (Go's too) stops 5 MB before the service sees it."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.execute_task(
            pusher_instance, "trigger", {"channel": "big", "name": "ev", "data": "x" * (5 * MB)}
        )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await _still_serving(stack, app, pusher_instance)


async def test_oversize_output_e2e_ends_the_execution_and_the_service_keeps_serving(soketi: Soketi) -> None:
    # Its own stack: when the bug is present it leaves the service unable to answer anything.
    with running_stack(soketi) as own:
        async with Application.connect(own.engine.endpoint) as application:
            instance = await application.resolve("com.mesg.pusher")
            user_info = {"blob": "\x01" * (3 * MB // 4)}
            inputs = {"socket_id": "1.2", "channel": "presence-big", "user_id": "u1", "user_info": user_info}
            result = await application.execute_task_and_wait_result(
                instance, "authorizeChannel", inputs, timeout=5
            )
            assert not result.ok
            assert result.error
            after = await application.execute_task_and_wait_result(
                instance, "trigger", {"channel": channel("after"), "name": "ev", "data": "x"}, timeout=5
            )
            assert after.ok, after.error
