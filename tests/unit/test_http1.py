"""Our HTTP/1.1 client (``http1``) against raw servers: the answer shapes a server may send,
when a connection is reused and when not. Servers are real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mesg_pusher.http1 import ConnectionLost, ConnectionPool, Endpoint
from tests.support.http_server import read_request

Answer = Callable[[bytes, int], bytes | None]  # request, index -> bytes to write (None: close)


class Server:
    """Answers each request with ``answer(request, index)``; notes which connection it came on."""

    def __init__(self, answer: Answer, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections: list[int] = []  # per request: which connection (0, 1, ...)
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        number = len(self.writers) - 1
        try:
            while True:
                try:
                    request = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(request)
                self.connections.append(number)
                reply = self.answer(request, len(self.requests) - 1)
                if reply is None:
                    return
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    return
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []
    started: list[Server] = []

    async def start(answer: Answer, close_after: bool = False) -> Server:
        server = Server(answer, close_after)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        servers.append(listening)
        started.append(server)
        return server

    yield start
    for server in started:
        for writer in server.writers:
            writer.close()
    for listening in servers:
        listening.close()
        await listening.wait_closed()


def pool_for(server: Server, keep_alive: bool = True, keepalive: float = 4.0) -> ConnectionPool:
    endpoint = Endpoint(host="127.0.0.1", port=server.port, tls=None)
    return ConnectionPool(endpoint, keep_alive=keep_alive, keepalive=keepalive, limit=8)


async def post(pool: ConnectionPool, body: bytes = b"{}") -> Any:
    deadline = asyncio.get_running_loop().time() + 2.0
    return await pool.exchange(
        "POST", "/apps/1/events?x=1", {"Content-Type": "application/json"}, body, deadline
    )


async def test_request_is_one_well_formed_http11_message(serve: Any) -> None:
    server = await serve(lambda request, i: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    pool = pool_for(server)
    try:
        response = await post(pool, b'{"a":1}')
    finally:
        await pool.close()
    assert (response.status, response.body) == (200, b"{}")
    assert server.requests == [
        b"POST /apps/1/events?x=1 HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{server.port}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
        + b'{"a":1}'
    ]


async def test_chunked_answer_is_joined(serve: Any) -> None:
    chunked = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n5\r\n":12}\r\n0\r\n\r\n'
    server = await serve(lambda request, i: chunked)
    pool = pool_for(server)
    try:
        first, second = await post(pool), await post(pool)
    finally:
        await pool.close()
    assert first.body == second.body == b'{"a":12}'
    assert server.connections == [0, 0]  # a chunked answer keeps the connection usable


async def test_answer_without_length_ends_with_the_connection(serve: Any) -> None:
    server = await serve(lambda request, i: b'HTTP/1.1 200 OK\r\n\r\n{"until":"close"}', close_after=True)
    pool = pool_for(server)
    try:
        first, second = await post(pool), await post(pool)
    finally:
        await pool.close()
    assert first.body == second.body == b'{"until":"close"}'
    assert server.connections == [0, 1]


async def test_connection_close_from_the_server_is_honoured(serve: Any) -> None:
    server = await serve(
        lambda request, i: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    )
    pool = pool_for(server)
    try:
        for _ in range(3):
            assert (await post(pool)).status == 200
    finally:
        await pool.close()
    assert server.connections == [0, 1, 2]


async def test_connection_closed_by_the_server_while_idle_is_not_reused(serve: Any) -> None:
    # Answers with keep-alive, then closes: the next request must go on a new connection
    # (and succeed), not be written to the closed one.
    server = await serve(
        lambda request, i: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", close_after=True
    )
    pool = pool_for(server)
    try:
        assert (await post(pool)).status == 200
        await asyncio.sleep(0.05)
        assert (await post(pool)).status == 200
    finally:
        await pool.close()
    assert server.connections == [0, 1]


async def test_idle_connection_is_closed_after_keepalive(serve: Any) -> None:
    server = await serve(lambda request, i: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    pool = pool_for(server, keepalive=0.2)
    try:
        await post(pool)
        assert len(pool) == 1
        await asyncio.sleep(0.5)
        assert len(pool) == 0  # closed by the pool, not left to the server
        await post(pool)
    finally:
        await pool.close()
    assert server.connections == [0, 1]


async def test_keep_alive_off_asks_the_server_to_close(serve: Any) -> None:
    server = await serve(lambda request, i: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    pool = pool_for(server, keep_alive=False)
    try:
        await post(pool)
        await post(pool)
    finally:
        await pool.close()
    assert all(b"\r\nConnection: close\r\n" in request for request in server.requests)
    assert server.connections == [0, 1]


async def test_malformed_answer_is_a_lost_connection(serve: Any) -> None:
    server = await serve(lambda request, i: b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}")
    pool = pool_for(server)
    try:
        with pytest.raises(ConnectionLost, match="malformed answer"):
            await post(pool)
        await asyncio.sleep(0.05)
        assert len(pool) == 0  # closed, not kept for another request
    finally:
        await pool.close()


async def test_concurrent_requests_use_separate_connections(serve: Any) -> None:
    server = await serve(lambda request, i: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    pool = pool_for(server)
    try:
        answers = await asyncio.gather(*(post(pool) for _ in range(5)))
        assert [a.status for a in answers] == [200] * 5
        assert len(set(server.connections)) == 5
        await post(pool)  # then one of them is reused
        assert len(set(server.connections)) == 5
    finally:
        await pool.close()
