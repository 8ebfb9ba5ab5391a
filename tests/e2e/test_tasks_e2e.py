"""Each seed task end to end: application -> local engine -> service -> soketi -> subscriber."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.pusher_ws import PusherWS
from tests.support.stack import Stack

# The core end-to-end tests: every seed task, under each engine generation.
pytestmark = pytest.mark.all_generations


async def test_trigger_delivers_object_data_intact(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel()
    data = {"text": "héllo ✓", "n": 3, "x": 1.5, "ok": True, "none": None, "list": [1, "a", {"b": []}]}
    async with PusherWS(stack.soketi.ws_url()) as ws:
        await ws.subscribe(name)
        result = await run(app, pusher_instance, "trigger", {"channel": name, "name": "greet", "data": data})
        assert result.ok, result.error
        assert result.outputs == {"message": "sent"}
        event = await ws.next_event(channel=name, event="greet")
    assert event["data"] == data


async def test_trigger_string_data_and_many_channels(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    names = [channel(), channel()]
    async with PusherWS(stack.soketi.ws_url()) as ws:
        for name in names:
            await ws.subscribe(name)
        result = await run(
            app, pusher_instance, "trigger", {"channels": names, "name": "ev", "data": "plain text"}
        )
        assert result.ok, result.error
        received = [await ws.next_event(channel=name, event="ev") for name in names]
    assert [e["data"] for e in received] == ["plain text", "plain text"]


async def test_trigger_socket_id_excludes_that_connection(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel()
    async with PusherWS(stack.soketi.ws_url()) as excluded, PusherWS(stack.soketi.ws_url()) as other:
        await excluded.subscribe(name)
        await other.subscribe(name)
        inputs = {"channel": name, "name": "ev", "data": {"a": 1}, "socket_id": excluded.socket_id}
        result = await run(app, pusher_instance, "trigger", inputs)
        assert result.ok, result.error
        assert (await other.next_event(channel=name, event="ev"))["data"] == {"a": 1}
        with pytest.raises(TimeoutError):
            await excluded.next_event(channel=name, event="ev", timeout=0.5)


async def test_trigger_batch_delivers_every_event(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    names = [channel() for _ in range(3)]
    batch = [{"channel": n, "name": f"ev{i}", "data": {"i": i}} for i, n in enumerate(names)]
    async with PusherWS(stack.soketi.ws_url()) as ws:
        for name in names:
            await ws.subscribe(name)
        result = await run(app, pusher_instance, "triggerBatch", {"batch": batch})
        assert result.ok, result.error
        assert result.outputs == {"message": "sent"}
        for i, name in enumerate(names):
            assert (await ws.next_event(channel=name, event=f"ev{i}"))["data"] == {"i": i}


async def test_channels_lists_occupied_channels_with_info(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    prefix = channel("occupied")
    names = sorted([f"{prefix}-a", f"{prefix}-b"])
    async with PusherWS(stack.soketi.ws_url()) as ws:
        for name in names:
            await ws.subscribe(name)
        result = await run(app, pusher_instance, "channels", {"params": {"filter_by_prefix": prefix}})
        assert result.ok, result.error
        assert sorted(result.outputs["channels"]) == names
        assert "info" not in result.outputs
        everything = await run(app, pusher_instance, "channels", {})
        assert set(names) <= set(everything.outputs["channels"])
    after = await run(app, pusher_instance, "channels", {"params": {"filter_by_prefix": prefix}})
    assert after.outputs == {"channels": []}


async def test_channels_user_count_for_presence(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    from tests.support.pusher_ws import sign_private

    name = channel("presence-room")
    secret, key = stack.soketi.app.secret, stack.soketi.app.key
    async with PusherWS(stack.soketi.ws_url()) as one, PusherWS(stack.soketi.ws_url()) as two:
        for ws, user in ((one, "u1"), (two, "u2")):
            data = f'{{"user_id":"{user}"}}'
            await ws.subscribe(
                name, auth=sign_private(key, secret, ws.socket_id, name, data), channel_data=data
            )
        params = {"filter_by_prefix": name, "info": "user_count"}
        result = await run(app, pusher_instance, "channels", {"params": params})
        assert result.ok, result.error
        # soketi ignores `info` on /channels and always sends its own attributes; the task
        # passes on whatever Pusher returned per channel.
        assert result.outputs["channels"] == [name]
        assert isinstance(result.outputs["info"][name], dict)
        one_channel = await run(
            app, pusher_instance, "channel", {"channel": name, "params": {"info": "user_count"}}
        )
        assert one_channel.outputs["occupied"] is True
        assert one_channel.outputs["user_count"] == 2


async def test_channel_occupied_and_counts(stack: Stack, app: Application, pusher_instance: bytes) -> None:
    name = channel()
    empty = await run(app, pusher_instance, "channel", {"channel": name})
    assert empty.ok, empty.error
    assert empty.outputs["occupied"] is False
    async with PusherWS(stack.soketi.ws_url()) as one, PusherWS(stack.soketi.ws_url()) as two:
        await one.subscribe(name)
        await two.subscribe(name)
        result = await run(
            app, pusher_instance, "channel", {"channel": name, "params": {"info": "subscription_count"}}
        )
        assert result.ok, result.error
        assert result.outputs["occupied"] is True
        assert result.outputs["subscription_count"] == 2
        legacy = await run(app, pusher_instance, "channel", {"name": name})
        assert legacy.ok and legacy.outputs["occupied"] is True


BAD_INPUTS = [
    ("trigger", {"channel": "c", "name": "", "data": "x"}, "input 'name' is required"),
    ("trigger", {"name": "e", "data": "x"}, "input 'channel'"),
    ("trigger", {"channel": "c", "channels": ["d"], "name": "e", "data": "x"}, "not both"),
    ("trigger", {"channel": "bad channel!", "name": "e", "data": "x"}, "channel names may only contain"),
    ("trigger", {"channels": [f"c{i}" for i in range(101)], "name": "e", "data": "x"}, "Pusher allows 100"),
    ("trigger", {"channel": "c", "name": "e" * 201, "data": "x"}, "Pusher allows 200"),
    ("trigger", {"channel": "c", "name": "e", "data": "x" * 10241}, "10241 bytes"),
    ("trigger", {"channel": "c", "name": "e", "data": "x", "socket_id": "abc"}, "123.456"),
    ("triggerBatch", {"batch": []}, "1 to 10"),
    ("triggerBatch", {"batch": [{"channel": "c", "name": "e", "data": "x"}] * 11}, "has 11 events; the limit is 10 events"),
    (
        "triggerBatch",
        {"batch": [{"channel": "c", "name": "e", "data": "x"}, {"channel": "c d", "name": "e", "data": "x"}]},
        "batch[1].channel",
    ),
    ("channels", {"params": {"bogus": "x"}}, "unknown key(s) 'bogus'"),
    ("channel", {}, "input 'channel' (the channel name) is required"),
    ("trigger", {"channel": "c", "name": "e", "data": "x", "port": 70000}, "PUSHER_PORT"),
    ("trigger", {"channel": "c", "name": "e", "data": "x", "appId": "abc"}, "must be digits"),
]


@pytest.mark.parametrize(("task", "inputs", "message"), BAD_INPUTS)
async def test_bad_input_fails_that_execution_only(
    stack: Stack, app: Application, pusher_instance: bytes, task: str, inputs: dict[str, Any], message: str
) -> None:
    result = await run(app, pusher_instance, task, inputs)
    assert result.status == "Failed"
    assert message in (result.error or ""), result.error
    still = await run(app, pusher_instance, "trigger", {"channel": channel(), "name": "e", "data": "x"})
    assert still.ok, still.error


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"channel": 5, "name": "e", "data": "x"}, 'value of "channel" is not a string'),
        ({"channel": "c", "data": "x"}, 'value of "name" is required'),
        ({"channel": "c", "name": "e"}, 'value of "data" is required'),
    ],
)
async def test_engine_refuses_inputs_that_break_mesg_yml(
    app: Application, pusher_instance: bytes, inputs: dict[str, Any], reason: str
) -> None:
    """Inputs mesg.yml rules out are refused by the engine at Create; the service never sees them."""
    import grpc

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.execute_task(pusher_instance, "trigger", inputs)
    assert reason in (refused.value.details() or "")


async def test_wrong_secret_fails_with_pushers_401(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    inputs = {"channel": channel(), "name": "e", "data": "x", "secret": "not-the-secret-1234"}
    result = await run(app, pusher_instance, "trigger", inputs)
    assert result.status == "Failed"
    assert "HTTP 401" in result.error
    assert "not-the-secret-1234" not in result.error
    assert "not-the-secret-1234" not in stack.service.log()


async def test_unreachable_pusher_fails_with_a_clear_message(
    app: Application, pusher_instance: bytes
) -> None:
    from tests.support.soketi import free_port

    inputs = {"channel": channel(), "name": "e", "data": "x", "port": free_port(), "timeout": 500}
    result = await run(app, pusher_instance, "trigger", inputs)
    assert result.status == "Failed"
    assert "connection refused" in result.error


async def test_concurrent_executions_each_get_their_own_result(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel()
    async with PusherWS(stack.soketi.ws_url()) as ws:
        await ws.subscribe(name)
        good = [{"channel": name, "name": "n", "data": {"i": i}} for i in range(40)]
        bad = [{"channel": name, "name": "n", "data": {"i": i}, "socket_id": "x"} for i in range(10)]
        results = await asyncio.gather(*(run(app, pusher_instance, "trigger", i) for i in good + bad))
        assert [r.ok for r in results] == [True] * 40 + [False] * 10
        seen = sorted([(await ws.next_event(channel=name, event="n"))["data"]["i"] for _ in range(40)])
    assert seen == list(range(40))
