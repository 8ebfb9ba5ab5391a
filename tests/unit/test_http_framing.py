"""How answers are framed and matched to requests: interim 1xx answers skipped, 101 refused, one
answer per request, malformed framing, cut connections and keep-alive loss."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from mesg_pusher.errors import PusherBadAnswer, PusherUnknownOutcome
from tests.support.peer import (
    TRIGGER,
    Connection,
    StartPeer,
    answer,
    execute,
    open_sockets,
    serve_forever,
    settings,
)


def catch_loop_errors(seen: list[dict[str, Any]]) -> None:
    """Collect what reaches the event loop's exception handler (a peer's bytes must never)."""
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: seen.append(context))


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 102 Processing\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
    ],
    ids=["100", "102", "103", "100-then-103"],
)
async def test_interim_answers_are_skipped(peer: StartPeer, interim: bytes) -> None:
    async def script(connection: Connection) -> None:
        while await connection.read_request() is not None:
            await connection.send(interim)
            await asyncio.sleep(0.02)  # the final answer comes later, in a packet of its own
            await connection.send(answer(body=b'{"published":1}'))

    server = await peer(script)
    outcome = await execute("trigger", TRIGGER, settings(server))
    assert outcome.ok, outcome
    assert len(server.requests) == 1


async def test_a_late_final_answer_is_never_taken_for_the_next_request(peer: StartPeer) -> None:
    """A 103, then the 200 a moment later, on a kept-alive connection: each ``channel`` call
    gets its own channel's answer."""

    async def script(connection: Connection) -> None:
        while (request := await connection.read_request()) is not None:
            name = request.split(b" ", 2)[1].split(b"?")[0].rsplit(b"/", 1)[1].decode()
            await connection.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
            await asyncio.sleep(0.05)
            count = {"presence-alpha": 1, "presence-beta": 2}[name]
            await connection.send(answer(body=json.dumps({"occupied": True, "user_count": count}).encode()))

    server = await peer(script)
    env = settings(server)
    pool_inputs = {"info": "user_count"}
    first = await execute("channel", {"channel": "presence-alpha", **pool_inputs}, env)
    second = await execute("channel", {"channel": "presence-beta", **pool_inputs}, env)
    assert first.outputs == {"occupied": True, "user_count": 1}, first
    assert second.outputs == {"occupied": True, "user_count": 2}, second


async def test_switching_protocols_is_refused_clearly_and_nothing_escapes(peer: StartPeer) -> None:
    seen: list[dict[str, Any]] = []
    catch_loop_errors(seen)

    async def script(connection: Connection) -> None:
        if await connection.read_request() is not None:
            await connection.send(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00"
            )
            await connection.wait_closed_by_client()

    server = await peer(script)
    before = open_sockets()
    outcome = await execute("trigger", TRIGGER, settings(server))
    assert outcome.kind is PusherUnknownOutcome, outcome
    assert "the server switched protocols (HTTP 101) instead of answering" in (outcome.error or "")
    read = await execute("channels", {}, settings(server))
    assert read.kind is PusherBadAnswer and "switched protocols" in (read.error or ""), read
    assert (read.error or "").startswith("pusher_bad_answer: "), read
    assert len(server.requests) == 2  # a read is not asked again: the same answer would come
    await asyncio.sleep(0.05)
    assert seen == []
    await server.wait_open(0)
    # None of this test\'s sockets is left; one of an earlier test may close meanwhile.
    assert open_sockets() <= before


async def test_bytes_after_a_complete_answer_end_the_connection(peer: StartPeer) -> None:
    async def script(connection: Connection) -> None:
        while await connection.read_request() is not None:
            index = len(connection.peer.requests)
            stray = answer(body=b'{"stray":true}') if index == 1 else b""
            await connection.send(answer(body=json.dumps({"n": index}).encode()) + stray)

    server = await peer(script)
    env = settings(server)
    first = await execute("channel", {"channel": "a"}, env)
    second = await execute("channel", {"channel": "b"}, env)
    assert first.ok and second.ok, (first, second)
    assert server.accepted == 2  # the connection that brought a stray answer was not reused


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}",
            "malformed answer (HttpParserInvalidStatusError)",
        ),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nContent-", "closed by the server"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", "answer cut short"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", "answer cut short"),
        (b"", "closed by the server"),
    ],
    ids=[
        "status",
        "not-http",
        "chunk-size",
        "two-lengths",
        "length-and-chunked",
        "mid-head",
        "mid-body",
        "mid-chunk",
        "nothing",
    ],
)
async def test_malformed_and_cut_answers_are_an_unknown_outcome(
    peer: StartPeer, reply: bytes, expected: str
) -> None:
    seen: list[dict[str, Any]] = []
    catch_loop_errors(seen)

    async def script(connection: Connection) -> None:
        if await connection.read_request() is not None:
            await connection.send(reply)

    server = await peer(script)
    before = open_sockets()
    outcome = await execute("trigger", TRIGGER, settings(server))
    assert outcome.kind is PusherUnknownOutcome, outcome
    assert f"lost before the answer ({expected}" in (outcome.error or ""), outcome
    assert "may or may not have been published, so it was not retried" in (outcome.error or "")
    assert len(server.requests) == 1
    await server.wait_open(0)
    # None of this test\'s sockets is left; one of an earlier test may close meanwhile.
    assert open_sockets() <= before
    assert seen == []


async def test_a_transfer_coding_we_did_not_ask_for_is_said_so(peer: StartPeer) -> None:
    async def script(connection: Connection) -> None:
        if await connection.read_request() is not None:
            await connection.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00")
            connection.writer.close()

    server = await peer(script)
    outcome = await execute("trigger", TRIGGER, settings(server))
    assert outcome.kind is PusherUnknownOutcome, outcome
    assert "answer in a transfer coding we did not ask for (gzip)" in (outcome.error or ""), outcome
    assert "cut short" not in (outcome.error or "")


async def test_an_answer_that_ends_with_the_connection_is_read_whole(peer: StartPeer) -> None:
    async def script(connection: Connection) -> None:
        if await connection.read_request() is not None:
            await connection.send(
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"channels":{"a":{}}}'
            )
            connection.writer.close()

    server = await peer(script)
    outcome = await execute("channels", {}, settings(server))
    assert outcome.outputs == {"channels": ["a"]}, outcome


async def test_keep_alive_lost_while_idle_costs_nothing(peer: StartPeer) -> None:
    """The server closes a kept-alive connection between requests: the next one goes on a new
    connection and succeeds, the closed one never written to."""

    async def script(connection: Connection) -> None:
        if await connection.read_request() is not None:
            await connection.send(answer())  # keep-alive allowed, then closed

    server = await peer(script)
    env = settings(server)
    for _ in range(3):
        outcome = await execute("trigger", TRIGGER, env)
        assert outcome.ok, outcome
        await server.wait_open(0)
    assert server.accepted == 3 and len(server.requests) == 3


async def test_a_reset_after_the_request_is_an_unknown_outcome_and_a_read_is_retried(peer: StartPeer) -> None:
    async def script(connection: Connection) -> None:
        request = await connection.read_request()
        if request is not None and (request.startswith(b"POST") or len(connection.peer.requests) < 3):
            connection.writer.transport.abort()  # RST
            return
        await connection.send(answer(body=b'{"channels":{}}'))

    server = await peer(script)
    env = settings(server)
    write = await execute("trigger", TRIGGER, env)
    assert write.kind is PusherUnknownOutcome and "lost before the answer" in (write.error or ""), write
    read = await execute("channels", {}, env)
    assert read.outputs == {"channels": []}, read
    assert len(server.requests) == 3


async def test_a_log_of_the_run_holds_no_traceback(peer: StartPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    server = await peer(serve_forever(lambda request, i: upgrade))
    await execute("trigger", TRIGGER, settings(server))
    assert "Traceback" not in caplog.text and "Fatal error" not in caplog.text, caplog.text
