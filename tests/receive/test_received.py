"""``received``: the service listens to channels over Pusher's WebSocket protocol (soketi here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from mesg_local_engine.app import Application
from mesg_pusher.definition import check_task_outputs
from tests.receive.helpers import DEFINITION, channel, next_event, no_event, run
from tests.support.pusher_ws import PusherWS, sign_private
from tests.support.soketi import Soketi
from tests.support.stack import Stack, running_stack

PUBLIC, PRIVATE, PRESENCE = channel(), channel("private-recv"), channel("presence-recv")


@pytest.fixture(scope="module")
def rstack(soketi: Soketi) -> Iterator[Stack]:
    with running_stack(soketi, env={"PUSHER_SUBSCRIBE": f"{PUBLIC}, {PRIVATE},{PRESENCE}"}) as stack:
        yield stack


@pytest.fixture
async def rapp(rstack: Stack) -> AsyncIterator[Application]:
    async with Application.connect(rstack.engine.endpoint) as application:
        yield application


@pytest.fixture
async def instance(rapp: Application) -> bytes:
    instance = await rapp.resolve("com.mesg.pusher")
    # Subscribing again to the configured channels returns once Pusher confirmed them all.
    result = await run(rapp, instance, "subscribe", {"channels": [PUBLIC, PRIVATE, PRESENCE]})
    assert result.ok, result.error
    assert check_task_outputs(DEFINITION.name, DEFINITION.tasks["subscribe"], result.outputs or {}) is None
    assert {PUBLIC, PRIVATE, PRESENCE} <= set(result.outputs["channels"])  # type: ignore[index]
    return instance


async def test_triggered_events_come_back_as_received(rapp: Application, instance: bytes) -> None:
    events = await rapp.listen_events(instance, key="received")
    try:
        data = {"text": "héllo ✓", "n": 3, "x": 1.5, "ok": True, "list": [1, "a", {"b": []}]}
        for name in (PUBLIC, PRIVATE, PRESENCE):
            result = await run(rapp, instance, "trigger", {"channel": name, "name": "greet", "data": data})
            assert result.ok, result.error
            got = await next_event(
                events, lambda d, name=name: d["channel"] == name and d["event"] == "greet"
            )
            assert got == {"channel": name, "event": "greet", "data": data}
        result = await run(
            rapp, instance, "trigger", {"channel": PUBLIC, "name": "txt", "data": "plain text"}
        )
        assert result.ok, result.error
        got = await next_event(events, lambda d: d["event"] == "txt")
        assert got["data"] == "plain text"
    finally:
        events.close()


async def test_client_events_arrive_with_user_id_on_presence(
    rstack: Stack, rapp: Application, instance: bytes
) -> None:
    app = rstack.soketi.app
    events = await rapp.listen_events(instance, key="received")
    try:
        async with PusherWS(rstack.soketi.ws_url()) as ws:
            await ws.subscribe(PRIVATE, auth=sign_private(app.key, app.secret, ws.socket_id, PRIVATE))
            await ws.send("client-hello", {"x": 1}, channel=PRIVATE)
            got = await next_event(events, lambda d: d["event"] == "client-hello")
            assert got["channel"] == PRIVATE and got["data"] == {"x": 1}

            member = json.dumps({"user_id": "alice"})
            await ws.subscribe(
                PRESENCE,
                auth=sign_private(app.key, app.secret, ws.socket_id, PRESENCE, member),
                channel_data=member,
            )
            await ws.send("client-presence", {"y": 2}, channel=PRESENCE)
            got = await next_event(events, lambda d: d["event"] == "client-presence")
            assert got["channel"] == PRESENCE and got["data"] == {"y": 2}
            assert got["user_id"] == "alice"  # soketi adds it on presence channels
    finally:
        events.close()


async def test_subscribe_and_unsubscribe_change_what_is_received(rapp: Application, instance: bytes) -> None:
    extra = channel("private-extra")
    events = await rapp.listen_events(instance, key="received")
    try:
        result = await run(rapp, instance, "subscribe", {"channel": extra})
        assert result.ok, result.error
        assert extra in result.outputs["channels"]  # type: ignore[index]
        assert (await run(rapp, instance, "trigger", {"channel": extra, "name": "one", "data": {}})).ok
        got = await next_event(events, lambda d: d["event"] == "one")
        assert got["channel"] == extra

        result = await run(rapp, instance, "unsubscribe", {"channels": [extra]})
        assert result.ok, result.error
        assert extra not in result.outputs["channels"]  # type: ignore[index]
        assert PUBLIC in result.outputs["channels"]  # type: ignore[index]
        await asyncio.sleep(0.3)  # the unsubscribe frame reaches soketi by WebSocket, the trigger by HTTP
        assert (await run(rapp, instance, "trigger", {"channel": extra, "name": "two", "data": {}})).ok
        assert (await run(rapp, instance, "trigger", {"channel": PUBLIC, "name": "three", "data": {}})).ok
        await no_event(events, lambda d: d["event"] == "two", until=lambda d: d["event"] == "three")
    finally:
        events.close()


async def test_subscribe_refuses_bad_names_and_encrypted_without_key(
    rapp: Application, instance: bytes
) -> None:
    result = await run(rapp, instance, "subscribe", {"channel": "bad channel!"})
    assert not result.ok and "channel" in (result.error or "")
    result = await run(rapp, instance, "subscribe", {"channel": "private-encrypted-x"})
    assert not result.ok and "PUSHER_ENCRYPTION_MASTER_KEY_BASE64" in (result.error or "")
