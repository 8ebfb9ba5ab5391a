"""A Pusher protocol-7 WebSocket client inside the service: channel events become ``received``.

Why in the service: MESG processes can react to Pusher traffic with no client code of their
own. It behaves as Pusher expects a client to: it answers ``pusher:ping``, pings after the
activity timeout and reconnects when no pong comes, reconnects with backoff after a drop or
a 4200-range close, pauses on a 4100-range close, gives up on a 4000-range close (Pusher
says not to retry), and resubscribes every channel on each new connection.

It is a full client: presence members joining and leaving are ``received`` events too, its
own presence identity is configured (one stable member for every runner), and it can sign
in, which servers with user authentication require and which brings the watchlist's
``online`` and ``offline`` events (Pusher sends those to signed-in connections only).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import nacl.exceptions
import nacl.secret
from pusher.crypto import generate_shared_secret

from mesg_pusher import __version__
from mesg_pusher.backoff import backoff
from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import InputError, PusherSubscriptionRefused
from mesg_pusher.receive.emitter import Emitter
from mesg_pusher.receive.frames import (
    MEMBER_EVENTS,
    SUBSCRIBED,
    member_event,
    parse_data,
    presence_snapshot,
    watchlist_events,
)
from mesg_pusher.receive.identity import channel_auth, signin_auth
from mesg_pusher.receive.settings import ReceiveSettings

if TYPE_CHECKING:
    # websockets (1 MB of RSS) is imported when a listener connects, not by every service.
    from websockets.asyncio.client import ClientConnection

logger = logging.getLogger(__name__)

ACTIVITY_TIMEOUT = 120.0
PONG_TIMEOUT = 30.0
OPEN_TIMEOUT = 10.0
CONFIRM_TIMEOUT = 10.0
SIGNIN_TIMEOUT = 10.0
RECONNECT_CAP = 10.0
PAUSE_4100 = 2.0
STABLE_AFTER = 5.0
ENCRYPTED = "private-encrypted-"
PRESENCE = "presence-"
# Pusher's "unauthorized connection": a server with user authentication closes with it a
# connection that did not sign in within its timeout (soketi: 30 s), or signed in wrongly.
UNAUTHORIZED = 4009

__all__ = ["GiveUp", "Listener", "parse_data"]


class GiveUp(Exception):
    """Pusher closed with a 4000-4099 code: reconnecting would fail the same way."""


class Listener:
    """One WebSocket connection to one Pusher app, subscribed to a changing set of channels."""

    def __init__(
        self,
        emitter: Emitter,
        settings: ReceiveSettings,
        *,
        activity_timeout: float = ACTIVITY_TIMEOUT,
        pong_timeout: float = PONG_TIMEOUT,
        signin_timeout: float = SIGNIN_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._emitter = emitter
        # wss trusts what the HTTP transport trusts: the system store plus PUSHER_CA_BUNDLE.
        self._ssl = ssl_context
        self._settings = settings
        self._activity_timeout = activity_timeout
        self._pong_timeout = pong_timeout
        self._signin_timeout = signin_timeout
        self.identity = settings.identity
        self._options: PusherOptions | None = None
        self._channels: dict[str, asyncio.Future[str | None]] = {}
        self._ws: ClientConnection | None = None
        self._socket_id = ""
        self._task: asyncio.Task[None] | None = None
        self.gave_up: str | None = None
        self.signed_in = False
        self.received = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def channels(self) -> list[str]:
        """The channels listened to (subscribed, or to be subscribed once connected)."""
        return list(self._channels)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, options: PusherOptions, channels: Iterable[str] = ()) -> None:
        """Connect in the background (and keep connecting); returns at once."""
        if self.running:
            return
        self._options = options
        self.gave_up = None
        for name in channels:
            self._add(name)
        url = self._settings.ws_url(options, __version__)
        self._task = asyncio.get_running_loop().create_task(self._run(url), name="pusher-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    # -- run-time changes (the subscribe/unsubscribe tasks) --------------------------------
    async def subscribe(self, names: Iterable[str], options: PusherOptions) -> list[str]:
        """Add channels; waits (a few seconds at most) until Pusher confirmed them.

        Raises ``InputError`` if the listener already listens to another app, and
        ``PusherSubscriptionRefused`` naming each channel Pusher refused.
        """
        names = list(names)
        for name in names:
            if name.startswith(ENCRYPTED) and options.encryption_master_key_base64 is None:
                raise InputError(
                    f"channel {name!r} is encrypted: set PUSHER_ENCRYPTION_MASTER_KEY_BASE64 to listen to it"
                )
        if self.running:
            assert self._options is not None
            if (options.key, options.secret, options.host, options.port) != (
                self._options.key,
                self._options.secret,
                self._options.host,
                self._options.port,
            ):
                raise InputError(
                    f"the listener is connected to app key {self._options.key!r} on {self._options.host}; "
                    "it listens to one app: give no connection inputs, or the same ones"
                )
            for name in names:
                if name not in self._channels:
                    self._add(name)
                    await self._send_subscribe(name)
        else:
            self.start(options, names)
        waiting = [self._channels[name] for name in names if name in self._channels]
        if waiting:
            await asyncio.wait([asyncio.shield(f) for f in waiting], timeout=CONFIRM_TIMEOUT)
        refused = []
        for name in names:
            future = self._channels.get(name)
            if future is None or not future.done():
                if future is not None:
                    logger.warning("subscription to %s not confirmed yet; it stays on the list", name)
                continue
            if future.result() is not None:
                refused.append(f"{name} ({future.result()})")
                self._channels.pop(name, None)
        if refused:
            raise PusherSubscriptionRefused(f"Pusher refused the subscription to {', '.join(refused)}")
        return self.channels

    async def unsubscribe(self, names: Iterable[str]) -> list[str]:
        """Remove channels (unknown ones are ignored)."""
        for name in names:
            future = self._channels.pop(name, None)
            if future is None:
                continue
            if not future.done():
                future.set_result("unsubscribed before it was confirmed")
            if self._ws is not None:
                await self._send(self._ws, "pusher:unsubscribe", {"channel": name})
            logger.info("unsubscribed from %s", name)
        return self.channels

    def _add(self, name: str) -> None:
        if name not in self._channels:
            self._channels[name] = asyncio.get_running_loop().create_future()

    # -- the connection --------------------------------------------------------------------
    async def _run(self, url: str) -> None:
        from websockets.exceptions import WebSocketException

        attempt = 0
        shown = url.split("?", 1)[0]
        while True:
            pause: float | None = None
            began = time.monotonic()
            try:
                code, reason = await self._connection(url)
            except GiveUp as exc:
                self.gave_up = str(exc)
                logger.error("Pusher listener stopped: %s; not reconnecting", exc)
                return
            except (OSError, TimeoutError, WebSocketException) as exc:
                code, reason = None, f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                self.signed_in = False
            if code is not None and 4000 <= code <= 4099:
                self.gave_up = f"Pusher closed the connection with {code} ({reason}){self._hint(code)}"
                logger.error("Pusher listener stopped: %s; Pusher says not to reconnect", self.gave_up)
                return
            if code is not None and 4100 <= code <= 4199:
                pause = PAUSE_4100 * random.uniform(1.0, 1.5)
            if time.monotonic() - began > STABLE_AFTER:
                attempt = 0
            delay = pause if pause is not None else backoff(attempt, cap=RECONNECT_CAP)
            attempt += 1
            logger.warning(
                "Pusher connection to %s lost (%s); reconnecting in %.1f s (attempt %d)",
                shown,
                reason if code is None else f"close {code} {reason}".strip(),
                delay,
                attempt,
            )
            await asyncio.sleep(delay)

    def _connect_options(self, url: str) -> dict[str, Any]:
        """The way the HTTP transport goes: PUSHER_PROXY (never the environment's proxy
        variables) and, over TLS, the CA certificates of PUSHER_CA_BUNDLE."""
        proxy = self._options.proxy if self._options is not None else None
        options: dict[str, Any] = {"open_timeout": OPEN_TIMEOUT, "ping_interval": None, "proxy": proxy}
        if url.startswith("wss://") and self._ssl is not None:
            options["ssl"] = self._ssl
        if proxy is not None and proxy.lower().startswith("https://") and self._ssl is not None:
            options["proxy_ssl"] = self._ssl
        return options

    async def _connection(self, url: str) -> tuple[int | None, str]:
        """One connection's life; returns the close code and reason when it ends."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        unanswered: asyncio.TimerHandle | None = None
        async with connect(url, **self._connect_options(url)) as ws:
            try:
                async with asyncio.timeout(OPEN_TIMEOUT):
                    frame = self._decode(await ws.recv())
                if frame.get("event") == "pusher:error":
                    self._check_error(frame)
                if frame.get("event") != "pusher:connection_established":
                    return None, f"expected pusher:connection_established, got {frame.get('event')!r}"
                established = parse_data(frame.get("data"))
                self._socket_id = str(established.get("socket_id", ""))
                server_timeout = established.get("activity_timeout")
                activity = self._activity_timeout
                if isinstance(server_timeout, int | float) and server_timeout > 0:
                    activity = min(activity, float(server_timeout))
                logger.info(
                    "connected to Pusher (socket %s); %ssubscribing to %d channels",
                    self._socket_id,
                    f"signing in as {self.identity.user_id}, " if self.identity.signin else "",
                    len(self._channels),
                )
                self._ws = ws
                if self.identity.signin:
                    await self._send_signin(ws)  # first: a server may count subscriptions as authorising
                    unanswered = asyncio.get_running_loop().call_later(
                        self._signin_timeout, self._no_signin, ws
                    )
                for name in list(self._channels):
                    if self._channels[name].done():
                        self._channels[name] = asyncio.get_running_loop().create_future()
                    await self._send_subscribe(name)
                await self._read(ws, activity)
            except ConnectionClosed as exc:
                close = exc.rcvd
                return (close.code, close.reason) if close is not None else (None, "connection dropped")
            finally:
                if unanswered is not None:
                    unanswered.cancel()
        return None, "no pong within the timeout"

    def _no_signin(self, ws: ClientConnection) -> None:
        """Pusher always answers a sign-in; a server without user authentication may ignore it."""
        if self._ws is ws and not self.signed_in:
            logger.warning(
                "no answer to pusher:signin within %g s: the server may not have user authentication "
                "on (soketi ignores the sign-in then), so no watchlist event will come",
                self._signin_timeout,
            )

    async def _read(self, ws: ClientConnection, activity: float) -> None:
        while True:
            try:
                async with asyncio.timeout(activity):
                    raw = await ws.recv()
            except TimeoutError:
                await self._send(ws, "pusher:ping", {})
                try:
                    async with asyncio.timeout(self._pong_timeout):
                        raw = await ws.recv()
                except TimeoutError:
                    logger.warning("no answer to pusher:ping within %g s", self._pong_timeout)
                    await ws.close()
                    return
            await self._handle(ws, self._decode(raw))

    @staticmethod
    def _decode(raw: str | bytes) -> dict[str, Any]:
        try:
            frame = json.loads(raw)
        except ValueError:
            return {}
        return frame if isinstance(frame, dict) else {}

    def _check_error(self, frame: dict[str, Any]) -> None:
        data = parse_data(frame.get("data"))
        code = data.get("code") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else data
        if isinstance(code, int) and 4000 <= code <= 4099:
            raise GiveUp(f"Pusher error {code}: {message}{self._hint(code)}")
        logger.warning("pusher:error %s: %s", code, message)

    def _hint(self, code: int) -> str:
        """What to do about a close code that has a usual cause in our settings."""
        if code == UNAUTHORIZED and not self.identity.signin:
            return (
                "; the server wants connections to sign in (user authentication): "
                "set PUSHER_LISTENER_SIGNIN=true"
            )
        return ""

    async def _handle(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        event, channel = frame.get("event"), frame.get("channel")
        if not isinstance(event, str):
            return
        if event == "pusher:ping":
            await self._send(ws, "pusher:pong", {})
        elif event == "pusher:error":
            self._check_error(frame)
        elif event == "pusher_internal:subscription_succeeded" and isinstance(channel, str):
            self._subscribed(channel, frame)
        elif event in MEMBER_EVENTS and isinstance(channel, str) and channel in self._channels:
            self._presence(channel, event, member_event(channel, event, frame.get("data")), frame)
        elif event == "pusher:signin_success":
            self.signed_in = True
            watching = len(self.identity.watchlist)
            logger.info(
                "signed in to Pusher as %s%s",
                self.identity.user_id,
                f" (watching {watching} users)" if watching else "",
            )
        elif event == "pusher_internal:watchlist_events":
            self._watchlist(frame.get("data"))
        elif event == "pusher:subscription_error" and isinstance(channel, str):
            data = parse_data(frame.get("data"))
            detail = data.get("error") or data.get("status") if isinstance(data, dict) else data
            logger.warning("Pusher refused the subscription to %s: %s", channel, detail or data)
            future = self._channels.get(channel)
            if future is not None and not future.done():
                future.set_result(str(detail or data))
        elif event.startswith(("pusher:", "pusher_internal:")):
            return
        elif isinstance(channel, str) and channel in self._channels:
            self._received(channel, event, frame)

    def _subscribed(self, channel: str, frame: dict[str, Any]) -> None:
        """A confirmed subscription; on a presence channel, who is there becomes an event."""
        future = self._channels.get(channel)
        if future is not None and not future.done():
            future.set_result(None)
        logger.info("subscribed to %s", channel)
        if channel.startswith(PRESENCE) and channel in self._channels:
            self._presence(channel, SUBSCRIBED, presence_snapshot(channel, frame.get("data")), frame)

    def _presence(
        self, channel: str, event: str, payload: dict[str, Any] | None, frame: dict[str, Any]
    ) -> None:
        """Emit a presence frame turned into ``received`` data, or say why it could not be."""
        if payload is None:
            logger.warning("%s on %s without the documented data; skipped: %.200s", event, channel, frame)
            return
        self.received += 1
        self._emitter.emit("received", payload)

    def _watchlist(self, data: Any) -> None:
        """One ``online`` or ``offline`` MESG event per user id of a watchlist frame."""
        events, skipped = watchlist_events(data)
        for key, payload in events:
            self._emitter.emit(key, payload)
        if skipped:
            logger.warning("watchlist events not understood, skipped: %s", ", ".join(skipped)[:300])

    def _received(self, channel: str, event: str, frame: dict[str, Any]) -> None:
        data: Any = frame.get("data")
        if channel.startswith(ENCRYPTED):
            data = self._decrypt(channel, data)
            if data is None:
                return
        payload: dict[str, Any] = {"channel": channel, "event": event}
        parsed = parse_data(data)
        if parsed is not None:
            payload["data"] = parsed
        if isinstance(frame.get("user_id"), str):
            payload["user_id"] = frame["user_id"]
        self.received += 1
        self._emitter.emit("received", payload)

    def _decrypt(self, channel: str, data: Any) -> str | None:
        text = self._options.encryption_master_key_base64 if self._options else None
        box = parse_data(data)
        try:
            assert text is not None and isinstance(box, dict)
            key = base64.b64decode(text)
            secret = generate_shared_secret(channel.encode(), key)
            plain = nacl.secret.SecretBox(secret).decrypt(
                base64.b64decode(box["ciphertext"]), base64.b64decode(box["nonce"])
            )
            return plain.decode("utf-8")
        except (
            AssertionError,
            KeyError,
            TypeError,
            binascii.Error,
            nacl.exceptions.CryptoError,
            UnicodeDecodeError,
        ):
            logger.warning("could not decrypt an event on %s (wrong master key?); skipped", channel)
            return None

    async def _send_subscribe(self, name: str) -> None:
        ws, options = self._ws, self._options
        if ws is None or options is None:
            return  # subscribed when the connection is (re)established
        data: dict[str, Any] = {"channel": name}
        if name.startswith(PRESENCE):
            channel_data = self.identity.channel_data()
            data["channel_data"] = channel_data
            data["auth"] = channel_auth(options.key, options.secret, self._socket_id, name, channel_data)
        elif name.startswith("private-"):
            data["auth"] = channel_auth(options.key, options.secret, self._socket_id, name)
        await self._send(ws, "pusher:subscribe", data)

    async def _send_signin(self, ws: ClientConnection) -> None:
        """``pusher:signin`` as the configured user, signed with the app secret."""
        assert self._options is not None
        user_data = self.identity.user_data()
        auth = signin_auth(self._options.key, self._options.secret, self._socket_id, user_data)
        await self._send(ws, "pusher:signin", {"auth": auth, "user_data": user_data})

    @staticmethod
    async def _send(ws: ClientConnection, event: str, data: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):  # the read loop sees the close and reconnects
            await ws.send(json.dumps({"event": event, "data": data}))
