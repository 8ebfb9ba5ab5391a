"""A TCP relay for faults we cannot provoke on real servers: a path that drops, goes silent, or is slow."""

from __future__ import annotations

import asyncio
import contextlib

from mesg_pusher.harness.soketi import free_port


class TcpProxy:
    """Relays 127.0.0.1:``port`` to ``target_port``; ``delay`` holds each client chunk that long.

    ``stop()`` closes the listener and every relayed connection (the peer sees the path drop);
    ``start()`` again listens on the same port. ``blackhole()`` makes the connections open at that
    moment stop forwarding in both directions without closing -- bytes are read and thrown
    away, as when a NAT or a load balancer forgets an idle flow; later connections relay normally.
    """

    def __init__(self, target_port: int, delay: float = 0.0, port: int | None = None) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._live: list[dict[str, bool]] = []
        self.connections = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    def blackhole(self) -> int:
        """Silence every open connection; the number silenced."""
        for flags in self._live:
            flags["silent"] = True
        count, self._live = len(self._live), []
        return count

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        flags = {"silent": False}
        self._live.append(flags)
        self._writers |= {client_writer, server_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await reader.read(65536):
                    if flags["silent"]:
                        continue
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(chunk)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(
            pipe(client_reader, server_writer, self.delay), pipe(server_reader, client_writer, 0.0)
        )
        self._writers -= {client_writer, server_writer}
        with contextlib.suppress(ValueError):
            self._live.remove(flags)
