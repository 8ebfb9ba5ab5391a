"""A small Pusher Channels HTTP API test server that checks each request as Pusher documents it.

Why: soketi ignores ``info`` on ``POST /events`` and ``/batch_events`` and has no cache
channels, so the parts of the API it does not implement are tested against this server. It
authenticates every request the way https://pusher.com/docs/channels/library_auth_reference/rest-api/
describes (auth_key, auth_timestamp within 600 s, auth_version 1.0, body_md5 of a POST body,
auth_signature = hex HMAC-SHA256(secret, "METHOD\\nPATH\\nsorted query without auth_signature")),
answers 401 when any of that is wrong, records every request, and answers like Pusher.

Use: ``async with PusherAPIServer(app_id, key, secret) as api:`` then point executions at
``host=api.host, port=api.port, useTLS=false``; ``api.requests`` lists what arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"
MAX_SKEW_SECONDS = 600

# What this server answers for the channel attributes Pusher can return.
SUBSCRIPTION_COUNT = 3
USER_COUNT = 2
CACHE = {"data": '{"last":"event"}', "ttl": 30}


@dataclass
class Recorded:
    """One request as it arrived, and whether its authentication was valid."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    status: int = 0
    problem: str | None = None  # why authentication failed, None if it passed

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def signed(self) -> bool:
        return self.problem is None


def signature(secret: str, method: str, path: str, query: dict[str, str]) -> str:
    """Pusher's auth_signature for a request (auth_signature itself excluded from the string)."""
    params = sorted((k.lower(), v) for k, v in query.items() if k != "auth_signature")
    string = "\n".join([method.upper(), path, "&".join(f"{k}={v}" for k, v in params)])
    return hmac.new(secret.encode(), string.encode(), hashlib.sha256).hexdigest()


def _attributes(info: str | None) -> list[str]:
    return [a.strip() for a in (info or "").split(",") if a.strip()]


def channel_attributes(channel: str, info: str | None) -> dict[str, Any]:
    """The attributes asked for that apply to this channel, as Pusher would return them."""
    attrs: dict[str, Any] = {}
    for name in _attributes(info):
        if name == "subscription_count":
            attrs[name] = SUBSCRIPTION_COUNT
        elif name == "user_count" and channel.startswith("presence-"):
            attrs[name] = USER_COUNT
    return attrs


@dataclass
class PusherAPIServer:
    app_id: str
    key: str
    secret: str
    host: str = HOST
    requests: list[Recorded] = field(default_factory=list)
    # The channels GET /channels reports as occupied.
    occupied: list[str] = field(default_factory=lambda: ["presence-lobby", "presence-room", "public-news"])
    _runner: web.AppRunner | None = None
    _port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("PusherAPIServer is not started")
        return self._port

    def connection_inputs(self, **overrides: Any) -> dict[str, Any]:
        """The connection inputs of a task execution that point at this server."""
        inputs: dict[str, Any] = {
            "appId": self.app_id,
            "key": self.key,
            "secret": self.secret,
            "host": self.host,
            "port": self.port,
            "useTLS": False,
        }
        inputs.update(overrides)
        return inputs

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> PusherAPIServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)  # the OS picks a free port
        await site.start()
        server = site._server  # the only way to learn the bound port
        assert isinstance(server, asyncio.Server)
        self._port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> PusherAPIServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- checking --------------------------------------------------------------------------
    def _auth_problem(self, method: str, path: str, query: dict[str, str], body: bytes) -> str | None:
        if query.get("auth_key") != self.key:
            return "unknown auth_key"
        try:
            timestamp = int(query.get("auth_timestamp", ""))
        except ValueError:
            return "auth_timestamp missing or not an integer"
        if abs(time.time() - timestamp) > MAX_SKEW_SECONDS:
            return "Timestamp expired: given timestamp is more than 600 seconds from now"
        if query.get("auth_version") != "1.0":
            return "auth_version must be 1.0"
        # body_md5 is Pusher's choice of digest, not ours.
        if (method == "POST" or body) and query.get("body_md5") != hashlib.md5(body).hexdigest():
            return "body_md5 does not match the body"
        given = query.get("auth_signature", "")
        expected = signature(self.secret, method, path, query)
        if not hmac.compare_digest(given, expected):
            return "Invalid signature: you should have sent HmacSHA256Hex(string_to_sign, secret)"
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        query = dict(request.query)
        record = Recorded(request.method, request.path, query, body)
        self.requests.append(record)
        record.problem = self._auth_problem(request.method, request.path, query, body)
        if record.problem is not None:
            record.status = 401
            return web.Response(status=401, text=record.problem)
        try:
            status, answer = self._answer(request.method, request.path, query, record.json)
        except (ValueError, KeyError, TypeError) as exc:
            status, answer = 400, {"error": f"bad request: {exc}"}
        record.status = status
        return web.json_response(answer, status=status)

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        prefix = f"/apps/{self.app_id}"
        if not path.startswith(prefix + "/"):
            return 404, {"error": "not found"}
        rest = path[len(prefix) :]
        parts = rest.strip("/").split("/")
        if method == "POST" and rest == "/events":
            channels = body["channels"]
            if "info" not in body:
                return 200, {}
            return 200, {"channels": {c: channel_attributes(c, body["info"]) for c in channels}}
        if method == "POST" and rest == "/batch_events":
            batch = body["batch"]
            if not any("info" in event for event in batch):
                return 200, {}
            return 200, {"batch": [channel_attributes(e["channel"], e.get("info")) for e in batch]}
        if method == "GET" and rest == "/channels":
            prefix_filter = query.get("filter_by_prefix", "")
            info = query.get("info")
            if "user_count" in _attributes(info) and not prefix_filter.startswith("presence-"):
                # As Pusher: user_count needs a presence- prefix filter.
                return 400, {"error": "user_count may only be requested for presence channels"}
            found = [c for c in self.occupied if c.startswith(prefix_filter)]
            return 200, {"channels": {c: channel_attributes(c, info) for c in found}}
        if method == "GET" and len(parts) == 2 and parts[0] == "channels":
            channel = parts[1]
            answer: dict[str, Any] = {"occupied": True, **channel_attributes(channel, query.get("info"))}
            if "cache" in _attributes(query.get("info")):
                answer["cache"] = dict(CACHE)
            return 200, answer
        if (
            method == "POST"
            and len(parts) == 3
            and parts[0] == "users"
            and parts[2] == "terminate_connections"
        ):
            return 200, {}
        return 404, {"error": "not found"}
