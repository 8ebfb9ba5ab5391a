"""``webhook``: soketi's real webhooks reach the service's endpoint and become MESG events."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from mesg_local_engine.app import Application
from tests.support.fixtures import SoketiFactory
from tests.support.pusher_ws import PusherWS, sign_private
from tests.support.receive import channel, next_event, post_webhook, signed
from tests.support.soketi import Soketi, SoketiApp, free_port
from tests.support.stack import Stack, running_stack

TYPES = ["channel_occupied", "channel_vacated", "member_added", "member_removed"]
PORT = free_port()
# Another app whose webhooks reach the same endpoint, and a token of our app's rotation.
OTHER_APP = SoketiApp(app_id="100002", key="other-app-key", secret="other-app-secret")
ROTATED = ("rotated-key", "rotated-secret-value")
WEBHOOK_SECRETS = f"{OTHER_APP.key}:{OTHER_APP.secret}, {ROTATED[0]}:{ROTATED[1]}"


def _soketi(app: SoketiApp | None = None) -> Soketi:
    return Soketi(
        app,
        webhooks=[{"url": f"http://127.0.0.1:{PORT}/webhook", "event_types": TYPES}],
        env={"SOKETI_WEBHOOKS_BATCHING": "true"},
    )


@pytest.fixture(scope="module")
def other_app() -> Iterator[Soketi]:
    """A second soketi, of another app, sending its webhooks to the same endpoint."""
    with _soketi(OTHER_APP) as server:
        yield server


@pytest.fixture(scope="module")
def wstack() -> Iterator[Stack]:
    server = _soketi().start()
    try:
        env = {
            "PUSHER_WEBHOOK_PORT": str(PORT),
            "PUSHER_WEBHOOK_SECRETS": WEBHOOK_SECRETS,
            "LOG_LEVEL": "DEBUG",
        }
        with running_stack(server, env=env) as stack:
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


def _signed_headers(body: str, key: str, secret: str) -> dict[str, str]:
    return {"X-Pusher-Key": key, "X-Pusher-Signature": signed(body, secret)}


async def test_webhooks_of_every_configured_token_are_accepted_and_others_refused(
    wstack: Stack, wapp: Application, other_app: Soketi
) -> None:
    ours, theirs = channel("wh-ours"), channel("wh-theirs")
    instance = await wapp.resolve("com.mesg.pusher")
    events = await wapp.listen_events(instance, key="webhook")
    try:
        # Real webhooks, signed by each soketi with its own app's key and secret.
        for server, name in ((wstack.soketi, ours), (other_app, theirs)):
            async with PusherWS(server.ws_url()) as ws:
                await ws.subscribe(name)
                got = await next_event(events, lambda d, name=name: d.get("channel") == name)
                assert got["name"] == "channel_occupied"
        # The rotated token: accepted as well.
        rotated = channel("wh-rotated")
        body = json.dumps(
            {"time_ms": time.time() * 1000, "events": [{"name": "channel_occupied", "channel": rotated}]}
        )
        assert await _post(body, _signed_headers(body, *ROTATED)) == 200
        assert (await next_event(events, lambda d: d.get("channel") in (rotated, ours, theirs)))[
            "channel"
        ] == rotated

        # A third pair, and known keys with another token's secret: 401, nothing emitted.
        forged = channel("wh-forged")
        body = json.dumps(
            {"time_ms": time.time() * 1000, "events": [{"name": "channel_occupied", "channel": forged}]}
        )
        for key, secret in (
            ("third-key", "third-secret"),
            (OTHER_APP.key, wstack.soketi.app.secret),
            (ROTATED[0], OTHER_APP.secret),
        ):
            assert await _post(body, _signed_headers(body, key, secret)) == 401
        marker = channel("wh-marker")
        body = json.dumps(
            {"time_ms": time.time() * 1000, "events": [{"name": "channel_occupied", "channel": marker}]}
        )
        assert await _post(body, _signed_headers(body, OTHER_APP.key, OTHER_APP.secret)) == 200
        got = await next_event(events, lambda d: d.get("channel") in (forged, marker))
        assert got["channel"] == marker, f"a refused webhook produced {got}"
    finally:
        events.close()
    log = wstack.log()
    for secret in (OTHER_APP.secret, ROTATED[1], wstack.soketi.app.secret):
        assert secret not in log


async def test_unknown_types_events_without_a_channel_and_extra_fields_are_all_emitted(
    wstack: Stack, wapp: Application
) -> None:
    app = wstack.soketi.app
    public, presence = channel("wh-batch"), channel("presence-wh-batch")
    novel = f"novel_{uuid.uuid4().hex[:8]}"
    batch = [
        {"name": "channel_occupied", "channel": public},
        {"name": novel, "channel": public, "level": 3, "tags": ["a", "b"]},
        {"name": f"{novel}_app_wide", "detail": {"connections": 12}},
        {"name": "member_updated", "channel": presence, "user_id": "u1", "user_info": {"name": "Una"}},
        {"name": "subscription_count", "channel": public, "subscription_count": "3", "note": None},
    ]
    time_ms = time.time() * 1000
    body = json.dumps({"time_ms": time_ms, "events": batch})
    instance = await wapp.resolve("com.mesg.pusher")
    events = await wapp.listen_events(instance, key="webhook")
    try:
        assert await _post(body, _signed_headers(body, app.key, app.secret)) == 200
        got = []
        for _ in batch:
            got.append(
                await next_event(
                    events, lambda d: d.get("channel") in (public, presence) or novel in d["name"]
                )
            )
    finally:
        events.close()
    assert got == [
        {"name": "channel_occupied", "channel": public, "time_ms": time_ms},
        {"name": novel, "channel": public, "time_ms": time_ms, "extra": {"level": 3, "tags": ["a", "b"]}},
        {"name": f"{novel}_app_wide", "time_ms": time_ms, "extra": {"detail": {"connections": 12}}},
        {
            "name": "member_updated",
            "channel": presence,
            "user_id": "u1",
            "time_ms": time_ms,
            "extra": {"user_info": {"name": "Una"}},
        },
        # A known field of another type is kept as sent, under extra.
        {
            "name": "subscription_count",
            "channel": public,
            "time_ms": time_ms,
            "extra": {"subscription_count": "3", "note": None},
        },
    ]


async def test_bodies_not_of_pushers_shape_are_400_with_the_reason(wstack: Stack) -> None:
    app = wstack.soketi.app
    now = time.time() * 1000
    cases: list[tuple[object, str]] = [
        ({"time_ms": now - 301_000, "events": []}, "time_ms is more than 5 minutes from this server's clock"),
        ({"time_ms": now + 301_000, "events": []}, "time_ms is more than 5 minutes"),
        ({"time_ms": "now", "events": []}, "time_ms is not a number"),
        ({"events": []}, "time_ms is not a number"),
        ({"time_ms": now}, "events is not a list"),
        ([{"name": "x", "channel": "c"}], "body is not a JSON object"),
        ({"time_ms": now, "events": [{"name": "x"}, "x"]}, "events[1] is not an object with a name"),
        ({"time_ms": now, "events": [{"channel": "c"}]}, "events[0] is not an object with a name"),
        # Python's json extensions, which no JSON sender writes: NaN would pass any time window.
        ({"time_ms": math.nan, "events": [{"name": "x", "channel": "c"}]}, "body is not JSON"),
        ({"time_ms": now, "events": [{"name": "x", "n": math.inf}]}, "body is not JSON"),
    ]
    async with aiohttp.ClientSession() as session:
        for body, reason in cases:
            text = json.dumps(body)
            headers = _signed_headers(text, app.key, app.secret)
            async with session.post(f"http://127.0.0.1:{PORT}/", data=text, headers=headers) as response:
                assert (response.status, reason in await response.text()) == (400, True), (body, reason)


async def test_with_webhook_secrets_the_endpoint_runs_without_usable_app_settings(
    soketi_factory: SoketiFactory,
) -> None:
    server = soketi_factory()
    port = free_port()
    env = {"PUSHER_WEBHOOK_PORT": str(port), "PUSHER_WEBHOOK_SECRETS": f"{ROTATED[0]}:{ROTATED[1]}"}
    # No host: the app's own settings do not resolve. One process: the port is the host's.
    with running_stack(server, env=env, service_env={"PUSHER_HOST": ""}, generation="g1") as stack:
        stack.service.wait_for_log("webhook endpoint listening")
        assert "only the keys of PUSHER_WEBHOOK_SECRETS are accepted" in stack.service.log()
        body = json.dumps(
            {"time_ms": time.time() * 1000, "events": [{"name": "channel_occupied", "channel": "x"}]}
        )
        assert await post_webhook(port, body, _signed_headers(body, *ROTATED)) == 200
        assert await post_webhook(port, body, _signed_headers(body, server.app.key, server.app.secret)) == 401
