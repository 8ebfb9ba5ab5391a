"""Fixtures of the unit tests: real local HTTP servers and SDK clients over our transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pusher
import pytest
from aiohttp import web

from mesg_pusher.config import PusherOptions
from mesg_pusher.transport import SDKBackend, Transport

SECRET = "s3cr3t"
KEY = "k"


@dataclass
class Seen:
    method: str
    path: str
    query: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


Reply = Callable[[Seen, int], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class HTTPServer:
    port: int
    requests: list[Seen]


@pytest.fixture
async def http_server() -> AsyncIterator[Callable[[Reply], Awaitable[HTTPServer]]]:
    """Start aiohttp.web servers whose every request goes to ``reply(seen, index)``."""
    runners: list[web.AppRunner] = []

    async def start(reply: Reply) -> HTTPServer:
        requests: list[Seen] = []

        async def handle(request: web.Request) -> web.StreamResponse:
            seen = Seen(
                request.method,
                request.path,
                request.query_string,
                await request.read(),
                dict(request.headers),
            )
            requests.append(seen)
            result = reply(seen, len(requests) - 1)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[return-value]

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return HTTPServer(port=runner.addresses[0][1], requests=requests)

    yield start
    for runner in runners:
        await runner.cleanup()


def json_reply(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


# --- clients -----------------------------------------------------------------------------------


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., pusher.Pusher]]:
    """SDK clients over our Transport; every transport is closed (and checked) at teardown."""
    transports: list[Transport] = []

    def make(port: int, timeout: float = 2.0, keep_alive: bool = True) -> pusher.Pusher:
        options = PusherOptions(
            app_id="1",
            key=KEY,
            secret=SECRET,
            host="127.0.0.1",
            use_tls=False,
            port=port,
            timeout=timeout,
            keep_alive=keep_alive,
        )
        transport = Transport(options)
        transports.append(transport)
        return pusher.Pusher(
            app_id="1",
            key=KEY,
            secret=SECRET,
            ssl=False,
            host="127.0.0.1",
            port=port,
            timeout=timeout,
            backend=SDKBackend,
            transport=transport,
        )

    yield make
    pools = [t._pool for t in transports if t._pool is not None]
    for transport in transports:
        await transport.close()
    assert all(len(pool) == 0 for pool in pools)  # every connection closed
