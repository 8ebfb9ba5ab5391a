"""Raw HTTP peers on loopback for the hostile-peer suite: what they received, what they hold.

A ``Peer`` is an asyncio server whose every connection is handed to a script (``Script``): it
reads requests with ``read_request`` and writes whatever bytes the case needs, well-formed or
not. The peer keeps the raw bytes each connection brought, how many connections it accepted
and how many are still open, so a test can assert what reached the wire and what the client
holds. Nothing of ours is patched: the client under test is the real transport, SDK and task.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import ssl
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mesg_pusher.commands.direct import TaskFailed, run_task
from mesg_pusher.config import PusherSettings

APP_ID = "1"
KEY = "hostile-key"
SECRET = "h0stile-app-Secret-5e2a"

Script = Callable[["Connection"], Awaitable[None]]
StartPeer = Callable[..., Awaitable["Peer"]]


@dataclass
class Connection:
    """One accepted connection: its streams, and every byte it brought (``received``)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: Peer
    received: bytearray = field(default_factory=bytearray)

    async def read_request(self) -> bytes | None:
        """The next whole request (head and ``Content-Length`` body); None once the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        try:
            body = await self.reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        request = head + body
        self.received += request
        self.peer.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_closed_by_client(self) -> None:
        """Until the client closes its end (reads and keeps whatever comes meanwhile)."""
        with contextlib.suppress(ConnectionError):
            while chunk := await self.reader.read(65536):
                self.received += chunk


@dataclass
class Peer:
    """A server on loopback running ``script`` for each connection."""

    script: Script
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    port: int = 0
    accepted: int = 0
    open: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Peer:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        connection = Connection(reader, writer, self)
        self.connections.append(connection)
        try:
            await self.script(connection)
        except (ConnectionError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)  # the socket itself closes on the loop's next pass
            self.open -= 1
            self._changed.set()

    async def wait_open(self, count: int, timeout: float = 10.0) -> None:
        """Until at most ``count`` of its connections are open (the client closed the others)."""
        async with asyncio.timeout(timeout):
            while self.open > count:
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        self.stop.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def received(self) -> bytes:
        """Every byte every connection brought, in order of connection."""
        return b"".join(bytes(c.received) for c in self.connections)

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def answer(status: int = 200, body: bytes = b"{}", reason: str = "OK", extra: bytes = b"") -> bytes:
    """A well-formed HTTP/1.1 answer with ``Content-Length``."""
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n".encode()
        + extra
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def serve_forever(reply: Callable[[bytes, int], bytes]) -> Script:
    """A script that answers every request on the connection with ``reply(request, index)``."""

    async def script(connection: Connection) -> None:
        while (request := await connection.read_request()) is not None:
            await connection.send(reply(request, len(connection.peer.requests) - 1))

    return script


async def never_answer(connection: Connection) -> None:
    """Reads the request, then never says a word; ends when the client closes."""
    await connection.read_request()
    await connection.wait_closed_by_client()


def pusher_env(peer: Peer, **extra: str) -> dict[str, str]:
    """PUSHER_* variables pointing at the peer over plain HTTP (``extra`` overrides them)."""
    host = f"[{peer.host}]" if ":" in peer.host else peer.host
    env = {
        "PUSHER_APP_ID": APP_ID,
        "PUSHER_APP_KEY": KEY,
        "PUSHER_APP_SECRET": SECRET,
        "PUSHER_HOST": host,
        "PUSHER_PORT": str(peer.port),
        "PUSHER_USE_TLS": "false",
        "PUSHER_TIMEOUT": "3000",
    }
    env.update(extra)
    return env


def settings(peer: Peer, **extra: str) -> PusherSettings:
    return PusherSettings(pusher_env(peer, **extra))


def open_sockets() -> int:
    """Sockets this process holds now (the peers' ends included), after a garbage collection so
    that sockets only waiting to be collected are not counted."""
    gc.collect()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
    return count


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Python allocations' peak above the start, in bytes (``[peak]`` once the block ends)."""
    result: list[int] = []
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        yield result
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result.append(peak - base)


# --- tasks run as an execution runs them -------------------------------------------------


@dataclass
class Outcome:
    """What an execution reports: its outputs, or its error text and the error's class."""

    outputs: dict[str, Any] | None
    error: str | None
    kind: type[BaseException] | None

    @property
    def ok(self) -> bool:
        return self.error is None


async def execute(task: str, inputs: dict[str, Any], settings: PusherSettings) -> Outcome:
    try:
        outputs = await run_task(task, inputs, settings)
    except TaskFailed as failed:
        cause = failed.__cause__
        return Outcome(None, str(failed), type(cause) if cause is not None else None)
    return Outcome(outputs, None, None)


TRIGGER = {"channel": "hostile", "name": "ev", "data": {"n": 1}}
