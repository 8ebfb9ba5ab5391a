"""429 and 503 retried within the execution's timeout, after Retry-After when Pusher gives one.

Against raw asyncio servers on loopback that answer each request as a script says (statuses,
``Retry-After`` in seconds or as an HTTP-date); each task runs as an execution runs it
(``commands.direct.run_task``), so what is asserted is what went on the wire and the
execution's result, error code included. Nothing of ours is patched.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mesg_pusher.commands.direct import TaskFailed, run_task
from mesg_pusher.config import PusherSettings
from mesg_pusher.http1 import ConnectionPool, Endpoint

# (status, extra header lines) for request number i.
Script = Callable[[int], tuple[int, str]]


@dataclass
class Seen:
    at: float
    head: bytes
    body: bytes


@dataclass
class Server:
    port: int
    requests: list[Seen] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        """Each request's method and path (without the signed query)."""
        return [s.head.split(b"\r\n", 1)[0].decode().split("?", 1)[0] for s in self.requests]

    def gaps(self) -> list[float]:
        return [b.at - a.at for a, b in zip(self.requests, self.requests[1:], strict=False)]


def reply(status: int, headers: str = "", body: bytes = b"{}") -> bytes:
    reason = {200: "OK", 429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}
    return (
        f"HTTP/1.1 {status} {reason.get(status, 'X')}\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Script], Awaitable[Server]]]:
    started: list[asyncio.Server] = []

    async def start(script: Script) -> Server:
        found = Server(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    body = await reader.readexactly(length) if length else b""
                    found.requests.append(Seen(time.monotonic(), head, body))
                    status, headers = script(len(found.requests) - 1)
                    error = {"error": "Too many requests.", "code": status}
                    writer.write(
                        reply(status, headers, b"{}" if status == 200 else json.dumps(error).encode())
                    )
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        listening = await asyncio.start_server(handle, "127.0.0.1", 0)
        started.append(listening)
        found.port = listening.sockets[0].getsockname()[1]
        return found

    yield start
    for listening in started:
        listening.close()
        await listening.wait_closed()


def settings(port: int, timeout_ms: int = 10_000) -> PusherSettings:
    return PusherSettings(
        {
            "PUSHER_APP_ID": "1",
            "PUSHER_APP_KEY": "key",
            "PUSHER_APP_SECRET": "secret",
            "PUSHER_HOST": "127.0.0.1",
            "PUSHER_PORT": str(port),
            "PUSHER_USE_TLS": "false",
            "PUSHER_TIMEOUT": str(timeout_ms),
        }
    )


TRIGGER = {"channel": "c", "name": "e", "data": {"n": 1}}


async def failed(task: str, inputs: dict[str, Any], port: int, timeout_ms: int = 10_000) -> str:
    with pytest.raises(TaskFailed) as caught:
        await run_task(task, inputs, settings(port, timeout_ms))
    return str(caught.value)


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# --- a publish refused as not taken is sent again -----------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_a_trigger_refused_without_retry_after_is_sent_again_until_taken(
    server: Callable[[Script], Awaitable[Server]], status: int
) -> None:
    pusher = await server(lambda i: (status, "") if i < 2 else (200, ""))
    assert await run_task("trigger", TRIGGER, settings(pusher.port)) == {"message": "sent"}
    assert pusher.lines == ["POST /apps/1/events"] * 3
    assert len({s.body for s in pusher.requests}) == 1  # the same event each time


async def test_retry_after_in_seconds_is_waited_before_the_retry(
    server: Callable[[Script], Awaitable[Server]],
) -> None:
    pusher = await server(lambda i: (503, "Retry-After: 1\r\n") if i == 0 else (200, ""))
    assert await run_task("trigger", TRIGGER, settings(pusher.port)) == {"message": "sent"}
    [gap] = pusher.gaps()
    assert 0.95 <= gap < 5, gap  # not before Pusher said; well within the timeout


async def test_retry_after_as_an_http_date_is_waited_before_the_retry(
    server: Callable[[Script], Awaitable[Server]],
) -> None:
    # An HTTP-date has whole seconds: two seconds from now is more than one from now.
    date = http_date(2)
    pusher = await server(lambda i: (429, f"Retry-After: {date}\r\n") if i == 0 else (200, ""))
    assert await run_task("trigger", TRIGGER, settings(pusher.port)) == {"message": "sent"}
    [gap] = pusher.gaps()
    assert 0.9 <= gap < 6, gap


async def test_a_read_refused_with_429_is_asked_again_after_retry_after(
    server: Callable[[Script], Awaitable[Server]],
) -> None:
    pusher = await server(lambda i: (429, "Retry-After: 1\r\n") if i == 0 else (200, ""))
    assert await run_task("channels", {}, settings(pusher.port)) == {"channels": []}
    assert pusher.lines == ["GET /apps/1/channels"] * 2
    assert pusher.gaps()[0] >= 0.95


async def test_the_raw_request_tasks_post_is_sent_again_after_a_503(
    server: Callable[[Script], Awaitable[Server]],
) -> None:
    pusher = await server(lambda i: (503, "") if i == 0 else (200, ""))
    inputs = {"method": "POST", "path": "/events", "body": {"name": "e", "channels": ["c"], "data": "x"}}
    assert await run_task("request", inputs, settings(pusher.port)) == {"status": 200, "body": {}}
    assert pusher.lines == ["POST /apps/1/events"] * 2


# --- when the time does not allow it ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(429, "pusher_rate_limited 429"), (503, "pusher_server_error 503")]
)
async def test_retry_after_past_the_deadline_fails_at_once_saying_when(
    server: Callable[[Script], Awaitable[Server]], status: int, code: str
) -> None:
    pusher = await server(lambda i: (status, "Retry-After: 120\r\n"))
    began = time.monotonic()
    error = await failed("trigger", TRIGGER, pusher.port, timeout_ms=10_000)
    assert time.monotonic() - began < 5  # not the 10 s timeout, let alone the 120 s asked for
    assert error.startswith(f"{code}: Pusher answered HTTP {status}: "), error
    assert "Pusher asked to come back in 120 s (at 20" in error, error
    assert "after this call's time" in error and "so it was not tried again" in error, error
    assert len(pusher.requests) == 1


async def test_an_http_date_past_the_deadline_is_quoted_as_the_time_to_come_back(
    server: Callable[[Script], Awaitable[Server]],
) -> None:
    moment = math.floor(time.time()) + 3600
    date = email.utils.formatdate(moment, usegmt=True)
    pusher = await server(lambda i: (429, f"Retry-After: {date}\r\n"))
    error = await failed("channels", {}, pusher.port)
    expected = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
    assert error.startswith("pusher_rate_limited 429: "), error
    assert f"(at {expected})" in error, error
    assert len(pusher.requests) == 1


async def test_refusals_until_the_time_runs_out_end_with_the_code_and_the_count(
    server: Callable[[Script], Awaitable[Server]],
) -> None:
    pusher = await server(lambda i: (429, ""))
    began = time.monotonic()
    error = await failed("trigger", TRIGGER, pusher.port, timeout_ms=1_000)
    assert time.monotonic() - began < 1 + 2  # within the timeout, give or take a loaded machine
    assert error.startswith('pusher_rate_limited 429: Pusher answered HTTP 429: {"error": '), error
    assert error.endswith(f"; tried {len(pusher.requests)} times within 1 s"), error
    assert len(pusher.requests) >= 2


async def test_other_5xx_on_a_publish_are_not_sent_again_even_with_retry_after(
    server: Callable[[Script], Awaitable[Server]],
) -> None:
    # Only 429 and 503 say the request was not taken: after a 502, it may have been.
    pusher = await server(lambda i: (502, "Retry-After: 0\r\n"))
    error = await failed("trigger", TRIGGER, pusher.port)
    assert error.startswith("pusher_server_error 502: Pusher answered HTTP 502: "), error
    assert len(pusher.requests) == 1


# --- what http1 keeps of Retry-After ------------------------------------------------------------


async def exchange_with(answer: bytes) -> Any:
    """One GET to a server that writes ``answer`` whatever it is asked."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    pool = ConnectionPool(Endpoint("127.0.0.1", port, None), keep_alive=False, keepalive=4.0, limit=4)
    try:
        loop = asyncio.get_running_loop()
        return await pool.exchange("GET", "/", {}, b"", loop.time() + 5)
    finally:
        await pool.close()
        listening.close()
        await listening.wait_closed()


async def test_the_answer_carries_its_retry_after() -> None:
    response = await exchange_with(reply(429, "Retry-After: 30\r\n"))
    assert (response.status, response.retry_after) == (429, b"30")


async def test_a_retry_after_longer_than_the_cap_is_not_kept() -> None:
    response = await exchange_with(reply(429, f"Retry-After: {'9' * 65}\r\n"))
    assert (response.status, response.retry_after) == (429, None)


async def test_an_interim_answers_retry_after_is_not_the_answers() -> None:
    answer = b"HTTP/1.1 100 Continue\r\nRetry-After: 30\r\n\r\n" + reply(503)
    response = await exchange_with(answer)
    assert (response.status, response.retry_after) == (503, None)


# --- reading Retry-After ------------------------------------------------------------------------
# (``retry`` is imported in each test, so that the tests above run, and fail on their own,
# against code without it.)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"120", 120.0), (b" 3 ", 3.0), (b"0", 0.0), (b"0.25", 0.25), (b"1" + b"0" * 20, 1e9)],
)
def test_retry_after_in_seconds(value: bytes, seconds: float) -> None:
    from mesg_pusher import retry

    assert retry.retry_after(value) == seconds


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    from mesg_pusher import retry

    now = 1_700_000_000.0
    assert retry.retry_after(email.utils.formatdate(now + 90, usegmt=True).encode(), now=now) == 90
    assert retry.retry_after(email.utils.formatdate(now - 90, usegmt=True).encode(), now=now) == 0


@pytest.mark.parametrize("value", [None, b"", b"-1", b"soon", b"1e3", b"12abc", b"Mon, 99 Foo 2024", b"\xff"])
def test_a_retry_after_not_understood_leaves_the_backoff_to_decide(value: bytes | None) -> None:
    from mesg_pusher import retry

    assert retry.retry_after(value) is None


def test_the_pause_is_what_was_asked_when_longer_than_the_backoff() -> None:
    from mesg_pusher import retry

    assert retry.pause(1, 2.5) == 2.5
    assert 0 < retry.pause(1, 0.0) <= retry.CAP  # "now" is not taken as no pause at all
    assert 0 < retry.pause(30) <= retry.CAP
