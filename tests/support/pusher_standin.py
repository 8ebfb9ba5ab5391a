"""A Pusher WebSocket server stand-in for what soketi 1.6.1 lacks: watchlist events.

soketi 1.6.1 signs users in (``pusher:signin``) but has no watchlist: it never sends
``pusher_internal:watchlist_events``. This server speaks Pusher's documented protocol-7
frames for the part the watchlist needs, and nothing of ours:

- ``pusher:connection_established`` (``data`` a JSON string, as Pusher sends it), then
  ``pusher:ping`` answered with ``pusher:pong``; public subscriptions are confirmed.
- ``pusher:signin``: ``auth`` must be ``key:HMAC-SHA256(secret, "socket_id::user::user_data")``
  and ``user_data`` a JSON object with a string ``id``, else ``pusher:error`` 4009 and a 4009
  close, as Pusher does; on success ``pusher:signin_success`` with ``{"user_data"}``.
- The watchlist (``user_data.watchlist``): a user is online while signed in on at least one
  connection. At sign-in a connection gets ``online`` for the users of its watchlist already
  online; then every watcher gets ``online`` when a watched user's first connection signs in
  and ``offline`` when the last one closes: ``{"events": [{"name", "user_ids"}]}``.

It runs its own event loop in a thread, so a test may block its loop (starting processes)
while the service talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import threading
from collections import defaultdict
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

HOST = "127.0.0.1"


class PusherStandIn:
    """``with PusherStandIn(key, secret) as server:``; ``signins`` records each accepted user_data."""

    def __init__(self, key: str, secret: str) -> None:
        self.key = key
        self.secret = secret
        self.port = 0
        self.signins: list[dict[str, Any]] = []
        self.refused_signins = 0
        self._ids = itertools.count(1)
        self._online: dict[str, set[ServerConnection]] = defaultdict(set)
        self._watching: dict[ServerConnection, tuple[str, ...]] = {}
        self._user: dict[ServerConnection, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def ws_url(self, key: str | None = None) -> str:
        return f"ws://{HOST}:{self.port}/app/{key or self.key}?protocol=7&client=py&version=1.0"

    # -- lifecycle (the test's thread) -----------------------------------------------------
    def start(self) -> PusherStandIn:
        ready = threading.Event()

        async def main() -> None:
            self._server = await serve(self._handle, HOST, 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            await self._server.wait_closed()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="pusher-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Pusher stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> PusherStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the protocol (the stand-in's thread) ----------------------------------------------
    async def _handle(self, conn: ServerConnection) -> None:
        socket_id = f"{next(self._ids)}.{next(self._ids) * 7919}"
        established = {"socket_id": socket_id, "activity_timeout": 120}
        await _send(conn, {"event": "pusher:connection_established", "data": json.dumps(established)})
        try:
            async for raw in conn:
                frame = json.loads(raw)
                event, data = frame.get("event"), frame.get("data") or {}
                if event == "pusher:ping":
                    await _send(conn, {"event": "pusher:pong", "data": {}})
                elif event == "pusher:subscribe":
                    name = data.get("channel")
                    await _send(conn, {"event": "pusher_internal:subscription_succeeded", "channel": name})
                elif event == "pusher:signin":
                    await self._signin(conn, socket_id, data)
        except ConnectionClosed:
            pass
        finally:
            await self._gone(conn)

    async def _signin(self, conn: ServerConnection, socket_id: str, data: dict[str, Any]) -> None:
        user_data = data.get("user_data")
        expected = hmac.new(
            self.secret.encode(), f"{socket_id}::user::{user_data}".encode(), hashlib.sha256
        ).hexdigest()
        try:
            user = json.loads(user_data) if isinstance(user_data, str) else None
        except ValueError:
            user = None
        valid = data.get("auth") == f"{self.key}:{expected}"
        if not valid or not isinstance(user, dict) or not isinstance(user.get("id"), str):
            self.refused_signins += 1
            await _send(
                conn,
                {"event": "pusher:error", "data": {"code": 4009, "message": "Connection not authorized."}},
            )
            await conn.close(4009, "Connection not authorized.")
            return
        self.signins.append(user)
        user_id = user["id"]
        watchlist = tuple(str(u) for u in user.get("watchlist") or ())
        await _send(conn, {"event": "pusher:signin_success", "data": {"user_data": user_data}})
        came_online = not self._online[user_id]
        self._online[user_id].add(conn)
        self._user[conn] = user_id
        self._watching[conn] = watchlist
        already = [u for u in watchlist if self._online.get(u)]
        if already:
            await _send(conn, _watchlist_frame("online", already))
        if came_online:
            await self._tell_watchers(user_id, "online")

    async def _gone(self, conn: ServerConnection) -> None:
        self._watching.pop(conn, None)
        user_id = self._user.pop(conn, None)
        if user_id is None:
            return
        self._online[user_id].discard(conn)
        if not self._online[user_id]:
            del self._online[user_id]
            await self._tell_watchers(user_id, "offline")

    async def _tell_watchers(self, user_id: str, name: str) -> None:
        for watcher, watchlist in list(self._watching.items()):
            if user_id in watchlist:
                await _send(watcher, _watchlist_frame(name, [user_id]))


def _watchlist_frame(name: str, user_ids: list[str]) -> dict[str, Any]:
    return {
        "event": "pusher_internal:watchlist_events",
        "data": {"events": [{"name": name, "user_ids": user_ids}]},
    }


async def _send(conn: ServerConnection, frame: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionClosed):  # its reader sees the close
        await conn.send(json.dumps(frame))
