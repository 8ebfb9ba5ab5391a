"""The raw signed request task end to end: application -> local engine -> service -> soketi.

soketi checks every signature, so each request that completes here was signed as the HTTP API
requires; a WebSocket subscriber sees what a raw POST published.
"""

from __future__ import annotations

from typing import Any

import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.pusher_ws import PusherWS, sign_private
from tests.support.stack import Stack


async def failed(app: Application, instance: bytes, inputs: dict[str, Any]) -> str:
    result = await run(app, instance, "request", inputs)
    assert result.status == "Failed", result.outputs
    return result.error or ""


async def test_get_channels_lists_the_occupied_channels(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    prefix = channel("raw")
    names = sorted([f"{prefix}-a", f"{prefix}-b"])
    async with PusherWS(stack.soketi.ws_url()) as ws:
        for name in names:
            await ws.subscribe(name)
        result = await run(
            app,
            pusher_instance,
            "request",
            {"method": "GET", "path": "/channels", "params": {"filter_by_prefix": prefix}},
        )
        assert result.ok, result.error
    assert result.outputs["status"] == 200
    assert sorted(result.outputs["body"]["channels"]) == names


async def test_get_one_channel_with_info(stack: Stack, app: Application, pusher_instance: bytes) -> None:
    name = channel("presence-raw")
    secret, key = stack.soketi.app.secret, stack.soketi.app.key
    async with PusherWS(stack.soketi.ws_url()) as one, PusherWS(stack.soketi.ws_url()) as two:
        for ws, user in ((one, "u1"), (two, "u2")):
            data = f'{{"user_id":"{user}"}}'
            await ws.subscribe(
                name, auth=sign_private(key, secret, ws.socket_id, name, data), channel_data=data
            )
        inputs = {
            "method": "get",
            "path": f"/channels/{name}",
            "params": {"info": "user_count,subscription_count"},
        }
        result = await run(app, pusher_instance, "request", inputs)
        assert result.ok, result.error
        assert result.outputs["status"] == 200
        assert result.outputs["body"]["occupied"] is True
        assert result.outputs["body"]["user_count"] == 2
        users = await run(
            app, pusher_instance, "request", {"method": "GET", "path": f"/channels/{name}/users"}
        )
        assert users.ok, users.error
    assert sorted(u["id"] for u in users.outputs["body"]["users"]) == ["u1", "u2"]


async def test_post_events_reaches_a_subscriber(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel("raw-post")
    async with PusherWS(stack.soketi.ws_url()) as ws:
        await ws.subscribe(name)
        body = {"name": "raw-event", "channels": [name], "data": '{"via":"request"}'}
        result = await run(
            app, pusher_instance, "request", {"method": "POST", "path": "/events", "body": body}
        )
        assert result.ok, result.error
        assert result.outputs == {"status": 200, "body": {"ok": True}}
        event = await ws.next_event(channel=name, event="raw-event")
    assert event["data"] == {"via": "request"}


async def test_unknown_path_fails_with_its_404(app: Application, pusher_instance: bytes) -> None:
    error = await failed(app, pusher_instance, {"method": "GET", "path": "/no-such-endpoint"})
    assert error.startswith("pusher_rejected 404: Pusher answered HTTP 404"), error


async def test_pushers_refusal_of_a_post_fails_with_its_status_and_body(
    app: Application, pusher_instance: bytes
) -> None:
    """soketi refuses an event without data: the raw task passes on its status and message."""
    body = {"name": "e", "channels": [channel()]}
    error = await failed(app, pusher_instance, {"method": "POST", "path": "/events", "body": body})
    assert error.startswith("pusher_rejected 400: Pusher answered HTTP 400"), error
    assert "The received data is incorrect" in error


async def test_wrong_secret_fails_with_401_and_is_never_shown(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    wrong = "not-the-secret-raw-42"
    error = await failed(app, pusher_instance, {"method": "GET", "path": "/channels", "secret": wrong})
    assert error.startswith("pusher_rejected 401: Pusher answered HTTP 401"), error
    assert wrong not in error
    assert wrong not in stack.service.log()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"method": "DELETE", "path": "/channels"}, "input 'method' must be GET or POST, not 'DELETE'"),
        ({"method": "GET", "path": "/../../other"}, "input 'path' '/../../other' has a '..' segment"),
        (
            {"method": "GET", "path": "/apps/100001/channels"},
            "input 'path' '/apps/100001/channels' is relative",
        ),
        ({"method": "GET", "path": "/channels?info=x"}, "give query parameters in input 'params'"),
        ({"method": "GET", "path": "/a\r\nX-Injected: 1"}, "contains a line break"),
        (
            {"method": "GET", "path": "/channels", "params": {"auth_signature": "0"}},
            "input 'params.auth_signature' is reserved",
        ),
        (
            {"method": "GET", "path": "/channels", "params": {"info": "a&b"}},
            "input 'params.info' 'a&b' contains '&'",
        ),
        ({"method": "GET", "path": "/channels", "body": {"a": 1}}, "input 'body' is sent with POST only"),
    ],
)
async def test_bad_inputs_fail_that_execution_naming_the_input(
    app: Application, pusher_instance: bytes, inputs: dict[str, Any], message: str
) -> None:
    assert message in await failed(app, pusher_instance, inputs)
    still = await run(app, pusher_instance, "request", {"method": "GET", "path": "/channels"})
    assert still.ok, still.error


async def test_engine_refuses_a_request_without_path(app: Application, pusher_instance: bytes) -> None:
    """mesg.yml makes method and path required: the engine refuses the execution at Create."""
    import grpc

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.execute_task(pusher_instance, "request", {"method": "GET"})
    assert 'value of "path" is required' in (refused.value.details() or "")
