"""``webhook``: soketi's real webhooks reach the service's endpoint and become MESG events."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from mesg_local_engine.app import Application
from tests.receive.helpers import channel, next_event, post_webhook, signed
from tests.support.fixtures import SoketiFactory
from tests.support.pusher_ws import PusherWS, sign_private
from tests.support.soketi import Soketi, free_port
from tests.support.stack import Stack, running_stack

TYPES = ["channel_occupied", "channel_vacated", "member_added", "member_removed"]
PORT = free_port()


@pytest.fixture(scope="module")
def wstack() -> Iterator[Stack]:
    server = Soketi(
        webhooks=[{"url": f"http://127.0.0.1:{PORT}/webhook", "event_types": TYPES}],
        env={"SOKETI_WEBHOOKS_BATCHING": "true"},
    ).start()
    try:
        with running_stack(server, env={"PUSHER_WEBHOOK_PORT": str(PORT)}) as stack:
            stack.service.wait_for_log("webhook endpoint listening")
            yield stack
    finally:
        server.stop()


@pytest.fixture
async def wapp(wstack: Stack) -> AsyncIterator[Application]:
    async with Application.connect(wstack.engine.endpoint) as application:
        yield application


async def _post(body: bytes | str, headers: dict[str, str]) -> int:
    return await post_webhook(PORT, body, headers)


async def test_soketi_webhooks_become_events_in_order(wstack: Stack, wapp: Application) -> None:
    app = wstack.soketi.app
    public, presence = channel("wh"), channel("presence-wh")
    instance = await wapp.resolve("com.mesg.pusher")
    events = await wapp.listen_events(instance, key="webhook")
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        async with PusherWS(wstack.soketi.ws_url()) as ws:
            await ws.subscribe(public)
            member = json.dumps({"user_id": "bob"})
            await ws.subscribe(
                presence,
                auth=sign_private(app.key, app.secret, ws.socket_id, presence, member),
                channel_data=member,
            )
        async with asyncio.timeout(20):
            while len(seen[public]) < 2 or len(seen[presence]) < 4:
                data = await next_event(events, lambda d: d["channel"] in (public, presence))
                seen[data["channel"]].append(data)
    finally:
        events.close()
    assert [e["name"] for e in seen[public]] == ["channel_occupied", "channel_vacated"]
    names = [e["name"] for e in seen[presence]]
    # soketi sends channel_vacated before member_removed when the last member leaves.
    assert names[:2] == ["channel_occupied", "member_added"]
    assert sorted(names[2:]) == ["channel_vacated", "member_removed"]
    for event in seen[presence]:
        assert isinstance(event["time_ms"], int | float) and event["time_ms"] > 0
        if event["name"].startswith("member_"):
            assert event["user_id"] == "bob"


async def test_bad_requests_are_refused_and_emit_nothing(wstack: Stack, wapp: Application) -> None:
    app = wstack.soketi.app
    instance = await wapp.resolve("com.mesg.pusher")
    events = await wapp.listen_events(instance, key="webhook")
    try:
        sneaky = channel("sneaky")
        body = json.dumps(
            {"time_ms": time.time() * 1000, "events": [{"name": "channel_occupied", "channel": sneaky}]}
        )
        good = {"X-Pusher-Key": app.key, "X-Pusher-Signature": signed(body, app.secret)}
        assert await _post(body, {**good, "X-Pusher-Signature": signed(body, "wrong-secret")}) == 401
        assert await _post(body, {**good, "X-Pusher-Key": "other-key"}) == 401
        assert await _post(body, {"X-Pusher-Key": app.key}) == 401
        for bad in ("not json", json.dumps({"time_ms": time.time() * 1000, "events": "x"})):
            assert (
                await _post(bad, {"X-Pusher-Key": app.key, "X-Pusher-Signature": signed(bad, app.secret)})
                == 400
            )
        big = json.dumps({"time_ms": time.time() * 1000, "events": [], "pad": "x" * 300_000})
        assert (
            await _post(big, {"X-Pusher-Key": app.key, "X-Pusher-Signature": signed(big, app.secret)}) == 413
        )

        marker = channel("marker")
        body = json.dumps(
            {
                "time_ms": time.time() * 1000,
                "events": [
                    {
                        "name": "client_event",
                        "channel": marker,
                        "event": "client-x",
                        "data": '{"a":1}',
                        "socket_id": "1.2",
                        "user_id": "u1",
                    },
                    {"name": "subscription_count", "channel": marker, "subscription_count": 3},
                ],
            }
        )
        assert (
            await _post(body, {"X-Pusher-Key": app.key, "X-Pusher-Signature": signed(body, app.secret)})
            == 200
        )
        first = await next_event(events, lambda d: True)
        assert first["channel"] == marker, f"a refused webhook produced {first}"
        assert first["event"] == "client-x" and first["data"] == {"a": 1} and first["socket_id"] == "1.2"
        assert first["user_id"] == "u1"
        second = await next_event(events, lambda d: True)
        assert second["name"] == "subscription_count" and second["subscription_count"] == 3
    finally:
        events.close()


async def test_webhook_answers_503_while_the_engine_is_away(soketi_factory: SoketiFactory) -> None:
    server = soketi_factory()
    port = free_port()
    with running_stack(server, env={"PUSHER_WEBHOOK_PORT": str(port)}) as stack:
        stack.service.wait_for_log("webhook endpoint listening")
        stack.engine.stop()
        body = json.dumps(
            {"time_ms": time.time() * 1000, "events": [{"name": "channel_occupied", "channel": "x"}]}
        )
        headers = {"X-Pusher-Key": server.app.key, "X-Pusher-Signature": signed(body, server.app.secret)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as response,
        ):
            assert response.status == 503
