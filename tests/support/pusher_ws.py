"""A minimal Pusher protocol-7 WebSocket subscriber for tests.

Why: end-to-end tests must see what a real browser client would receive, through the same
server; this speaks the wire protocol directly (websockets >= 15: asyncio API, `proxy=`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import deque
from collections.abc import Callable
from ssl import SSLContext
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from mesg_pusher.receive.listener import parse_data

Frame = dict[str, Any]


class PusherError(Exception):
    """The server refused something: pusher:error or pusher:subscription_error."""

    def __init__(self, frame: Frame) -> None:
        super().__init__(f"{frame.get('event')}: {frame.get('data')!r}")
        self.frame = frame
        self.data: Any = frame.get("data")


def _hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_private(key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """`auth` for private-/presence-: key:hex(hmac_sha256(secret, "sid:channel[:data]"))."""
    message = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    return f"{key}:{_hmac_hex(secret, message)}"


def sign_user(key: str, secret: str, socket_id: str, user_data: str) -> str:
    """`auth` for pusher:signin: key:hex(hmac_sha256(secret, "socket_id::user::user_data"))."""
    return f"{key}:{_hmac_hex(secret, f'{socket_id}::user::{user_data}')}"


def _is_internal(event: str) -> bool:
    return event.startswith(("pusher:", "pusher_internal:"))


class PusherWS:
    """`async with PusherWS(url) as ws:` connects and waits for pusher:connection_established.

    Frames that no call has asked for yet are buffered, so awaiting one event never loses
    another; next_event() without `event=` only returns application (non-internal) events.
    """

    def __init__(self, url: str, *, open_timeout: float = 5.0, ssl: SSLContext | None = None) -> None:
        self.url = url
        self.open_timeout = open_timeout
        self.ssl = ssl  # for wss:// with a certificate the system store does not trust
        self.socket_id = ""
        self.activity_timeout: int | None = None
        self._conn: ClientConnection | None = None
        self._buffer: deque[Frame] = deque()

    async def __aenter__(self) -> PusherWS:
        # proxy=None: a loopback test server must never be reached through a *_proxy variable.
        # ssl only when given: websockets picks its default context for wss:// when it is absent.
        extra: dict[str, Any] = {} if self.ssl is None else {"ssl": self.ssl}
        self._conn = await connect(self.url, open_timeout=self.open_timeout, proxy=None, **extra)
        try:
            frame = await self._wait_for(
                lambda f: f["event"] in ("pusher:connection_established", "pusher:error"),
                self.open_timeout,
            )
        except BaseException:
            await self.close()
            raise
        if frame["event"] == "pusher:error":
            raise PusherError(frame)
        self.socket_id = frame["data"]["socket_id"]
        self.activity_timeout = frame["data"].get("activity_timeout")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    @property
    def connection(self) -> ClientConnection:
        """The underlying websockets connection (e.g. for close codes after a disconnect)."""
        if self._conn is None:
            raise RuntimeError("PusherWS is not connected: use `async with`")
        return self._conn

    @property
    def close_code(self) -> int | None:
        """Close code sent by the server (e.g. 4009 after terminate_connections), if closed."""
        return self._conn.close_code if self._conn is not None else None

    # -- sending ---------------------------------------------------------------------------
    async def send(self, event: str, data: Any, channel: str | None = None) -> None:
        """Send one raw frame, e.g. a `client-*` event on a private channel."""
        frame: Frame = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        await self.connection.send(json.dumps(frame))

    async def subscribe(
        self,
        channel: str,
        auth: str | None = None,
        channel_data: str | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """Subscribe and wait for success; returns its data (presence members for presence-)."""
        data: Frame = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        if channel_data is not None:
            data["channel_data"] = channel_data
        await self.send("pusher:subscribe", data)

        def answer(f: Frame) -> bool:
            if f["event"] == "pusher:error":
                return True
            outcomes = ("pusher_internal:subscription_succeeded", "pusher:subscription_error")
            return f.get("channel") == channel and f["event"] in outcomes

        frame = await self._wait_for(answer, timeout)
        if frame["event"] != "pusher_internal:subscription_succeeded":
            raise PusherError(frame)
        return frame.get("data")

    async def unsubscribe(self, channel: str) -> None:
        await self.send("pusher:unsubscribe", {"channel": channel})

    async def signin(self, auth: str, user_data: str, timeout: float = 5.0) -> Any:
        """pusher:signin; needs user authentication on in soketi, which ignores it otherwise."""
        await self.send("pusher:signin", {"auth": auth, "user_data": user_data})
        frame = await self._wait_for(
            lambda f: f["event"] in ("pusher:signin_success", "pusher:error"), timeout
        )
        if frame["event"] == "pusher:error":
            raise PusherError(frame)
        return frame.get("data")

    # -- receiving -------------------------------------------------------------------------
    async def next_event(
        self, channel: str | None = None, event: str | None = None, timeout: float = 5.0
    ) -> Frame:
        """Next event matching the filters, as {channel, event, data[, user_id]}.

        Without `event=`, pusher:/pusher_internal: frames are skipped (left in the buffer).
        """

        def matches(f: Frame) -> bool:
            if channel is not None and f.get("channel") != channel:
                return False
            if event is not None:
                return bool(f["event"] == event)
            return not _is_internal(f["event"])

        frame = await self._wait_for(matches, timeout)
        out: Frame = {
            "channel": frame.get("channel"),
            "event": frame["event"],
            "data": frame.get("data"),
        }
        if "user_id" in frame:
            out["user_id"] = frame["user_id"]
        return out

    async def _wait_for(self, matches: Callable[[Frame], bool], timeout: float) -> Frame:
        """First buffered-or-new frame for which `matches(frame)`; others stay buffered."""
        for f in self._buffer:
            if matches(f):
                self._buffer.remove(f)
                return f
        try:
            async with asyncio.timeout(timeout):
                while True:
                    f = await self._recv()
                    if matches(f):
                        return f
                    self._buffer.append(f)
        except TimeoutError:
            seen = [(f["event"], f.get("channel")) for f in self._buffer]
            msg = f"no matching Pusher frame in {timeout}s; buffered: {seen}"
            raise TimeoutError(msg) from None

    async def _recv(self) -> Frame:
        while True:
            raw = await self.connection.recv()
            frame = json.loads(raw)
            frame["data"] = parse_data(frame.get("data"))
            if frame.get("event") == "pusher:ping":
                await self.send("pusher:pong", {})
                continue
            return dict(frame)
