"""``received``: the service listens to channels over Pusher's WebSocket protocol (soketi here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from mesg_local_engine.app import Application
from mesg_pusher.definition import check_task_outputs
from tests.support.pusher_ws import PusherWS, sign_private
from tests.support.receive import DEFINITION, channel, next_event, no_event, run
from tests.support.soketi import Soketi
from tests.support.stack import Stack, running_stack

PUBLIC, PRIVATE, PRESENCE = channel(), channel("private-recv"), channel("presence-recv")
LISTENER = {"PUSHER_LISTENER_USER_ID": "mesg-listener", "PUSHER_LISTENER_USER_INFO": '{"name": "MESG"}'}


@pytest.fixture(scope="module")
def rstack(soketi: Soketi) -> Iterator[Stack]:
    env = {"PUSHER_SUBSCRIBE": f"{PUBLIC}, {PRIVATE},{PRESENCE}", **LISTENER}
    with running_stack(soketi, env=env) as stack:
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


async def test_presence_members_are_received_and_the_listener_is_the_configured_user(
    rstack: Stack, rapp: Application, instance: bytes
) -> None:
    app = rstack.soketi.app
    events = await rapp.listen_events(instance, key="received")
    try:
        async with PusherWS(rstack.soketi.ws_url()) as ws:
            member = json.dumps({"user_id": "alice", "user_info": {"name": "Alice"}})
            joined = await ws.subscribe(
                PRESENCE,
                auth=sign_private(app.key, app.secret, ws.socket_id, PRESENCE, member),
                channel_data=member,
            )
            # Who alice finds there: the listener, as configured.
            assert joined["presence"]["hash"]["mesg-listener"] == {"name": "MESG"}
            got = await next_event(events, lambda d: d["event"] == "pusher:member_added")
            assert got == {
                "channel": PRESENCE,
                "event": "pusher:member_added",
                "user_id": "alice",
                "data": {"user_id": "alice", "user_info": {"name": "Alice"}},
            }
        got = await next_event(events, lambda d: d["event"] == "pusher:member_removed")
        assert got == {
            "channel": PRESENCE,
            "event": "pusher:member_removed",
            "user_id": "alice",
            "data": {"user_id": "alice"},
        }
    finally:
        events.close()
    users = await run(rapp, instance, "users", {"channel": PRESENCE})
    assert users.ok, users.error
    assert [u["id"] for u in users.outputs["users"]] == ["mesg-listener"]  # type: ignore[index]


async def test_subscribing_to_a_presence_channel_emits_who_is_there(
    rstack: Stack, rapp: Application, instance: bytes
) -> None:
    app = rstack.soketi.app
    room = channel("presence-room")
    events = await rapp.listen_events(instance, key="received")
    try:
        async with PusherWS(rstack.soketi.ws_url()) as ws:
            member = json.dumps({"user_id": "bob"})
            await ws.subscribe(
                room, auth=sign_private(app.key, app.secret, ws.socket_id, room, member), channel_data=member
            )
            result = await run(rapp, instance, "subscribe", {"channel": room})
            assert result.ok, result.error
            got = await next_event(
                events, lambda d: d["channel"] == room and d["event"] == "pusher:subscription_succeeded"
            )
        members = sorted(got["data"]["members"], key=lambda m: m["user_id"])
        assert members == [{"user_id": "bob"}, {"user_id": "mesg-listener", "user_info": {"name": "MESG"}}]
        assert got["data"]["count"] == 2 and "user_id" not in got
    finally:
        events.close()
        await run(rapp, instance, "unsubscribe", {"channel": room})


@pytest.mark.parametrize("generation", ["g2", "g3"])
async def test_two_runners_are_one_presence_member(soketi: Soketi, generation: str) -> None:
    room = channel("presence-runners")
    with running_stack(soketi, env={"PUSHER_SUBSCRIBE": room}, generation=generation, runners=2) as stack:
        for service in stack.services:
            service.wait_for_log(f"subscribed to {room}")
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            info = await run(app, instance, "channel", {"channel": room, "info": "user_count"})
            users = await run(app, instance, "users", {"channel": room})
    assert info.ok and users.ok, (info.error, users.error)
    assert info.outputs["user_count"] == 1  # type: ignore[index]
    assert users.outputs["users"] == [{"id": "mesg-pusher"}]  # type: ignore[index]
