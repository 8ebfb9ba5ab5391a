"""What a peer can make us buffer: the answer's head and body are capped; past the cap the call
ends as "answer cut short" and the memory is let go. Peaks are Python allocations (tracemalloc)
over the whole exchange, the peer's own included; bounds are generous, the old figures far above."""

from __future__ import annotations

import asyncio

from mesg_pusher.errors import PusherBadAnswer, PusherHTTPError, PusherUnknownOutcome
from tests.support.peer import (
    TRIGGER,
    Connection,
    StartPeer,
    answer,
    execute,
    open_sockets,
    peak_memory,
    serve_forever,
    settings,
)

MiB = 1024 * 1024
# What a peer streams at most in these tests: enough to show buffering, not to hurt the machine.
FLOOD = 64 * MiB
BOUND = 16 * MiB
# The caps (http1.MAX_HEAD, MAX_BODY) as the messages state them.
MAX_HEAD = 64 * 1024
MAX_BODY = 4 * MiB


def flood(head: bytes, total: int = FLOOD, piece: bytes = b"a" * 65536) -> object:
    """A script answering with ``head``, then ``piece`` repeated up to ``total`` bytes, then silence."""

    async def script(connection: Connection) -> None:
        if await connection.read_request() is None:
            return
        await connection.send(head)
        sent = 0
        while sent < total:
            await connection.send(piece)
            sent += len(piece)
        await connection.wait_closed_by_client()

    return script


async def test_a_huge_content_length_is_refused_before_its_body(peer: StartPeer) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n"
    server = await peer(flood(head))  # type: ignore[arg-type]
    before = open_sockets()
    with peak_memory() as peak:
        outcome = await execute("trigger", {**TRIGGER, "timeout": 10000}, settings(server))
    assert outcome.kind is PusherUnknownOutcome  # it was sent: Pusher may have acted on it
    assert "lost before the answer (answer cut short: its body exceeds 4 MiB)" in (outcome.error or "")
    assert peak[0] < BOUND, peak
    await server.wait_open(0)
    # None of this test\'s sockets is left; one of an earlier test may close meanwhile.
    assert open_sockets() <= before


async def test_a_body_without_length_past_the_cap_is_cut(peer: StartPeer) -> None:
    server = await peer(flood(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"))  # type: ignore[arg-type]
    with peak_memory() as peak:
        outcome = await execute("trigger", TRIGGER, settings(server))
    assert outcome.kind is PusherUnknownOutcome
    assert "answer cut short: its body exceeds 4 MiB" in (outcome.error or "")
    assert peak[0] < BOUND + MAX_BODY, peak
    await server.wait_open(0)


async def test_a_chunked_body_past_the_cap_is_cut_and_a_read_not_asked_again(peer: StartPeer) -> None:
    piece = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = await peer(flood(head, piece=piece))  # type: ignore[arg-type]
    with peak_memory() as peak:
        outcome = await execute("channels", {}, settings(server))
    assert outcome.kind is PusherBadAnswer
    assert outcome.error == (
        f"pusher_bad_answer: answer from Pusher at 127.0.0.1:{server.port} refused (answer cut short: its body exceeds "
        "4 MiB); not asked again, as the same answer would come"
    )
    assert len(server.requests) == 1
    assert peak[0] < BOUND + MAX_BODY, peak


async def test_a_complete_large_non_json_answer_is_refused_without_reading_it(peer: StartPeer) -> None:
    body_size = FLOOD
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {body_size}\r\n\r\n".encode()
    server = await peer(flood(head, total=body_size))  # type: ignore[arg-type]
    with peak_memory() as peak:
        outcome = await execute("trigger", TRIGGER, settings(server))
    assert "answer cut short: its body exceeds 4 MiB" in (outcome.error or ""), outcome
    assert peak[0] < BOUND, peak


async def test_an_endless_header_line_is_cut_at_the_head_cap(peer: StartPeer) -> None:
    server = await peer(flood(b"HTTP/1.1 200 OK\r\nX-Endless: "))  # type: ignore[arg-type]
    with peak_memory() as peak:
        outcome = await execute("trigger", TRIGGER, settings(server))
    assert outcome.kind is PusherUnknownOutcome
    assert "lost before the answer (answer cut short: its head exceeds 64 KiB)" in (outcome.error or "")
    assert peak[0] < BOUND, peak
    # It stopped reading at the cap: the peer could not write its whole flood.
    await server.wait_open(0)


async def test_endless_interim_answers_count_against_the_head_cap(peer: StartPeer) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    server = await peer(flood(interim, total=MAX_HEAD * 4, piece=interim * 100))  # type: ignore[arg-type]
    outcome = await execute("trigger", TRIGGER, settings(server))
    assert "answer cut short: its head exceeds 64 KiB" in (outcome.error or ""), outcome


async def test_json_nested_too_deeply_is_a_clear_error(peer: StartPeer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    server = await peer(serve_forever(lambda request, i: answer(body=deep)))
    outcome = await execute("channels", {}, settings(server))
    assert outcome.kind is PusherHTTPError, outcome
    assert (
        outcome.error
        == "pusher_bad_answer 200: Pusher answered HTTP 200: answer is not usable JSON: nested too deeply"
    )


async def test_a_long_error_body_is_quoted_short(peer: StartPeer) -> None:
    server = await peer(serve_forever(lambda request, i: answer(400, b"x" * 900_000, "Bad Request")))
    outcome = await execute("trigger", TRIGGER, settings(server))
    assert outcome.kind is PusherHTTPError
    assert outcome.error == "pusher_rejected 400: Pusher answered HTTP 400: " + "x" * 500 + "…"


async def test_many_calls_with_capped_answers_hold_no_memory_after(peer: StartPeer) -> None:
    """Memory let go: twenty refused answers in a row peak like one."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    server = await peer(flood(head, total=MAX_BODY * 2))  # type: ignore[arg-type]
    with peak_memory() as peak:
        for _ in range(20):
            outcome = await execute("trigger", TRIGGER, settings(server))
            assert "answer cut short" in (outcome.error or "")
        await asyncio.sleep(0)
    assert peak[0] < BOUND + MAX_BODY, peak
