"""The limits as settings end to end: application -> local engine -> service -> soketi -> subscriber.

At the defaults (Pusher's multi-tenant limits) the service refuses what Pusher would; raised
by a variable or an execution's input, it sends what a dedicated cluster or a compatible
server accepts, and a real WebSocket subscriber receives it. soketi keeps its own limits
(100 KB of data, 10 events per batch unless ``SOKETI_EVENT_MAX_BATCH_SIZE``, 200-character
channel names), so raising ours beyond them brings soketi's own refusal back as the error.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nacl.secret
import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.pusher_api import PusherAPIServer
from tests.support.pusher_ws import PusherWS, sign_private
from tests.support.receive import next_event
from tests.support.soketi import Soketi
from tests.support.stack import Stack, running_stack

KB = 1024
MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
DEFAULT_DATA_LIMIT = (
    "the limit is 10240 bytes (Pusher's multi-tenant limit; a dedicated cluster or a compatible "
    "server may allow more: set input 'maxDataBytes' or PUSHER_MAX_DATA_BYTES)"
)


def long_channel(prefix: str = "long", length: int = 190) -> str:
    """A unique channel name of ``length`` characters: over Pusher's 164, within soketi's 200."""
    name = channel(prefix)
    return name + "-" + "x" * (length - len(name) - 1)


# Listened to from the start by the raised stack (PUSHER_SUBSCRIBE), so the service must parse
# it with the raised channel-name limit.
SUBSCRIBED = long_channel("listened")


async def failed(app: Application, instance: bytes, task: str, inputs: dict[str, Any]) -> str:
    result = await run(app, instance, task, inputs)
    assert result.status == "Failed", result.outputs
    return result.error or ""


async def nothing_then(ws: PusherWS, app: Application, instance: bytes, name: str) -> None:
    """Nothing reached ``name`` before a marker event triggered now: the refused one was not sent."""
    marker = await run(app, instance, "trigger", {"channel": name, "name": "marker", "data": "m"})
    assert marker.ok, marker.error
    event = await ws.next_event(channel=name)
    assert event["event"] == "marker", event


# -- stacks -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_soketi() -> Iterator[Soketi]:
    """soketi as a server configured for larger batches (its data and name limits are 100 KB, 200)."""
    with Soketi(env={"SOKETI_EVENT_MAX_BATCH_SIZE": "20"}) as server:
        yield server


@pytest.fixture(scope="module")
def raised(big_soketi: Soketi) -> Iterator[Stack]:
    """An instance whose variables raise every limit to what soketi accepts."""
    env = {
        "PUSHER_MAX_DATA_BYTES": str(100 * KB),
        "PUSHER_MAX_BATCH_SIZE": "20",
        "PUSHER_MAX_CHANNEL_NAME_LENGTH": "200",
        "PUSHER_SUBSCRIBE": SUBSCRIBED,
    }
    with running_stack(big_soketi, env=env) as stack:
        yield stack


@pytest.fixture
async def rapp(raised: Stack) -> AsyncIterator[Application]:
    async with Application.connect(raised.engine.endpoint) as application:
        yield application


@pytest.fixture
async def rinstance(rapp: Application) -> bytes:
    return await rapp.resolve("com.mesg.pusher")


# -- data size ----------------------------------------------------------------------------------


async def test_50kb_trigger_is_an_input_error_at_the_default(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel()
    async with PusherWS(stack.soketi.ws_url()) as ws:
        await ws.subscribe(name)
        error = await failed(
            app, pusher_instance, "trigger", {"channel": name, "name": "big", "data": "x" * 50 * KB}
        )
        assert error == f"invalid_input: input 'data' is 51200 bytes once serialised; {DEFAULT_DATA_LIMIT}"
        await nothing_then(ws, app, pusher_instance, name)


async def test_50kb_trigger_with_the_limit_raised_by_input_reaches_a_subscriber(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    one, two, three = channel(), channel(), channel()
    data = {"blob": "é✓" * (12 * KB), "n": 1}  # about 60 KB once serialised (UTF-8)
    assert 50 * KB < len(json.dumps(data, ensure_ascii=False).encode()) < 64 * KB
    async with PusherWS(stack.soketi.ws_url()) as ws:
        for name in (one, two, three):
            await ws.subscribe(name)
        # One channel (through the coalescer), then two (a direct call).
        alone = await run(
            app,
            pusher_instance,
            "trigger",
            {"channel": one, "name": "big", "data": data, "maxDataBytes": 64 * KB},
        )
        assert alone.ok, alone.error
        assert (await ws.next_event(channel=one, event="big"))["data"] == data
        both = await run(
            app,
            pusher_instance,
            "trigger",
            {"channels": [two, three], "name": "big", "data": data, "maxDataBytes": 64 * KB},
        )
        assert both.ok, both.error
        assert (await ws.next_event(channel=two, event="big"))["data"] == data
        assert (await ws.next_event(channel=three, event="big"))["data"] == data
        batch = [{"channel": one, "name": "big-batch", "data": data}]
        batched = await run(app, pusher_instance, "triggerBatch", {"batch": batch, "maxDataBytes": 64 * KB})
        assert batched.ok, batched.error
        assert (await ws.next_event(channel=one, event="big-batch"))["data"] == data


async def test_data_limit_raised_by_variable(raised: Stack, rapp: Application, rinstance: bytes) -> None:
    name = channel()
    async with PusherWS(raised.soketi.ws_url()) as ws:
        await ws.subscribe(name)
        sent = await run(rapp, rinstance, "trigger", {"channel": name, "name": "big", "data": "y" * 50 * KB})
        assert sent.ok, sent.error
        assert (await ws.next_event(channel=name, event="big"))["data"] == "y" * 50 * KB
        over = await failed(
            rapp, rinstance, "trigger", {"channel": name, "name": "big", "data": "y" * (100 * KB + 1)}
        )
        assert over == (
            "invalid_input: input 'data' is 102401 bytes once serialised; the limit is 102400 bytes "
            "(set by variable PUSHER_MAX_DATA_BYTES)"
        )
        # An execution's input overrides the variable, down as well as up.
        lower = await failed(
            rapp,
            rinstance,
            "trigger",
            {"channel": name, "name": "e", "data": "y" * 2001, "maxDataBytes": 2000},
        )
        assert lower.endswith("the limit is 2000 bytes (set by input 'maxDataBytes')")
        await nothing_then(ws, rapp, rinstance, name)


async def test_beyond_soketis_own_limit_soketi_refuses_with_413(
    app: Application, pusher_instance: bytes
) -> None:
    inputs = {"channel": channel(), "name": "e", "data": "z" * 150 * KB, "maxDataBytes": 200 * KB}
    error = await failed(app, pusher_instance, "trigger", inputs)
    assert error.startswith("pusher_rejected 413: Pusher answered HTTP 413"), error
    assert "100 KB" in error


async def test_send_to_user_follows_the_data_limit(app: Application, pusher_instance: bytes) -> None:
    async with PusherAPIServer("100001", "api-key", "api-secret") as api:
        inputs = {**api.connection_inputs(), "user_id": "u1", "name": "big", "data": "u" * 40 * KB}
        refused = await failed(app, pusher_instance, "sendToUser", inputs)
        assert refused == f"invalid_input: input 'data' is 40960 bytes once serialised; {DEFAULT_DATA_LIMIT}"
        sent = await run(app, pusher_instance, "sendToUser", {**inputs, "maxDataBytes": 40 * KB})
        assert sent.ok, sent.error
        (record,) = api.requests
        assert record.signed, record.problem
        assert record.json["channels"] == ["#server-to-user-u1"]
        assert record.json["data"] == "u" * 40 * KB


# -- encrypted channels: the limit counts the ciphertext ---------------------------------------------


def decrypt(shared_secret: str, data: dict[str, str]) -> Any:
    box = nacl.secret.SecretBox(base64.b64decode(shared_secret))
    return json.loads(box.decrypt(base64.b64decode(data["ciphertext"]), base64.b64decode(data["nonce"])))


async def test_encrypted_payload_over_the_limit_is_an_input_error(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = channel("private-encrypted-limit")
    key = {"encryptionMasterKeyBase64": MASTER_KEY}
    plaintext = {"text": "s" * 8_000}  # JSON of 8,011 bytes: within 10,240; its ciphertext is not
    async with PusherWS(stack.soketi.ws_url()) as ws:
        auth = await run(
            app, pusher_instance, "authorizeChannel", {**key, "socket_id": ws.socket_id, "channel": name}
        )
        assert auth.ok, auth.error
        await ws.subscribe(name, auth=auth.outputs["auth"])

        error = await failed(
            app, pusher_instance, "trigger", {**key, "channel": name, "name": "e", "data": plaintext}
        )
        assert error.startswith(
            f"invalid_input: input 'data' is 8011 bytes once serialised and {_envelope_size(8011)} once encrypted for "
            f"{name!r} (what Pusher receives); {DEFAULT_DATA_LIMIT}"
        ), error
        batch = [{"channel": name, "name": "e", "data": plaintext}]
        in_batch = await failed(app, pusher_instance, "triggerBatch", {**key, "batch": batch})
        assert in_batch.startswith(
            "invalid_input: input 'batch[0].data' is 8011 bytes once serialised and "
        ), in_batch
        assert MASTER_KEY not in error + in_batch

        # Raised, the same payload goes out encrypted and the subscriber decrypts it.
        raised_inputs = {**key, "channel": name, "name": "e", "data": plaintext, "maxDataBytes": 16 * KB}
        sent = await run(app, pusher_instance, "trigger", raised_inputs)
        assert sent.ok, sent.error
        event = await ws.next_event(channel=name, event="e")
        assert len(json.dumps(event["data"]).encode()) > 10_240
        assert decrypt(auth.outputs["shared_secret"], event["data"]) == plaintext


def _envelope_size(plaintext_bytes: int) -> int:
    """The SDK's JSON envelope: {"nonce": base64 of 24 bytes, "ciphertext": base64 of n + 16}."""
    return len('{"nonce": "", "ciphertext": ""}') + 32 + 4 * -(-(plaintext_bytes + 16) // 3)


# -- batch size ---------------------------------------------------------------------------------------


async def test_batch_over_the_default_limit_is_an_input_error(
    app: Application, pusher_instance: bytes
) -> None:
    batch = [{"channel": channel(), "name": "e", "data": str(i)} for i in range(15)]
    error = await failed(app, pusher_instance, "triggerBatch", {"batch": batch})
    assert error == (
        "invalid_input: input 'batch' has 15 events; the limit is 10 events (Pusher's multi-tenant limit; a dedicated "
        "cluster or a compatible server may allow more: set input 'maxBatchSize' or PUSHER_MAX_BATCH_SIZE)"
    )
    # Raised beyond what this soketi allows (10), soketi's own refusal is the error.
    beyond = await failed(app, pusher_instance, "triggerBatch", {"batch": batch, "maxBatchSize": 15})
    assert beyond.startswith("pusher_rejected 400: Pusher answered HTTP 400"), beyond
    assert "Cannot batch-send more than 10 messages at once" in beyond


async def test_batch_within_a_raised_limit_is_delivered_and_over_it_refused(
    raised: Stack, rapp: Application, rinstance: bytes
) -> None:
    name = channel()
    batch = [{"channel": name, "name": "n", "data": {"i": i}} for i in range(20)]
    async with PusherWS(raised.soketi.ws_url()) as ws:
        await ws.subscribe(name)
        sent = await run(rapp, rinstance, "triggerBatch", {"batch": batch})
        assert sent.ok, sent.error
        got = sorted([(await ws.next_event(channel=name, event="n"))["data"]["i"] for _ in range(20)])
        assert got == list(range(20))
        over = await failed(rapp, rinstance, "triggerBatch", {"batch": [*batch, batch[0]]})
        assert (
            over
            == "invalid_input: input 'batch' has 21 events; the limit is 20 events (set by variable PUSHER_MAX_BATCH_SIZE)"
        )
        await nothing_then(ws, rapp, rinstance, name)


# -- channel names ------------------------------------------------------------------------------------


async def test_long_channel_name_is_an_input_error_at_the_default(
    app: Application, pusher_instance: bytes
) -> None:
    name = long_channel()
    error = await failed(app, pusher_instance, "trigger", {"channel": name, "name": "e", "data": "x"})
    assert error == (
        "invalid_input: input 'channel' is 190 characters long; the limit is 164 characters (Pusher's limit; soketi and "
        "sockudo accept 200: set input 'maxChannelNameLength' or PUSHER_MAX_CHANNEL_NAME_LENGTH)"
    )
    for task, inputs in (
        ("channel", {"channel": name}),
        ("channels", {"filter_by_prefix": name}),
        ("authorizeChannel", {"socket_id": "1.2", "channel": "private-" + name[8:]}),
    ):
        assert "190 characters long; the limit is 164" in await failed(app, pusher_instance, task, inputs)


async def test_long_channel_name_with_the_limit_raised_by_input(
    stack: Stack, app: Application, pusher_instance: bytes
) -> None:
    name = long_channel()
    raised_inputs = {"maxChannelNameLength": 200}
    async with PusherWS(stack.soketi.ws_url()) as ws:
        await ws.subscribe(name)
        sent = await run(
            app, pusher_instance, "trigger", {**raised_inputs, "channel": name, "name": "e", "data": "x"}
        )
        assert sent.ok, sent.error
        assert (await ws.next_event(channel=name, event="e"))["data"] == "x"
        state = await run(app, pusher_instance, "channel", {**raised_inputs, "channel": name})
        assert state.ok and state.outputs["occupied"] is True, state.error
        listed = await run(app, pusher_instance, "channels", {**raised_inputs, "filter_by_prefix": name})
        assert listed.ok and listed.outputs["channels"] == [name], listed.error


async def test_long_channel_names_with_the_limit_raised_by_variable_everywhere(
    raised: Stack, rapp: Application, rinstance: bytes
) -> None:
    """Triggers, batches, queries, presence users, authorization and the listener (the channel of
    PUSHER_SUBSCRIBE, and one added by the subscribe task) all take 190-character names."""
    presence = long_channel("presence-long")
    private = long_channel("private-long")
    added = long_channel("added")
    events = await rapp.listen_events(rinstance, key="received")
    try:
        listening = await run(rapp, rinstance, "subscribe", {"channels": [SUBSCRIBED, added]})
        assert listening.ok, listening.error
        assert {SUBSCRIBED, added} <= set(listening.outputs["channels"])
        for name in (SUBSCRIBED, added):
            sent = await run(
                rapp, rinstance, "trigger", {"channel": name, "name": "heard", "data": {"on": name}}
            )
            assert sent.ok, sent.error
            got = await next_event(
                events, lambda d, name=name: d["channel"] == name and d["event"] == "heard"
            )
            assert got["data"] == {"on": name}
        batch = [{"channel": added, "name": "heard-batch", "data": "b"}]
        batched = await run(rapp, rinstance, "triggerBatch", {"batch": batch})
        assert batched.ok, batched.error
        assert (await next_event(events, lambda d: d["event"] == "heard-batch"))["channel"] == added
    finally:
        events.close()

    async with PusherWS(raised.soketi.ws_url()) as ws, PusherWS(raised.soketi.ws_url()) as member:
        auth = await run(rapp, rinstance, "authorizeChannel", {"socket_id": ws.socket_id, "channel": private})
        assert auth.ok, auth.error
        await ws.subscribe(private, auth=auth.outputs["auth"])
        data = json.dumps({"user_id": "u-long"})
        secret, key = raised.soketi.app.secret, raised.soketi.app.key
        await member.subscribe(
            presence, auth=sign_private(key, secret, member.socket_id, presence, data), channel_data=data
        )
        users = await run(rapp, rinstance, "users", {"channel": presence})
        assert users.ok and users.outputs["users"] == [{"id": "u-long"}], users.error
        over = await failed(
            rapp, rinstance, "trigger", {"channel": long_channel(length=201), "name": "e", "data": "x"}
        )
        assert over == (
            "invalid_input: input 'channel' is 201 characters long; the limit is 200 characters "
            "(set by variable PUSHER_MAX_CHANNEL_NAME_LENGTH)"
        )
