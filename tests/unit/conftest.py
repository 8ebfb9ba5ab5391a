"""Fixtures of the unit tests: real local HTTP servers, raw hostile peers, and SDK clients over
our transport (the helpers are in tests/support/http_server.py and tests/support/peer.py)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pusher
import pytest
from aiohttp import web

from mesg_pusher.config import PusherOptions
from mesg_pusher.transport import SDKBackend, Transport
from tests.support.http_server import KEY, SECRET, HTTPServer, Reply, Seen
from tests.support.peer import Peer, Script, StartPeer


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


# --- hostile peers ---------------------------------------------------------------------------


@pytest.fixture
async def peer() -> AsyncIterator[StartPeer]:
    """Raw peers for the hostile-peer tests: ``await peer(script, host=..., tls=...)``: a started ``Peer``, closed at teardown."""
    started: list[Peer] = []

    async def start(script: Script, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Peer:
        server = await Peer(script, host=host, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()
