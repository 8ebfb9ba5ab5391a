"""Connections a peer can make us hold: the pool's cap, sharing per endpoint, close, eviction,
and the wait for a free connection inside the request's deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time

from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import PusherUnknownOutcome, PusherUnreachable
from mesg_pusher.pusher_client import ClientPool
from tests.support.peer import (
    KEY,
    SECRET,
    Connection,
    StartPeer,
    answer,
    never_answer,
    open_sockets,
    serve_forever,
)


def options(port: int, app_id: str = "1", timeout: float = 3.0) -> PusherOptions:
    return PusherOptions(
        app_id=app_id, key=KEY, secret=SECRET, host="127.0.0.1", use_tls=False, port=port, timeout=timeout
    )


async def test_a_server_that_never_answers_holds_at_most_the_pools_limit(peer: StartPeer) -> None:
    server = await peer(never_answer)
    before = open_sockets()
    pool = ClientPool()  # at most 256 connections per endpoint
    held = pool.get(options(server.port, timeout=3.0))
    # The same endpoint under another app id, with a shorter timeout: the same pool.
    waiting = pool.get(options(server.port, app_id="2", timeout=1.0))
    try:
        first = [asyncio.ensure_future(held.trigger("ch", "ev", str(i))) for i in range(256)]
        while len(server.requests) < 256:
            await asyncio.sleep(0.01)
        rest = await asyncio.gather(
            *(waiting.trigger("ch", "ev", str(i)) for i in range(144)), return_exceptions=True
        )
        assert {type(r) for r in rest} == {PusherUnreachable}, {str(r) for r in rest}
        assert all(str(r).endswith("stayed busy, so the request was not sent") for r in rest)
        results = await asyncio.gather(*first, return_exceptions=True)
        assert {type(r) for r in results} == {PusherUnknownOutcome}
        assert server.most_open == 256 and server.accepted == 256
        assert len(server.requests) == 256  # none of the 144 reached the wire
    finally:
        await pool.close()
    await server.wait_open(0)
    # None of this test\'s sockets is left; one of an earlier test may close meanwhile.
    assert open_sockets() <= before


async def test_two_bursts_share_the_same_connections(peer: StartPeer) -> None:
    server = await peer(serve_forever(lambda request, i: answer()))
    pool = ClientPool()
    client = pool.get(options(server.port))
    try:
        for _ in range(2):
            assert await asyncio.gather(*(client.trigger("ch", "ev", "d") for _ in range(10))) == [{}] * 10
        assert len(server.requests) == 20
        assert server.accepted == 10  # the second burst reused the first one's connections
        assert server.open == 10
    finally:
        await pool.close()
    await server.wait_open(0)  # every one closed, as the server sees it


async def test_option_sets_of_one_endpoint_share_one_pool(peer: StartPeer) -> None:
    server = await peer(serve_forever(lambda request, i: answer()))
    pool = ClientPool()
    try:
        # Another app id and another timeout: other requests, the same host to connect to.
        for opts in (options(server.port, "1"), options(server.port, "2", timeout=1.5)):
            assert await pool.get(opts).trigger("ch", "ev", "d") == {}
        assert server.accepted == 1
        assert [r.split(b"?", 1)[0] for r in server.requests] == [
            b"POST /apps/1/events",
            b"POST /apps/2/events",
        ]
    finally:
        await pool.close()
    await server.wait_open(0)


async def test_close_after_concurrent_calls_leaves_no_socket(peer: StartPeer) -> None:
    server = await peer(serve_forever(lambda request, i: answer()))
    before = open_sockets()
    pool = ClientPool()
    client = pool.get(options(server.port))
    await asyncio.gather(*(client.trigger("ch", "ev", "d") for _ in range(10)))
    await asyncio.gather(*(client.trigger("ch", "ev", "d") for _ in range(10)))
    await pool.close()
    # Closed by close(), not by the idle expiry (KEEPALIVE_SECONDS, 4 s) that would come later.
    await server.wait_open(0, timeout=2.0)
    # None of this test\'s sockets is left; one of an earlier test may close meanwhile.
    assert open_sockets() <= before


async def test_an_evicted_clients_connections_are_closed(peer: StartPeer) -> None:
    first, second = (
        await peer(serve_forever(lambda r, i: answer())),
        await peer(serve_forever(lambda r, i: answer())),
    )
    pool = ClientPool(max_clients=1)
    try:
        await asyncio.gather(*(pool.get(options(first.port)).trigger("ch", "ev", "d") for _ in range(3)))
        assert first.open == 3
        await pool.get(options(second.port)).trigger("ch", "ev", "d")  # evicts the first
        await first.wait_open(0)
        assert second.open == 1
    finally:
        await pool.close()
    await second.wait_open(0)


async def test_a_call_still_running_on_an_evicted_client_ends_and_leaves_nothing(peer: StartPeer) -> None:
    answered = asyncio.Event()

    async def slow(connection: Connection) -> None:
        while await connection.read_request() is not None:
            await answered.wait()
            await connection.send(answer())

    first, second = await peer(slow), await peer(serve_forever(lambda r, i: answer()))
    pool = ClientPool(max_clients=1)
    try:
        running = asyncio.ensure_future(pool.get(options(first.port)).trigger("ch", "ev", "d"))
        while not first.requests:
            await asyncio.sleep(0.01)
        await pool.get(options(second.port)).trigger("ch", "ev", "d")  # evicts the first
        answered.set()
        assert await running == {}  # served to its end
        await first.wait_open(0)  # and its connection closed then, not kept idle
    finally:
        await pool.close()


async def test_waiting_for_a_connection_ends_at_the_deadline_and_sends_nothing(peer: StartPeer) -> None:
    release = asyncio.Event()

    async def held_until_released(connection: Connection) -> None:
        while await connection.read_request() is not None:
            await release.wait()
            await connection.send(answer())

    server = await peer(held_until_released)
    pool = ClientPool()  # at most 256 connections per endpoint
    try:
        busy = pool.get(options(server.port, timeout=10.0))
        first = [asyncio.ensure_future(busy.trigger("ch", "ev", str(i))) for i in range(256)]
        while len(server.requests) < 256:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        late = asyncio.ensure_future(
            pool.get(options(server.port, app_id="2", timeout=0.4)).trigger("ch", "ev", "x")
        )
        done, _ = await asyncio.wait([late], timeout=0.4 + 5.0)
        # It ends at its deadline, while every connection is still busy, not when one frees.
        assert done, "the waiting request outlived its deadline"
        assert time.monotonic() - started >= 0.4 - 0.05
        release.set()
        assert await asyncio.gather(*first) == [{}] * 256
        with contextlib.suppress(PusherUnreachable):
            late.result()
        assert isinstance(late.exception(), PusherUnreachable)
        assert str(late.exception()) == (
            f"could not reach Pusher at 127.0.0.1:{server.port} within 0.4 s: all 256 connections "
            "stayed busy, so the request was not sent"
        )
        await asyncio.sleep(0.05)  # anything written late would have arrived by now
        assert len(server.requests) == 256  # the late one was never written
    finally:
        release.set()
        await pool.close()
