"""Every execution error starts with a stable code, produced where the failure is known.

(New names are reached through ``errors.``, so that against code without them each test fails
on its own.) The Pusher codes are asserted on tasks run as an execution runs them (``commands.direct.run_task``:
the engine's input checks, the handler, the real transport) against raw HTTP servers on loopback;
the service's own where they are made (the worker, the result encoding, the listener against a
protocol-7 stand-in). ``docs/errors.md`` is checked to list exactly these codes.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pusher as sdk
import pytest
from websockets.asyncio.server import ServerConnection, serve

from mesg_pusher import errors
from mesg_pusher._proto.mesg.api import execution_pb2
from mesg_pusher.commands.direct import TaskFailed, run_task
from mesg_pusher.config import PusherOptions, PusherSettings, build_options
from mesg_pusher.engine.base import MAX_UPDATE_BYTES, fill_result
from mesg_pusher.pusher_client import events_request
from mesg_pusher.receive.emitter import Emitter
from mesg_pusher.receive.listener import Listener
from mesg_pusher.receive.settings import ReceiveSettings
from mesg_pusher.transport import Transport
from mesg_pusher.worker import STOPPING

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"

# What a peer does with each request: an answer to write, or None to stay silent.
Answer = Callable[[bytes], bytes | None]


def answer(status: int, body: str, reason: str = "X") -> bytes:
    data = body.encode()
    return f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data


@pytest.fixture
async def pusher() -> AsyncIterator[Callable[[Answer], Awaitable[int]]]:
    """Raw servers: each request read whole, then answered as ``answer(request)`` says (the
    connection closed after an answer that says ``Connection: close``)."""
    servers: list[asyncio.Server] = []
    silent = asyncio.Event()

    async def start(script: Answer) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length: *(\d+)", head)
                    body = await reader.readexactly(int(length.group(1))) if length else b""
                    reply = script(head + body)
                    if reply is None:
                        await silent.wait()
                        return
                    writer.write(reply)
                    await writer.drain()
                    if b"connection: close" in reply.lower():
                        return
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    silent.set()
    for server in servers:
        server.close()
        await server.wait_closed()


def env(port: int, **extra: str) -> dict[str, str]:
    return {
        "PUSHER_APP_ID": "1",
        "PUSHER_APP_KEY": "key",
        "PUSHER_APP_SECRET": "secret",
        "PUSHER_HOST": "127.0.0.1",
        "PUSHER_PORT": str(port),
        "PUSHER_USE_TLS": "false",
        "PUSHER_TIMEOUT": "1500",
        **extra,
    }


TRIGGER = {"channel": "c", "name": "e", "data": {"n": 1}}


async def failed(task: str, inputs: dict[str, Any], environment: dict[str, str]) -> str:
    with pytest.raises(TaskFailed) as caught:
        await run_task(task, inputs, PusherSettings(environment))
    assert str(caught.value) == f"{caught.value.code}: {caught.value.message}"
    return str(caught.value)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the code of an HTTP status -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "pusher_rejected 400"),
        (401, "pusher_rejected 401"),
        (404, "pusher_rejected 404"),
        (413, "pusher_rejected 413"),
        (403, "pusher_over_quota 403"),
        (429, "pusher_rate_limited 429"),
        (500, "pusher_server_error 500"),
        (503, "pusher_server_error 503"),
        (200, "pusher_bad_answer 200"),
        (204, "pusher_bad_answer 204"),
        (302, "pusher_bad_answer 302"),
    ],
)
def test_an_http_errors_code_follows_from_its_status(status: int, code: str) -> None:
    assert errors.http_code(status) == code
    assert errors.PusherHTTPError(status, "body").code == code


def test_the_error_text_is_the_code_then_the_message() -> None:
    assert errors.error_text("invalid_input", "input 'x' is wrong") == "invalid_input: input 'x' is wrong"
    refusal = errors.PusherHTTPError(413, '{"error": "too big"}', note="not tried again")
    assert str(refusal) == 'Pusher answered HTTP 413: {"error": "too big"}; not tried again'
    assert refusal.code == "pusher_rejected 413"


# --- Pusher's answers, as an execution reports them ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "pusher_rejected 400"),
        (401, "pusher_rejected 401"),
        (404, "pusher_rejected 404"),
        (413, "pusher_rejected 413"),
        (403, "pusher_over_quota 403"),
        (500, "pusher_server_error 500"),
    ],
)
@pytest.mark.parametrize("task", ["trigger", "channels"])
async def test_a_refusal_is_reported_with_its_code_then_pushers_status_and_body(
    pusher: Callable[[Answer], Awaitable[int]], status: int, code: str, task: str
) -> None:
    port = await pusher(lambda request: answer(status, '{"error": "no"}'))
    error = await failed(task, TRIGGER if task == "trigger" else {}, env(port))
    expected = f'{code}: Pusher answered HTTP {status}: {{"error": "no"}}'
    if status == 500 and task == "channels":  # a read is asked again on a 5xx while time allows
        assert error.startswith(expected + "; tried "), error
    else:
        assert error == expected


async def test_a_2xx_that_cannot_be_used_is_a_bad_answer(pusher: Callable[[Answer], Awaitable[int]]) -> None:
    port = await pusher(lambda request: answer(200, "<html>not the API</html>"))
    error = await failed("trigger", TRIGGER, env(port))
    assert (
        error
        == "pusher_bad_answer 200: Pusher answered HTTP 200: answer is not JSON: <html>not the API</html>"
    )
    shape = await pusher(lambda request: answer(200, '{"channels": []}'))
    error = await failed("channels", {}, env(shape))
    assert error.startswith(
        "pusher_bad_answer 200: Pusher answered HTTP 200: unexpected answer to channels"
    ), error


async def test_an_answer_refused_on_a_read_is_a_bad_answer_without_status(
    pusher: Callable[[Answer], Awaitable[int]],
) -> None:
    port = await pusher(lambda request: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
    error = await failed("channels", {}, env(port))
    assert error.startswith(f"pusher_bad_answer: answer from Pusher at 127.0.0.1:{port} refused ("), error


async def test_nothing_reaching_pusher_is_unreachable() -> None:
    port = closed_port()
    for task, inputs in (("trigger", TRIGGER), ("channels", {})):
        error = await failed(task, inputs, env(port, PUSHER_TIMEOUT="500"))
        assert error.startswith(f"pusher_unreachable: could not connect to Pusher at 127.0.0.1:{port}: "), (
            error
        )


async def test_a_read_with_no_answer_in_time_is_a_timeout(pusher: Callable[[Answer], Awaitable[int]]) -> None:
    port = await pusher(lambda request: None)
    error = await failed("channels", {}, env(port, PUSHER_TIMEOUT="500"))
    assert error == f"pusher_timeout: no answer from Pusher at 127.0.0.1:{port} within 0.5 s"


async def test_a_read_whose_connections_are_all_lost_is_a_timeout(
    pusher: Callable[[Answer], Awaitable[int]],
) -> None:
    cut = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\n{"  # and closed
    port = await pusher(lambda request: cut)
    error = await failed("channels", {}, env(port, PUSHER_TIMEOUT="500"))
    assert error.startswith(
        f"pusher_timeout: connection to Pusher at 127.0.0.1:{port} lost before the answer"
    ), error


async def test_a_publish_with_no_answer_is_an_unknown_outcome(
    pusher: Callable[[Answer], Awaitable[int]],
) -> None:
    port = await pusher(lambda request: None)
    error = await failed("trigger", TRIGGER, env(port, PUSHER_TIMEOUT="500"))
    assert error == (
        f"pusher_unknown_outcome: no answer from Pusher at 127.0.0.1:{port} within 0.5 s; the event "
        "may or may not have been published, so it was not retried"
    )


async def test_bad_inputs_settings_and_task_names_have_their_codes() -> None:
    port = closed_port()
    error = await failed("trigger", {**TRIGGER, "channel": "not a channel!"}, env(port))
    assert error.startswith("invalid_input: input 'channel' "), error
    error = await failed("trigger", TRIGGER, env(port, PUSHER_APP_ID="one"))
    assert error.startswith("invalid_config: input 'appId' or variable PUSHER_APP_ID must be digits"), error
    error = await failed("nope", {}, env(port))
    assert error.startswith("unknown_task: unknown task 'nope'; this service has: "), error


# --- the service's own --------------------------------------------------------------------------


async def test_a_request_not_sent_because_the_service_stops_is_stopping(
    pusher: Callable[[Answer], Awaitable[int]],
) -> None:
    port = await pusher(lambda request: answer(200, "{}"))
    options = PusherOptions(app_id="1", key="k", secret="s", host="127.0.0.1", use_tls=False, port=port)
    transport = Transport(options)
    client = sdk.Pusher(app_id="1", key="k", secret="s", host="127.0.0.1", port=port, ssl=False)
    request = events_request(client, {"name": "e", "channels": ["c"], "data": "x"})
    assert await transport.send(request) == {}
    assert transport._pool is not None
    await transport._pool.close()  # what ClientPool.close() does at shutdown
    with pytest.raises(errors.ShuttingDown) as caught:
        await transport.send(request)
    assert errors.error_text(caught.value.code, str(caught.value)).startswith(
        "stopping: request to Pusher at 127.0.0.1:"
    )
    await transport.close()


def test_an_execution_not_started_at_shutdown_is_stopping() -> None:
    assert STOPPING.startswith("stopping: mesg-pusher is stopping: this execution was not started")


def test_outputs_over_the_engines_limit_are_outputs_too_large() -> None:
    request = execution_pb2.UpdateExecutionRequest(hash=b"h")
    fill_result(request, {"body": "x" * (MAX_UPDATE_BYTES + 1)}, None)
    assert request.error.startswith("outputs_too_large: outputs are "), request.error
    assert "over the engine's" in request.error


def test_outputs_that_cannot_be_encoded_are_an_internal_error() -> None:
    request = execution_pb2.UpdateExecutionRequest(hash=b"h")
    fill_result(request, {"value": object()}, None)
    assert request.error == "internal_error: mesg-pusher could not encode its outputs: TypeError"


class NoEngine:
    async def emit(self, key: str, data: dict[str, Any]) -> bytes:
        return b"h"


async def test_a_subscription_pusher_refuses_is_subscription_refused() -> None:
    """A protocol-7 stand-in that refuses every subscription, as Pusher does a bad signature."""

    async def refuse(conn: ServerConnection) -> None:
        established = {"socket_id": "1.1", "activity_timeout": 120}
        await conn.send(
            json.dumps({"event": "pusher:connection_established", "data": json.dumps(established)})
        )
        async for raw in conn:
            frame = json.loads(raw)
            if frame["event"] == "pusher:subscribe":
                error = {"type": "AuthError", "error": "Invalid signature", "status": 401}
                channel = frame["data"]["channel"]
                await conn.send(
                    json.dumps({"event": "pusher:subscription_error", "channel": channel, "data": error})
                )

    async with serve(refuse, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        options = build_options(
            {"appId": "1", "key": "k", "secret": "s", "host": "127.0.0.1", "port": port, "useTLS": False}
        )
        listener = Listener(Emitter(NoEngine()), ReceiveSettings())  # type: ignore[arg-type]
        try:
            with pytest.raises(errors.PusherSubscriptionRefused) as caught:
                await listener.subscribe(["private-room"], options)
        finally:
            await listener.stop()
    text = errors.error_text(caught.value.code, str(caught.value))
    assert text.startswith(
        "pusher_subscription_refused: Pusher refused the subscription to private-room ("
    ), text


# --- the documented set -------------------------------------------------------------------------


def documented_codes() -> list[str]:
    """The first column of the table in docs/errors.md: `code`, `code <status>` or `code [<status>]`."""
    rows = re.findall(r"^\| `([a-z_]+)(?: <status>| \[<status>\])?` \|", DOCS.read_text(), re.MULTILINE)
    return rows


def test_docs_list_every_code_and_only_those() -> None:
    documented = documented_codes()
    assert sorted(documented) == sorted(errors.CODES), documented
    assert len(set(documented)) == len(documented)


def test_every_error_class_has_a_documented_code() -> None:
    classes = [
        errors.ConfigError,
        errors.InputError,
        errors.PusherBadAnswer,
        errors.PusherUnreachable,
        errors.PusherTimeout,
        errors.PusherUnknownOutcome,
        errors.PusherSubscriptionRefused,
        errors.ShuttingDown,
    ]
    codes = {cls.code for cls in classes}
    assert len(codes) == len(classes)  # each its own
    assert codes <= set(errors.CODES)
