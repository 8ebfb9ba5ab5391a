"""The SDK transport against real local HTTP servers: answers, errors, retries, signatures.

Requests are built and signed by the real ``pusher`` SDK and sent by our ``Transport`` to
servers started here on 127.0.0.1 (aiohttp.web for well-formed HTTP, raw asyncio servers for
connections that hang or drop). Nothing of ours is patched.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web

from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import (
    InputError,
    PusherHTTPError,
    PusherTimeout,
    PusherUnknownOutcome,
    PusherUnreachable,
)
from mesg_pusher.pusher_client import ClientPool, sdk_errors
from tests.support.http_server import KEY, SECRET, Seen, json_reply, read_request

# --- servers -----------------------------------------------------------------------------------


@dataclass
class RawServer:
    port: int
    requests: list[bytes]


Behaviour = Callable[[bytes, int, asyncio.StreamWriter, asyncio.Event], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Behaviour], Awaitable[RawServer]]]:
    """Start raw TCP servers: each request is read, then ``behaviour`` decides what to do."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []
    stop = asyncio.Event()

    async def start(behaviour: Behaviour) -> RawServer:
        requests: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                while True:
                    try:
                        request = await read_request(reader)
                    except (asyncio.IncompleteReadError, ConnectionError):
                        return
                    requests.append(request)
                    await behaviour(request, len(requests) - 1, writer, stop)
                    if writer.is_closing():
                        return
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return RawServer(port=server.sockets[0].getsockname()[1], requests=requests)

    yield start
    stop.set()
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()
    await asyncio.sleep(0)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- answers -----------------------------------------------------------------------------------


async def test_post_200_json_is_the_value(http_server: Any, make_client: Any) -> None:
    server = await http_server(lambda seen, i: json_reply(200, {"ok": True, "n": 1}))
    client = make_client(server.port)
    assert await client.trigger("ch", "ev", "data") == {"ok": True, "n": 1}
    [seen] = server.requests
    assert (seen.method, seen.path) == ("POST", "/apps/1/events")
    assert json.loads(seen.body) == {"name": "ev", "channels": ["ch"], "data": "data"}
    assert seen.headers["Content-Type"] == "application/json"


async def test_get_200_json_is_the_value(http_server: Any, make_client: Any) -> None:
    answer = {"channels": {"presence-a": {"user_count": 2}}}
    server = await http_server(lambda seen, i: json_reply(200, answer))
    client = make_client(server.port)
    assert await client.channels_info("presence-", ["user_count"]) == answer
    [seen] = server.requests
    assert (seen.method, seen.path, seen.body) == ("GET", "/apps/1/channels", b"")
    query = dict(parse_qsl(seen.query))
    assert query["filter_by_prefix"] == "presence-"
    assert query["info"] == "user_count"


async def test_202_and_empty_body(http_server: Any, make_client: Any) -> None:
    server = await http_server(lambda seen, i: web.Response(status=202 if i == 0 else 200, text=""))
    client = make_client(server.port)
    assert await client.trigger("ch", "ev", "d") == {}
    assert await client.trigger("ch", "ev", "d") == {}
    assert len(server.requests) == 2


async def test_200_that_is_not_json(http_server: Any, make_client: Any) -> None:
    server = await http_server(lambda seen, i: web.Response(status=200, text="<html>hi</html>"))
    client = make_client(server.port)
    with pytest.raises(PusherHTTPError) as caught:
        await client.trigger("ch", "ev", "d")
    assert caught.value.status == 200
    assert str(caught.value) == "Pusher answered HTTP 200: answer is not JSON: <html>hi</html>"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 500])
async def test_error_status_carries_status_and_body(http_server: Any, make_client: Any, status: int) -> None:
    body = f"error body for {status}"
    server = await http_server(lambda seen, i: web.Response(status=status, text=body))
    client = make_client(server.port)
    with pytest.raises(PusherHTTPError) as caught:
        await client.trigger("ch", "ev", "d")
    assert caught.value.status == status
    assert caught.value.body == body
    assert str(caught.value) == f"Pusher answered HTTP {status}: {body}"
    assert len(server.requests) == 1  # a write is never retried


async def test_long_error_body_is_shortened_in_the_message(http_server: Any, make_client: Any) -> None:
    body = "x" * 600
    server = await http_server(lambda seen, i: web.Response(status=400, text=body))
    client = make_client(server.port)
    with pytest.raises(PusherHTTPError) as caught:
        await client.trigger("ch", "ev", "d")
    assert caught.value.body == body
    assert str(caught.value) == "Pusher answered HTTP 400: " + "x" * 500 + "…"


async def test_get_error_4xx_is_not_retried(http_server: Any, make_client: Any) -> None:
    server = await http_server(lambda seen, i: web.Response(status=404, text="no such app"))
    client = make_client(server.port)
    with pytest.raises(PusherHTTPError) as caught:
        await client.channels_info()
    assert caught.value.status == 404
    assert len(server.requests) == 1


# --- retries -----------------------------------------------------------------------------------


async def test_get_retried_after_two_503(http_server: Any, make_client: Any) -> None:
    def reply(seen: Seen, index: int) -> web.Response:
        if index < 2:
            return web.Response(status=503, text="busy")
        return json_reply(200, {"channels": {}})

    server = await http_server(reply)
    client = make_client(server.port, timeout=3.0)
    assert await client.channels_info() == {"channels": {}}
    assert [s.method for s in server.requests] == ["GET", "GET", "GET"]


# A 503 says the request was not taken, so it is retried (tests/unit/test_retry_after.py).
@pytest.mark.parametrize("status", [500, 502, 504])
async def test_post_5xx_is_not_retried(http_server: Any, make_client: Any, status: int) -> None:
    server = await http_server(lambda seen, i: web.Response(status=status, text="oops"))
    client = make_client(server.port, timeout=3.0)
    with pytest.raises(PusherHTTPError) as caught:
        await client.trigger("ch", "ev", "d")
    assert caught.value.status == status
    assert str(caught.value) == f"Pusher answered HTTP {status}: oops"
    assert len(server.requests) == 1


async def test_get_always_503_ends_with_the_503_within_timeout(
    http_server: Any, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the jitter deterministic (its upper bound) so the outcome does not depend on luck.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    server = await http_server(lambda seen, i: web.Response(status=503, text="busy"))
    client = make_client(server.port, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(PusherHTTPError) as caught:
        await client.channels_info()
    assert caught.value.status == 503
    assert time.monotonic() - started < 5 * 1.0  # the 1 s timeout, with a loaded machine's margin


# --- connections that fail ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_connection_refused(make_client: Any, method: str) -> None:
    port = closed_port()
    client = make_client(port, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(PusherUnreachable) as caught:
        await (client.trigger("ch", "ev", "d") if method == "POST" else client.channels_info())
    elapsed = time.monotonic() - started
    assert elapsed < 5 * 0.5  # retried within the 0.5 s timeout, not for ever (margin for load)
    message = str(caught.value)
    assert message.startswith(f"could not connect to Pusher at 127.0.0.1:{port}: connection refused")
    assert "attempts)" in message  # refused connections are retried while time remains


async def test_server_that_never_answers_a_post(raw_server: Any, make_client: Any) -> None:
    async def hang(request: bytes, index: int, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
        await stop.wait()

    server = await raw_server(hang)
    client = make_client(server.port, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(PusherUnknownOutcome) as caught:
        await client.trigger("ch", "ev", "d")
    assert time.monotonic() - started < 5 * 0.5  # the timeout ended it (margin for load)
    assert str(caught.value) == (
        f"no answer from Pusher at 127.0.0.1:{server.port} within 0.5 s; the event may or may "
        "not have been published, so it was not retried"
    )
    assert len(server.requests) == 1
    assert server.requests[0].startswith(b"POST /apps/1/events?")


async def test_server_that_never_answers_a_get(raw_server: Any, make_client: Any) -> None:
    async def hang(request: bytes, index: int, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
        await stop.wait()

    server = await raw_server(hang)
    client = make_client(server.port, timeout=0.4)
    started = time.monotonic()
    with pytest.raises(PusherTimeout) as caught:
        await client.channels_info()
    assert time.monotonic() - started < 5 * 0.4  # the timeout ended it (margin for load)
    assert str(caught.value) == f"no answer from Pusher at 127.0.0.1:{server.port} within 0.4 s"


async def close_without_answer(
    request: bytes, index: int, writer: asyncio.StreamWriter, stop: asyncio.Event
) -> None:
    writer.close()


async def test_connection_closed_after_a_post_is_an_unknown_outcome(
    raw_server: Any, make_client: Any
) -> None:
    server = await raw_server(close_without_answer)
    client = make_client(server.port, timeout=2.0)
    with pytest.raises(PusherUnknownOutcome) as caught:
        await client.trigger("ch", "ev", "d")
    assert str(caught.value) == (
        f"connection to Pusher at 127.0.0.1:{server.port} lost before the answer "
        "(closed by the server); the event may or may not have been published, "
        "so it was not retried"
    )
    await asyncio.sleep(0.05)
    assert len(server.requests) == 1


async def test_connection_closed_after_a_get_is_retried(raw_server: Any, make_client: Any) -> None:
    async def close_twice_then_answer(
        request: bytes, index: int, writer: asyncio.StreamWriter, stop: asyncio.Event
    ) -> None:
        # Two attempts end with the connection closed; the transport tries a read again.
        if index < 2:
            writer.close()
            return
        body = b'{"channels":{"a":{}}}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()

    server = await raw_server(close_twice_then_answer)
    client = make_client(server.port, timeout=2.0)
    assert await client.channels_info() == {"channels": {"a": {}}}
    assert len(server.requests) == 3
    assert all(r.startswith(b"GET /apps/1/channels?") for r in server.requests)


async def test_truncated_answer_to_a_post_is_an_unknown_outcome(raw_server: Any, make_client: Any) -> None:
    async def truncated(
        request: bytes, index: int, writer: asyncio.StreamWriter, stop: asyncio.Event
    ) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial"')
        await writer.drain()
        writer.close()

    server = await raw_server(truncated)
    client = make_client(server.port, timeout=2.0)
    with pytest.raises(PusherUnknownOutcome, match=r"lost before the answer \(answer cut short\)"):
        await client.trigger("ch", "ev", "d")
    assert len(server.requests) == 1


async def test_slow_answer_within_timeout_succeeds(http_server: Any, make_client: Any) -> None:
    async def slow(seen: Seen, index: int) -> web.Response:
        await asyncio.sleep(0.3)
        return json_reply(200, {})

    server = await http_server(slow)
    client = make_client(server.port, timeout=1.5)
    started = time.monotonic()
    assert await client.trigger("ch", "ev", "d") == {}
    assert time.monotonic() - started >= 0.3  # it did wait for the slow answer
    assert len(server.requests) == 1


async def test_keep_alive_reuses_the_connection(raw_server: Any, make_client: Any) -> None:
    peers: list[int] = []

    async def answer(request: bytes, index: int, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
        peers.append(writer.get_extra_info("peername")[1])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    server = await raw_server(answer)
    client = make_client(server.port)
    for _ in range(3):
        assert await client.trigger("ch", "ev", "d") == {}
    assert len(server.requests) == 3
    assert len(set(peers)) == 1


async def test_keep_alive_off_opens_a_connection_per_request(raw_server: Any, make_client: Any) -> None:
    peers: list[int] = []

    async def answer(request: bytes, index: int, writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
        peers.append(writer.get_extra_info("peername")[1])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    server = await raw_server(answer)
    client = make_client(server.port, keep_alive=False)
    for _ in range(2):
        assert await client.trigger("ch", "ev", "d") == {}
    assert len(set(peers)) == 2


# --- signatures --------------------------------------------------------------------------------


def expected_signature(method: str, path: str, query: str, secret: str) -> tuple[str, str]:
    params = dict(parse_qsl(query, keep_blank_values=True))
    signature = params.pop("auth_signature")
    to_sign = "\n".join([method, path, "&".join(f"{k}={v}" for k, v in sorted(params.items()))])
    return signature, hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


async def test_signed_post_verifies_with_the_secret(http_server: Any, make_client: Any) -> None:
    server = await http_server(lambda seen, i: json_reply(200, {}))
    client = make_client(server.port)
    await client.trigger(["a", "b"], "ev", {"x": "é"}, "1.2")
    [seen] = server.requests
    query = dict(parse_qsl(seen.query))
    assert query["auth_key"] == KEY
    assert query["auth_version"] == "1.0"
    assert abs(int(query["auth_timestamp"]) - time.time()) < 5
    assert query["body_md5"] == hashlib.md5(seen.body).hexdigest()
    assert json.loads(seen.body)["socket_id"] == "1.2"
    received, computed = expected_signature("POST", seen.path, seen.query, SECRET)
    assert received == computed
    _, with_other_secret = expected_signature("POST", seen.path, seen.query, "other")
    assert received != with_other_secret


async def test_signed_get_verifies_with_the_secret(http_server: Any, make_client: Any) -> None:
    server = await http_server(lambda seen, i: json_reply(200, {"occupied": False}))
    client = make_client(server.port)
    assert await client.channel_info("presence-x", ["user_count"]) == {"occupied": False}
    [seen] = server.requests
    assert seen.path == "/apps/1/channels/presence-x"
    query = dict(parse_qsl(seen.query))
    assert query["info"] == "user_count"
    assert query["body_md5"] == hashlib.md5(b"").hexdigest()
    received, computed = expected_signature("GET", seen.path, seen.query, SECRET)
    assert received == computed


# --- SDK argument errors and the client pool ---------------------------------------------------


async def test_sdk_argument_errors_become_input_errors(make_client: Any) -> None:
    client = make_client(closed_port())
    with pytest.raises(InputError) as caught, sdk_errors():
        client.trigger([f"c{i}" for i in range(101)], "ev", "d")
    assert str(caught.value) == "Too many channels"
    with pytest.raises(InputError) as caught, sdk_errors():
        client.trigger("bad channel", "ev", "d")
    assert str(caught.value) == "Invalid Channel: bad channel"


def test_sdk_errors_passes_other_errors_through() -> None:
    with pytest.raises(KeyError), sdk_errors():
        raise KeyError("x")
    with sdk_errors():
        pass


async def test_client_pool_reuses_clients_and_closes_connections(http_server: Any) -> None:
    server = await http_server(lambda seen, i: json_reply(200, {}))
    options = PusherOptions(
        app_id="1", key=KEY, secret=SECRET, host="127.0.0.1", use_tls=False, port=server.port, timeout=2.0
    )
    pool = ClientPool()
    try:
        client = pool.get(options)
        same = PusherOptions(
            app_id="1", key=KEY, secret=SECRET, host="127.0.0.1", use_tls=False, port=server.port, timeout=2.0
        )
        assert pool.get(same) is client
        assert len(pool) == 1
        assert await client.trigger("ch", "ev", "d") == {}
        received, computed = expected_signature(
            "POST", server.requests[0].path, server.requests[0].query, SECRET
        )
        assert received == computed
        transport = pool._transports[options]
        connections = transport._pool
        assert connections is not None and len(connections) == 1  # kept alive
    finally:
        await pool.close()
    assert len(connections) == 0 and pool.connections() == 0
    assert len(pool) == 0


async def test_client_pool_evicts_least_recently_used(http_server: Any) -> None:
    server = await http_server(lambda seen, i: json_reply(200, {}))

    def options(app_id: str) -> PusherOptions:
        return PusherOptions(
            app_id=app_id,
            key=KEY,
            secret=SECRET,
            host="127.0.0.1",
            use_tls=False,
            port=server.port,
            timeout=2.0,
        )

    pool = ClientPool(max_clients=2)
    try:
        first = pool.get(options("1"))
        await first.trigger("ch", "ev", "d")
        connections = pool._transports[options("1")]._pool
        pool.get(options("2"))
        pool.get(options("1"))  # "1" is now the most recently used
        pool.get(options("3"))  # evicts "2"
        assert len(pool) == 2
        assert pool.get(options("1")) is first
        assert set(pool._transports) == {options("1"), options("3")}
    finally:
        await pool.close()
    assert connections is not None and len(connections) == 0
