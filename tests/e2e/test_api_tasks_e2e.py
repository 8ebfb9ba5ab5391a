"""The rest of the Channels server API end to end: the tasks beyond the
seed trigger (users, channel authorization, encrypted channels, sign-in, channel queries and
info) through the real processes, so each is proven against a real server, not a stub.

application -> local engine -> real service process -> soketi (or the signature-checking
Pusher API test server where soketi lacks a feature) -> a real WebSocket client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import grpc
import nacl.secret
import pusher
import pytest
from pusher.http import Request

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.fixtures import SoketiFactory
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.pusher_api import CACHE, SUBSCRIPTION_COUNT, USER_COUNT, PusherAPIServer, signature
from tests.support.pusher_ws import PusherError, PusherWS, sign_private
from tests.support.soketi import Soketi
from tests.support.stack import Stack, running_stack

MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


async def failed(app: Application, instance: bytes, task: str, inputs: dict[str, Any], message: str) -> str:
    """Run a task that must fail; its error, which must contain ``message``."""
    result = await run(app, instance, task, inputs)
    assert result.status == "Failed", result.outputs
    assert message in (result.error or ""), result.error
    return result.error or ""


async def subscribe_presence(ws: PusherWS, soketi: Soketi, name: str, user_id: str) -> Any:
    data = json.dumps({"user_id": user_id})
    auth = sign_private(soketi.app.key, soketi.app.secret, ws.socket_id, name, data)
    return await ws.subscribe(name, auth=auth, channel_data=data)


@pytest.fixture
async def pusher_api(stack: Stack) -> AsyncIterator[PusherAPIServer]:
    """The signature-checking Pusher API test server, with the stack's app credentials."""
    app = stack.soketi.app
    async with PusherAPIServer(app.app_id, app.key, app.secret) as server:
        yield server


# -- users ---------------------------------------------------------------------------------


async def test_users_lists_presence_members(stack: Stack, app: Application, pusher_instance: bytes) -> None:
    name = channel("presence-users")
    async with PusherWS(stack.soketi.ws_url()) as one, PusherWS(stack.soketi.ws_url()) as two:
        await subscribe_presence(one, stack.soketi, name, "alice")
        await subscribe_presence(two, stack.soketi, name, "bob")
        result = await run(app, pusher_instance, "users", {"channel": name})
        assert result.ok, result.error
    assert sorted(result.outputs["users"], key=lambda u: u["id"]) == [{"id": "alice"}, {"id": "bob"}]
    empty = await run(app, pusher_instance, "users", {"channel": channel("presence-empty")})
    assert empty.ok, empty.error
    assert empty.outputs == {"users": []}


@pytest.mark.parametrize("name", ["public-room", "private-room"])
async def test_users_on_a_non_presence_channel_fails(
    app: Application, pusher_instance: bytes, name: str
) -> None:
    error = await failed(app, pusher_instance, "users", {"channel": name}, "users needs a presence-* channel")
    assert repr(name) in error


# -- authorizeChannel ----------------------------------------------------------------------


async def test_authorize_channel_private_accepted_by_soketi(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel("private-auth")
    async with PusherWS(stack.soketi.ws_url()) as ws, PusherWS(stack.soketi.ws_url()) as other:
        result = await run(
            app, pusher_instance, "authorizeChannel", {"socket_id": ws.socket_id, "channel": name}
        )
        assert result.ok, result.error
        assert set(result.outputs) == {"auth"}
        assert result.outputs["auth"].startswith(stack.soketi.app.key + ":")
        await ws.subscribe(name, auth=result.outputs["auth"])
        # Negative control: soketi really checks it (the auth is bound to that socket_id).
        with pytest.raises(PusherError):
            await other.subscribe(name, auth=result.outputs["auth"])
        # And the subscription is live: a trigger reaches it.
        sent = await run(app, pusher_instance, "trigger", {"channel": name, "name": "ev", "data": {"a": 1}})
        assert sent.ok, sent.error
        assert (await ws.next_event(channel=name, event="ev"))["data"] == {"a": 1}


async def test_authorize_channel_presence_with_user_info(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel("presence-auth")
    info = {"name": "Zoë", "roles": ["admin"], "n": 2}
    async with PusherWS(stack.soketi.ws_url()) as ws, PusherWS(stack.soketi.ws_url()) as plain:
        result = await run(
            app,
            pusher_instance,
            "authorizeChannel",
            {"socket_id": ws.socket_id, "channel": name, "user_id": "u-42", "user_info": info},
        )
        assert result.ok, result.error
        assert set(result.outputs) == {"auth", "channel_data"}
        assert json.loads(result.outputs["channel_data"]) == {"user_id": "u-42", "user_info": info}
        members = await ws.subscribe(
            name, auth=result.outputs["auth"], channel_data=result.outputs["channel_data"]
        )
        assert members["presence"]["ids"] == ["u-42"]
        assert members["presence"]["hash"]["u-42"] == info

        # Without user_info: channel_data carries only the user id.
        bare = await run(
            app,
            pusher_instance,
            "authorizeChannel",
            {"socket_id": plain.socket_id, "channel": name, "user_id": "u-7"},
        )
        assert bare.ok, bare.error
        assert json.loads(bare.outputs["channel_data"]) == {"user_id": "u-7"}
        await plain.subscribe(name, auth=bare.outputs["auth"], channel_data=bare.outputs["channel_data"])
        users = await run(app, pusher_instance, "users", {"channel": name})
    assert sorted(u["id"] for u in users.outputs["users"]) == ["u-42", "u-7"]


AUTHORIZE_BAD = [
    ({"socket_id": "123.456", "channel": "presence-room"}, "input 'user_id' is required"),
    ({"socket_id": "123.456", "channel": "presence-room", "user_id": ""}, "input 'user_id' is required"),
    ({"socket_id": "123.456", "channel": "public-room"}, "needs a private-* or presence-* channel"),
    ({"socket_id": "123.456", "channel": "room"}, "needs a private-* or presence-* channel"),
    ({"socket_id": "abc", "channel": "private-room"}, "must look like 123.456"),
    ({"socket_id": "123", "channel": "private-room"}, "must look like 123.456"),
    ({"socket_id": "", "channel": "private-room"}, "input 'socket_id' is required"),
    ({"socket_id": "123.456", "channel": "private-bad channel"}, "channel names may only contain"),
    (
        {"socket_id": "123.456", "channel": "private-encrypted-room"},
        "set PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
    ),
]


@pytest.mark.parametrize(("inputs", "message"), AUTHORIZE_BAD)
async def test_authorize_channel_bad_inputs_fail(
    app: Application, pusher_instance: bytes, inputs: dict[str, Any], message: str
) -> None:
    await failed(app, pusher_instance, "authorizeChannel", inputs, message)


# -- end-to-end encryption -----------------------------------------------------------------


@pytest.fixture(scope="module")
def encrypted_stack(soketi: Soketi) -> Iterator[Stack]:
    """A second engine + service whose instance has PUSHER_ENCRYPTION_MASTER_KEY_BASE64 set."""
    with running_stack(soketi, env={"PUSHER_ENCRYPTION_MASTER_KEY_BASE64": MASTER_KEY}) as running:
        yield running


def decrypt(shared_secret: str, data: dict[str, str]) -> Any:
    box = nacl.secret.SecretBox(base64.b64decode(shared_secret))
    plaintext = box.decrypt(base64.b64decode(data["ciphertext"]), base64.b64decode(data["nonce"]))
    return json.loads(plaintext.decode("utf-8"))


async def test_encrypted_channel_round_trip(encrypted_stack: Stack) -> None:
    name = channel("private-encrypted-x")
    secret_data = {"secret": "plaintext ✓"}
    async with Application.connect(encrypted_stack.engine.endpoint) as app:
        instance = await app.resolve("com.mesg.pusher")
        async with PusherWS(encrypted_stack.soketi.ws_url()) as ws:
            auth = await run(app, instance, "authorizeChannel", {"socket_id": ws.socket_id, "channel": name})
            assert auth.ok, auth.error
            assert set(auth.outputs) == {"auth", "shared_secret"}
            assert len(base64.b64decode(auth.outputs["shared_secret"])) == 32
            await ws.subscribe(name, auth=auth.outputs["auth"])

            sent = await run(app, instance, "trigger", {"channel": name, "name": "enc", "data": secret_data})
            assert sent.ok, sent.error
            event = await ws.next_event(channel=name, event="enc")
            assert set(event["data"]) == {"nonce", "ciphertext"}
            assert "plaintext" not in json.dumps(event["data"])
            assert decrypt(auth.outputs["shared_secret"], event["data"]) == secret_data

            # triggerBatch encrypts too (once: the client decrypts it in one step).
            batch = [{"channel": name, "name": "enc-batch", "data": secret_data}]
            batched = await run(app, instance, "triggerBatch", {"batch": batch})
            assert batched.ok, batched.error
            event = await ws.next_event(channel=name, event="enc-batch")
            assert decrypt(auth.outputs["shared_secret"], event["data"]) == secret_data

        two = await failed(
            app,
            instance,
            "trigger",
            {"channels": [channel("public"), name], "name": "e", "data": "x"},
            "one channel per encrypted trigger",
        )
        assert repr(name) in two
        # The master key never shows in errors or in the service's log.
        assert MASTER_KEY not in two
        assert MASTER_KEY not in encrypted_stack.service.log()


async def test_encrypted_trigger_without_master_key_fails(app: Application, pusher_instance: bytes) -> None:
    inputs = {"channel": channel("private-encrypted-nokey"), "name": "e", "data": {"a": 1}}
    await failed(app, pusher_instance, "trigger", inputs, "PUSHER_ENCRYPTION_MASTER_KEY_BASE64")


@pytest.mark.parametrize(
    ("key", "message"),
    [("abcd", "32 bytes"), (base64.b64encode(b"x" * 16).decode(), "32 bytes"), ("not base64!", "base64")],
)
async def test_malformed_master_key_input_fails(
    app: Application, pusher_instance: bytes, key: str, message: str
) -> None:
    inputs = {
        "channel": channel("private-encrypted-bad"),
        "name": "e",
        "data": "x",
        "encryptionMasterKeyBase64": key,
    }
    error = await failed(app, pusher_instance, "trigger", inputs, message)
    assert "encryptionMasterKeyBase64" in error


async def test_master_key_as_an_input(stack: Stack, app: Application, pusher_instance: bytes) -> None:
    """The execution input enables encryption on an instance without the variable."""
    name = channel("private-encrypted-input")
    async with PusherWS(stack.soketi.ws_url()) as ws:
        auth = await run(
            app,
            pusher_instance,
            "authorizeChannel",
            {"socket_id": ws.socket_id, "channel": name, "encryptionMasterKeyBase64": MASTER_KEY},
        )
        assert auth.ok, auth.error
        await ws.subscribe(name, auth=auth.outputs["auth"])
        inputs = {"channel": name, "name": "e", "data": {"k": "v"}, "encryptionMasterKeyBase64": MASTER_KEY}
        sent = await run(app, pusher_instance, "trigger", inputs)
        assert sent.ok, sent.error
        event = await ws.next_event(channel=name, event="e")
    assert decrypt(auth.outputs["shared_secret"], event["data"]) == {"k": "v"}


async def test_encrypted_trigger_with_info_sends_ciphertext(
    app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    """info is added to the SDK-built (already encrypted) request, not to a plaintext one."""
    name = channel("private-encrypted-info")
    key = {"encryptionMasterKeyBase64": MASTER_KEY}
    auth = await run(
        app,
        pusher_instance,
        "authorizeChannel",
        {**pusher_api.connection_inputs(**key), "socket_id": "1.2", "channel": name},
    )
    assert auth.ok, auth.error
    inputs = {
        **pusher_api.connection_inputs(**key),
        "channel": name,
        "name": "e",
        "data": {"secret": "plaintext ✓"},
        "info": "subscription_count",
    }
    result = await run(app, pusher_instance, "trigger", inputs)
    assert result.ok, result.error
    assert result.outputs["channels"] == {name: {"subscription_count": SUBSCRIPTION_COUNT}}
    (record,) = pusher_api.requests  # authorizeChannel signs locally: no request
    assert_signed(record, pusher_api)
    assert record.json["info"] == "subscription_count"
    sent = json.loads(record.json["data"])
    assert set(sent) == {"nonce", "ciphertext"}
    assert decrypt(auth.outputs["shared_secret"], sent) == {"secret": "plaintext ✓"}


# -- user sign-in, sendToUser, terminateUserConnections on soketi ----------------------------


async def test_signin_send_to_user_and_terminate(soketi_factory: SoketiFactory) -> None:
    server = soketi_factory(user_authentication=True)
    with running_stack(server) as users_stack:
        async with Application.connect(users_stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            async with PusherWS(server.ws_url()) as ws, PusherWS(server.ws_url()) as stranger:
                user = {"id": "user-1", "name": "Ada", "watchlist": ["a", "b"]}
                signed = await run(
                    app, instance, "authenticateUser", {"socket_id": ws.socket_id, "user_data": user}
                )
                assert signed.ok, signed.error
                assert set(signed.outputs) == {"auth", "user_data"}
                assert json.loads(signed.outputs["user_data"]) == user
                await ws.signin(signed.outputs["auth"], signed.outputs["user_data"])
                # Negative control: the same payload from another socket is refused.
                with pytest.raises((PusherError, TimeoutError)):
                    await stranger.signin(signed.outputs["auth"], signed.outputs["user_data"], timeout=2)

                data = {"hello": "user ✓"}
                sent = await run(
                    app, instance, "sendToUser", {"user_id": "user-1", "name": "direct", "data": data}
                )
                assert sent.ok, sent.error
                assert sent.outputs == {"message": "sent"}
                event = await ws.next_event(event="direct")
                assert event["data"] == data
                assert event["channel"] == "#server-to-user-user-1"

                # Another user gets nothing.
                other = await run(
                    app, instance, "sendToUser", {"user_id": "nobody", "name": "x", "data": "x"}
                )
                assert other.ok, other.error

                terminated = await run(app, instance, "terminateUserConnections", {"user_id": "user-1"})
                assert terminated.ok, terminated.error
                assert terminated.outputs == {"message": "terminated"}
                async with asyncio.timeout(5):
                    await ws.connection.wait_closed()
                assert ws.close_code == 4009


AUTHENTICATE_BAD = [
    ({"socket_id": "123.456", "user_data": {"id": "", "name": "x"}}, "input 'user_data.id' is required"),
    ({"socket_id": "123.456", "user_data": {"id": "bad id!"}}, "may only contain"),
    ({"socket_id": "nope", "user_data": {"id": "u1"}}, "must look like 123.456"),
]


@pytest.mark.parametrize(("inputs", "message"), AUTHENTICATE_BAD)
async def test_authenticate_user_bad_inputs_fail(
    app: Application, pusher_instance: bytes, inputs: dict[str, Any], message: str
) -> None:
    await failed(app, pusher_instance, "authenticateUser", inputs, message)


async def test_authenticate_user_without_id_is_refused(app: Application, pusher_instance: bytes) -> None:
    """mesg.yml makes user_data.id required: the engine refuses the execution at Create."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.execute_task(
            pusher_instance, "authenticateUser", {"socket_id": "123.456", "user_data": {"name": "x"}}
        )
    assert '"id"' in (refused.value.details() or ""), refused.value.details()


@pytest.mark.parametrize(
    ("task", "inputs", "message"),
    [
        ("sendToUser", {"user_id": "", "name": "e", "data": "x"}, "input 'user_id' is required"),
        ("sendToUser", {"user_id": "u 1", "name": "e", "data": "x"}, "may only contain"),
        ("sendToUser", {"user_id": "u1", "name": "e", "data": "x" * 10241}, "the limit is 10240 bytes"),
        ("terminateUserConnections", {"user_id": ""}, "input 'user_id' is required"),
        ("terminateUserConnections", {"user_id": "a/b"}, "may only contain"),
    ],
)
async def test_user_tasks_bad_inputs_fail(
    app: Application, pusher_instance: bytes, task: str, inputs: dict[str, Any], message: str
) -> None:
    await failed(app, pusher_instance, task, inputs, message)


# -- against the Pusher API test server: info, cache, terminate path, signatures -------------


def assert_signed(record: Any, api: PusherAPIServer) -> None:
    assert record.signed, record.problem
    assert record.query["auth_key"] == api.key
    assert record.query["auth_version"] == "1.0"
    assert record.query["auth_signature"] == signature(api.secret, record.method, record.path, record.query)


async def test_trigger_with_info_returns_channel_attributes(
    app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    presence, public = channel("presence-info"), channel("info")
    inputs = {
        **pusher_api.connection_inputs(),
        "channels": [presence, public],
        "name": "ev",
        "data": {"a": 1},
        "info": "user_count,subscription_count",
    }
    result = await run(app, pusher_instance, "trigger", inputs)
    assert result.ok, result.error
    assert result.outputs == {
        "message": "sent",
        "channels": {
            presence: {"user_count": USER_COUNT, "subscription_count": SUBSCRIPTION_COUNT},
            public: {"subscription_count": SUBSCRIPTION_COUNT},
        },
    }
    (record,) = pusher_api.requests
    assert (record.method, record.path) == ("POST", f"/apps/{pusher_api.app_id}/events")
    assert_signed(record, pusher_api)
    assert record.json["info"] == "user_count,subscription_count"
    assert record.json["channels"] == [presence, public]
    assert json.loads(record.json["data"]) == {"a": 1}

    # Without info: no info sent, no channels output.
    plain = await run(app, pusher_instance, "trigger", {k: v for k, v in inputs.items() if k != "info"})
    assert plain.ok, plain.error
    assert plain.outputs == {"message": "sent"}
    assert "info" not in pusher_api.requests[-1].json
    assert_signed(pusher_api.requests[-1], pusher_api)


async def test_trigger_with_info_and_socket_id(
    app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    name = channel()
    inputs = {
        **pusher_api.connection_inputs(),
        "channel": name,
        "name": "ev",
        "data": "text",
        "socket_id": "12.34",
        "info": "subscription_count",
    }
    result = await run(app, pusher_instance, "trigger", inputs)
    assert result.ok, result.error
    assert result.outputs["channels"] == {name: {"subscription_count": SUBSCRIPTION_COUNT}}
    body = pusher_api.requests[-1].json
    assert (body["socket_id"], body["data"], body["info"]) == ("12.34", "text", "subscription_count")


async def test_trigger_batch_with_per_event_info(
    app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    presence, public = channel("presence-b"), channel("b")
    batch = [
        {"channel": presence, "name": "e0", "data": {"i": 0}, "info": "user_count"},
        {"channel": public, "name": "e1", "data": "one", "socket_id": "1.2"},
        {"channel": public, "name": "e2", "data": {"i": 2}, "info": "subscription_count"},
    ]
    result = await run(
        app, pusher_instance, "triggerBatch", {**pusher_api.connection_inputs(), "batch": batch}
    )
    assert result.ok, result.error
    assert result.outputs == {
        "message": "sent",
        "batch": [{"user_count": USER_COUNT}, {}, {"subscription_count": SUBSCRIPTION_COUNT}],
    }
    (record,) = pusher_api.requests
    assert (record.method, record.path) == ("POST", f"/apps/{pusher_api.app_id}/batch_events")
    assert_signed(record, pusher_api)
    sent = record.json["batch"]
    assert [e.get("info") for e in sent] == ["user_count", None, "subscription_count"]
    assert [e.get("socket_id") for e in sent] == [None, "1.2", None]
    assert json.loads(sent[0]["data"]) == {"i": 0} and sent[1]["data"] == "one"

    no_info = [{k: v for k, v in e.items() if k != "info"} for e in batch]
    plain = await run(
        app, pusher_instance, "triggerBatch", {**pusher_api.connection_inputs(), "batch": no_info}
    )
    assert plain.ok, plain.error
    assert plain.outputs == {"message": "sent"}


async def test_channel_with_cache_info(
    app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    name = channel("cache")
    inputs = {**pusher_api.connection_inputs(), "channel": name, "info": "cache"}
    result = await run(app, pusher_instance, "channel", inputs)
    assert result.ok, result.error
    assert result.outputs == {"occupied": True, "cache": CACHE}
    (record,) = pusher_api.requests
    assert (record.method, record.path) == ("GET", f"/apps/{pusher_api.app_id}/channels/{name}")
    assert record.query["info"] == "cache"
    assert record.body == b""
    assert_signed(record, pusher_api)

    both = await run(app, pusher_instance, "channel", {**inputs, "info": "cache,subscription_count"})
    assert both.ok, both.error
    assert both.outputs == {"occupied": True, "cache": CACHE, "subscription_count": SUBSCRIPTION_COUNT}
    assert pusher_api.requests[-1].query["info"] == "cache,subscription_count"


async def test_terminate_user_connections_path_and_signature(
    app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    inputs = {**pusher_api.connection_inputs(), "user_id": "user-9"}
    result = await run(app, pusher_instance, "terminateUserConnections", inputs)
    assert result.ok, result.error
    assert result.outputs == {"message": "terminated"}
    (record,) = pusher_api.requests
    assert record.method == "POST"
    assert record.path == f"/apps/{pusher_api.app_id}/users/user-9/terminate_connections"
    assert record.json == {}
    assert_signed(record, pusher_api)


async def test_send_to_user_request(
    app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    inputs = {**pusher_api.connection_inputs(), "user_id": "user-9", "name": "ping", "data": {"x": 1}}
    result = await run(app, pusher_instance, "sendToUser", inputs)
    assert result.ok, result.error
    (record,) = pusher_api.requests
    assert (record.method, record.path) == ("POST", f"/apps/{pusher_api.app_id}/events")
    assert record.json["channels"] == ["#server-to-user-user-9"]
    assert record.json["name"] == "ping"
    assert json.loads(record.json["data"]) == {"x": 1}
    assert_signed(record, pusher_api)


@pytest.mark.parametrize(
    ("task", "inputs"),
    [
        ("trigger", {"channel": "c", "name": "e", "data": "x", "info": "subscription_count"}),
        (
            "triggerBatch",
            {"batch": [{"channel": "c", "name": "e", "data": "x", "info": "subscription_count"}]},
        ),
        ("channel", {"channel": "c", "info": "cache"}),
        ("terminateUserConnections", {"user_id": "u1"}),
    ],
)
async def test_wrong_secret_against_the_api_server_fails_with_401(
    stack: Stack,
    app: Application,
    pusher_instance: bytes,
    pusher_api: PusherAPIServer,
    task: str,
    inputs: dict[str, Any],
) -> None:
    wrong = "wrong-secret-5678"
    error = await failed(
        app, pusher_instance, task, {**pusher_api.connection_inputs(secret=wrong), **inputs}, "HTTP 401"
    )
    assert "Invalid signature" in error
    assert wrong not in error
    assert wrong not in stack.service.log()
    (record,) = pusher_api.requests
    assert record.status == 401


# -- channels: first-class filter_by_prefix and info -----------------------------------------


async def test_channels_first_class_filter_by_prefix(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    prefix = channel("firstclass")
    names = sorted([f"{prefix}-a", f"{prefix}-b"])
    async with PusherWS(stack.soketi.ws_url()) as ws:
        for name in names:
            await ws.subscribe(name)
        await ws.subscribe(channel("elsewhere"))
        result = await run(app, pusher_instance, "channels", {"filter_by_prefix": prefix})
        assert result.ok, result.error
        assert sorted(result.outputs["channels"]) == names
        assert "info" not in result.outputs
        same = await run(
            app,
            pusher_instance,
            "channels",
            {"filter_by_prefix": prefix, "params": {"filter_by_prefix": prefix}},
        )
        assert same.ok, same.error
        assert sorted(same.outputs["channels"]) == names


async def test_channels_first_class_info_for_presence(
    stack: Stack, app: Application, pusher_instance: bytes, pusher_api: PusherAPIServer
) -> None:
    # soketi ignores `info` on GET /channels, so the attributes are checked against the API server.
    inputs = {**pusher_api.connection_inputs(), "filter_by_prefix": "presence-", "info": "user_count"}
    result = await run(app, pusher_instance, "channels", inputs)
    assert result.ok, result.error
    assert result.outputs == {
        "channels": ["presence-lobby", "presence-room"],
        "info": {"presence-lobby": {"user_count": USER_COUNT}, "presence-room": {"user_count": USER_COUNT}},
    }
    (record,) = pusher_api.requests
    assert (record.method, record.path) == ("GET", f"/apps/{pusher_api.app_id}/channels")
    assert (record.query["filter_by_prefix"], record.query["info"]) == ("presence-", "user_count")
    assert_signed(record, pusher_api)
    # Pusher's own refusal (user_count without a presence- filter) comes back as the error.
    await failed(
        app,
        pusher_instance,
        "channels",
        {**pusher_api.connection_inputs(), "info": "user_count"},
        'HTTP 400: {"error": "user_count may only be requested for presence channels"}',
    )

    # And through soketi: the presence channel is listed with its attributes object.
    name = channel("presence-list")
    async with PusherWS(stack.soketi.ws_url()) as one, PusherWS(stack.soketi.ws_url()) as two:
        await subscribe_presence(one, stack.soketi, name, "u1")
        await subscribe_presence(two, stack.soketi, name, "u2")
        listed = await run(app, pusher_instance, "channels", {"filter_by_prefix": name, "info": "user_count"})
        assert listed.ok, listed.error
    assert listed.outputs["channels"] == [name]
    assert isinstance(listed.outputs["info"][name], dict)


@pytest.mark.parametrize("prefix", ["presence-a&b", "a+b"])
async def test_channels_prefix_with_query_characters_fails_cleanly(
    app: Application, pusher_instance: bytes, prefix: str
) -> None:
    result = await run(app, pusher_instance, "channels", {"filter_by_prefix": prefix})
    # No channel name can hold '&' or '+': an empty list, or an error naming the input.
    if result.ok:
        assert result.outputs == {"channels": []}
    else:
        assert "filter_by_prefix" in (result.error or ""), result.error


async def test_channels_conflicting_prefix_inputs_fail(app: Application, pusher_instance: bytes) -> None:
    inputs = {"filter_by_prefix": "a-", "params": {"filter_by_prefix": "b-"}}
    await failed(
        app,
        pusher_instance,
        "channels",
        inputs,
        "input 'filter_by_prefix' and 'params.filter_by_prefix' differ",
    )


# -- PUSHER_URL as the only configuration --------------------------------------------------


async def test_pusher_url_alone_configures_the_service(soketi: Soketi) -> None:
    app_conf = soketi.app
    url = f"http://{app_conf.key}:{app_conf.secret}@{soketi.host}:{soketi.port}/apps/{app_conf.app_id}"
    engine = EngineProcess(env={"PUSHER_URL": url}).start()
    service = ServiceProcess(engine)
    try:
        assert not [k for k in service.env if k.startswith("PUSHER_") and k != "PUSHER_URL"]
        service.start_ready()
        async with Application.connect(engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            name = channel("url")
            async with PusherWS(soketi.ws_url()) as ws:
                await ws.subscribe(name)
                result = await run(
                    app, instance, "trigger", {"channel": name, "name": "via-url", "data": {"u": 1}}
                )
                assert result.ok, result.error
                assert (await ws.next_event(channel=name, event="via-url"))["data"] == {"u": 1}
            # Connection inputs still override PUSHER_URL's parts.
            wrong = await run(
                app, instance, "trigger", {"channel": name, "name": "e", "data": "x", "secret": "nope-nope-1"}
            )
            assert wrong.status == "Failed"
            assert "HTTP 401" in (wrong.error or "")
        assert app_conf.secret not in service.log()
    finally:
        service.stop()
        engine.stop()


async def test_api_server_checks_requests_as_pusher_documents(pusher_api: PusherAPIServer) -> None:
    """The test server itself: the SDK's signing passes, each tampered field gets 401."""
    sdk = pusher.Pusher(app_id=pusher_api.app_id, key=pusher_api.key, secret=pusher_api.secret)
    inner = sdk._pusher_client
    base = f"http://{pusher_api.host}:{pusher_api.port}"

    async def send(request: Request, **tamper: str) -> int:
        query = {**request.query_params, **tamper}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, base + request.path, params=query, data=request.body or None
            ) as response,
        ):
            return response.status

    post = Request(
        inner, "POST", f"/apps/{pusher_api.app_id}/events", {"name": "e", "channels": ["c"], "data": "x"}
    )
    get = Request(inner, "GET", f"/apps/{pusher_api.app_id}/channels/c", {"info": "cache"})
    assert await send(post) == 200
    assert await send(get) == 200
    assert await send(post, auth_signature="0" * 64) == 401
    assert await send(post, auth_key="other-key") == 401
    assert await send(post, auth_version="2.0") == 401
    assert await send(post, body_md5="0" * 32) == 401
    assert await send(get, info="user_count") == 401  # a parameter changed after signing
    stale = Request(inner, "GET", f"/apps/{pusher_api.app_id}/channels/c", {})
    stale.query_params["auth_timestamp"] = str(int(time.time()) - 601)
    stale.query_params.pop("auth_signature")
    stale.query_params["auth_signature"] = signature(pusher_api.secret, "GET", stale.path, stale.query_params)
    assert await send(stale) == 401
    assert [r.problem is None for r in pusher_api.requests] == [True, True] + [False] * 6
