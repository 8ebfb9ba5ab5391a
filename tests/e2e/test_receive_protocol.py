"""The listener's protocol behaviour and the emitter's queue, against in-process fakes.

soketi cannot be made to stay silent, refuse a pong or close with a chosen code, so a small
protocol-7 server stands in for it here; the end-to-end tests use soketi.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from mesg_pusher.config import build_options
from mesg_pusher.errors import EngineError, EngineRejected
from mesg_pusher.receive.emitter import Emitter
from mesg_pusher.receive.identity import ListenerIdentity
from mesg_pusher.receive.listener import Listener
from mesg_pusher.receive.settings import ReceiveSettings


class FakeEngine:
    """Records emitted events; fails while ``away``; rejects keys in ``refuse``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.away = False
        self.refuse: set[str] = set()

    async def emit(self, key: str, data: dict[str, Any]) -> bytes:
        if self.away:
            raise EngineError("engine unavailable")
        if key in self.refuse:
            raise EngineRejected("data invalid")
        self.events.append((key, dict(data)))
        return b"h"


class FakePusher:
    """Each connection: connection_established, then ``script(conn, frames)``; frames are recorded.

    Subscriptions are confirmed (or refused, for ``refused-`` channels) unless ``confirm`` is
    false: then the script answers them.
    """

    def __init__(self, script: Any, confirm: bool = True) -> None:
        self.script = script
        self.confirm = confirm
        self.connections: list[list[dict[str, Any]]] = []

    async def handler(self, conn: ServerConnection) -> None:
        frames: list[dict[str, Any]] = []
        self.connections.append(frames)
        established = {"socket_id": f"1.{len(self.connections)}", "activity_timeout": 120}
        await conn.send(
            json.dumps({"event": "pusher:connection_established", "data": json.dumps(established)})
        )

        async def read() -> None:
            async for raw in conn:
                frame = json.loads(raw)
                frames.append(frame)
                if frame["event"] == "pusher:subscribe" and self.confirm:
                    name = frame["data"]["channel"]
                    if name.startswith("refused-"):
                        error = {"type": "AuthError", "error": "nope", "status": 401}
                        await conn.send(
                            json.dumps({"event": "pusher:subscription_error", "channel": name, "data": error})
                        )
                    else:
                        await conn.send(
                            json.dumps({"event": "pusher_internal:subscription_succeeded", "channel": name})
                        )

        reader = asyncio.create_task(read())
        try:
            await self.script(conn, frames, len(self.connections))
            await reader
        finally:
            reader.cancel()


async def _listener(
    fake: FakePusher,
    settings: ReceiveSettings | None = None,
    channels: tuple[str, ...] = ("chan",),
    **kwargs: Any,
) -> tuple[Listener, FakeEngine, Any]:
    server = await serve(fake.handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    options = build_options(
        {"appId": "1", "key": "k", "secret": "s3cret", "host": "127.0.0.1", "port": port, "useTLS": False}
    )
    engine = FakeEngine()
    listener = Listener(Emitter(engine), settings or ReceiveSettings(), **kwargs)  # type: ignore[arg-type]
    listener.start(options, channels)
    return listener, engine, server


async def _until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_answers_ping_and_emits_events() -> None:
    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        await _until(lambda: any(f["event"] == "pusher:subscribe" for f in frames))
        await conn.send(json.dumps({"event": "pusher:ping", "data": {}}))
        await conn.send(json.dumps({"event": "ev", "channel": "chan", "data": '{"a": 1}'}))
        await conn.send(json.dumps({"event": "ev", "channel": "other", "data": "x"}))
        await conn.send(json.dumps({"event": "ev2", "channel": "chan", "data": "not json"}))

    fake = FakePusher(script)
    listener, engine, server = await _listener(fake)
    try:
        await _until(lambda: len(engine.events) == 2)
        assert engine.events == [
            ("received", {"channel": "chan", "event": "ev", "data": {"a": 1}}),
            ("received", {"channel": "chan", "event": "ev2", "data": "not json"}),
        ]
        await _until(lambda: any(f["event"] == "pusher:pong" for f in fake.connections[0]))
    finally:
        await listener.stop()
        server.close()


async def test_pings_after_silence_and_reconnects_without_pong() -> None:
    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        await conn.wait_closed()  # never a pong

    fake = FakePusher(script)
    listener, _, server = await _listener(fake, activity_timeout=0.3, pong_timeout=0.3)
    try:
        await _until(lambda: len(fake.connections) >= 2, timeout=10)
        assert any(f["event"] == "pusher:ping" for f in fake.connections[0])
        await _until(lambda: any(f["event"] == "pusher:subscribe" for f in fake.connections[1]))
    finally:
        await listener.stop()
        server.close()


@pytest.mark.parametrize(("code", "reconnects"), [(4201, True), (4100, True), (4001, False)])
async def test_close_codes(code: int, reconnects: bool, caplog: pytest.LogCaptureFixture) -> None:
    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        await _until(lambda: any(f["event"] == "pusher:subscribe" for f in frames))
        if n == 1:
            await conn.close(code, "test close")
        else:
            await conn.wait_closed()

    fake = FakePusher(script)
    listener, _, server = await _listener(fake)
    try:
        if reconnects:
            await _until(lambda: len(fake.connections) >= 2 and bool(fake.connections[1]), timeout=10)
            assert fake.connections[1][0]["data"]["channel"] == "chan"  # resubscribed
        else:
            await _until(lambda: not listener.running)
            assert listener.gave_up is not None and "4001" in listener.gave_up
            assert "not to reconnect" in caplog.text
    finally:
        await listener.stop()
        server.close()


async def test_signed_subscriptions_and_refusals(caplog: pytest.LogCaptureFixture) -> None:
    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        await conn.wait_closed()

    fake = FakePusher(script)
    listener, _, server = await _listener(fake)
    caplog.set_level(logging.INFO)
    try:
        options = listener._options
        assert options is not None
        channels = await listener.subscribe(["private-a", "presence-b"], options)
        assert channels == ["chan", "private-a", "presence-b"]
        frames = {
            f["data"]["channel"]: f["data"] for f in fake.connections[0] if f["event"] == "pusher:subscribe"
        }
        assert frames["private-a"]["auth"].startswith("k:") and "channel_data" not in frames["private-a"]
        # The default identity: one stable member, whatever the process.
        assert json.loads(frames["presence-b"]["channel_data"]) == {"user_id": "mesg-pusher"}
        assert not any(f["event"] == "pusher:signin" for f in fake.connections[0])  # off by default
        with pytest.raises(Exception, match="refused-c"):
            await listener.subscribe(["refused-c"], options)
        assert "refused-c" in caplog.text and "refused-c" not in listener.channels
        assert "s3cret" not in caplog.text
    finally:
        await listener.stop()
        server.close()


async def test_emitter_retries_in_order_drops_oldest_and_logs_rejections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeEngine()
    engine.away = True
    emitter = Emitter(engine, max_pending=3)  # type: ignore[arg-type]
    futures = [emitter.emit("e", {"i": i}) for i in range(5)]
    await asyncio.sleep(0.1)
    engine.away = False
    results = await asyncio.wait_for(asyncio.gather(*futures), 10)
    # All five were queued before the sender ran: the two oldest made room for the newest.
    assert results == ["dropped", "dropped", "accepted", "accepted", "accepted"]
    assert "dropped the oldest" in caplog.text
    assert [d["i"] for _, d in engine.events] == [i for i, r in enumerate(results) if r == "accepted"]
    engine.refuse.add("bad")
    assert await emitter.emit("bad", {}) == "rejected"
    assert "data invalid" in caplog.text
    assert await emitter.close(1) == 0


async def _frame(conn: ServerConnection, event: str, channel: str | None, data: Any) -> None:
    frame = (
        {"event": event, "data": data}
        if channel is None
        else {"event": event, "channel": channel, "data": data}
    )
    await conn.send(json.dumps(frame))


def _hmac(message: str) -> str:
    return hmac.new(b"s3cret", message.encode(), hashlib.sha256).hexdigest()


async def test_presence_frames_become_received_events() -> None:
    members = {
        "presence": {"ids": ["mesg-pusher", 7], "hash": {"mesg-pusher": None, "7": {"n": 1}}, "count": 2}
    }

    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        await _until(lambda: any(f["event"] == "pusher:subscribe" for f in frames))
        room, added = "presence-room", {"user_id": "alice", "user_info": {"name": "Alice"}}
        # Pusher sends data as JSON strings; the members come with the subscription's confirmation.
        await _frame(conn, "pusher_internal:subscription_succeeded", room, json.dumps(members))
        await _frame(conn, "pusher_internal:member_added", room, json.dumps(added))
        await _frame(conn, "pusher_internal:member_removed", room, '{"user_id":"alice"}')
        await _frame(conn, "pusher_internal:member_added", room, "{}")  # no user id: skipped
        await _frame(conn, "pusher_internal:member_added", "presence-other", json.dumps(added))  # not ours
        await _frame(conn, "done", room, "{}")

    fake = FakePusher(script, confirm=False)
    listener, engine, server = await _listener(fake, channels=("presence-room",))
    try:
        await _until(lambda: any(d.get("event") == "done" for _, d in engine.events))
        assert engine.events[:-1] == [
            (
                "received",
                {
                    "channel": "presence-room",
                    "event": "pusher:subscription_succeeded",
                    "data": {
                        "count": 2,
                        "members": [{"user_id": "mesg-pusher"}, {"user_id": "7", "user_info": {"n": 1}}],
                    },
                },
            ),
            (
                "received",
                {
                    "channel": "presence-room",
                    "event": "pusher:member_added",
                    "user_id": "alice",
                    "data": {"user_id": "alice", "user_info": {"name": "Alice"}},
                },
            ),
            (
                "received",
                {
                    "channel": "presence-room",
                    "event": "pusher:member_removed",
                    "user_id": "alice",
                    "data": {"user_id": "alice"},
                },
            ),
        ]
    finally:
        await listener.stop()
        server.close()


async def test_signin_comes_first_signed_and_watchlist_frames_become_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    identity = ListenerIdentity(user_id="svc", user_info={"role": "bot"}, signin=True, watchlist=("a", "b"))
    signin: dict[str, Any] = {}

    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        await _until(lambda: any(f["event"] == "pusher:subscribe" for f in frames))
        signin.update(frames[0])
        user_data = frames[0]["data"]["user_data"]
        await _frame(conn, "pusher:signin_success", None, {"user_data": user_data})
        # Pusher's grouped form, once as an object and once as a JSON string.
        grouped = [{"name": "online", "user_ids": ["a", "b"]}, {"name": "away", "user_ids": ["a"]}]
        await _frame(conn, "pusher_internal:watchlist_events", None, {"events": grouped})
        offline = {"events": [{"name": "offline", "user_ids": ["b"]}]}
        await _frame(conn, "pusher_internal:watchlist_events", None, json.dumps(offline))

    fake = FakePusher(script)
    caplog.set_level(logging.INFO)
    listener, engine, server = await _listener(fake, ReceiveSettings(identity=identity))
    try:
        await _until(lambda: len(engine.events) == 3)
        assert engine.events == [
            ("online", {"user_id": "a"}),
            ("online", {"user_id": "b"}),
            ("offline", {"user_id": "b"}),
        ]
        assert listener.signed_in
        assert signin["event"] == "pusher:signin"  # before any subscription
        user_data = signin["data"]["user_data"]
        assert json.loads(user_data) == {"id": "svc", "user_info": {"role": "bot"}, "watchlist": ["a", "b"]}
        assert signin["data"]["auth"] == f"k:{_hmac(f'1.1::user::{user_data}')}"
        assert "signed in to Pusher as svc (watching 2 users)" in caplog.text
        assert "'name': 'away'" in caplog.text  # an entry of another name is logged, not emitted
        subscribe = next(f for f in fake.connections[0] if f["event"] == "pusher:subscribe")
        assert subscribe["data"] == {"channel": "chan"}
    finally:
        await listener.stop()
        server.close()


async def test_unauthorized_close_without_signin_names_the_variable(caplog: pytest.LogCaptureFixture) -> None:
    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        error = {"code": 4009, "message": "Connection not authorized within timeout."}
        await conn.send(json.dumps({"event": "pusher:error", "data": error}))
        await conn.close(4009, "Connection not authorized within timeout.")

    fake = FakePusher(script)
    listener, _, server = await _listener(fake)
    try:
        await _until(lambda: not listener.running)
        assert listener.gave_up is not None and "set PUSHER_LISTENER_SIGNIN=true" in listener.gave_up
    finally:
        await listener.stop()
        server.close()


async def test_a_signin_left_unanswered_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def script(conn: ServerConnection, frames: list[dict[str, Any]], n: int) -> None:
        await conn.wait_closed()  # subscriptions confirmed, the sign-in ignored (soketi without user auth)

    fake = FakePusher(script)
    identity = ListenerIdentity(signin=True)
    listener, _, server = await _listener(fake, ReceiveSettings(identity=identity), signin_timeout=0.2)
    try:
        await _until(lambda: "no answer to pusher:signin within 0.2 s" in caplog.text)
        assert not listener.signed_in and listener.running
    finally:
        await listener.stop()
        server.close()
