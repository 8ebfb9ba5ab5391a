"""A loopback TCP relay: a distant server (``delay``), a path that drops or goes silent.

The bench puts it in front of the local Pusher server to measure the service as if Pusher
were far away (``python -m benchmarks.bench --rtt-ms N``); the fault tests use it for paths we cannot
provoke on real servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections import deque

from tests.support.checkout import ROOT
from tests.support.processes import Child, ProcessError, python_env
from tests.support.soketi import free_port


class TcpProxy:
    """Relays 127.0.0.1:``port`` to ``target_port``; ``delay`` holds each client byte that long.

    The delay is a delay line, not a pause per read: every chunk leaves ``delay`` seconds after
    it arrived, in order, whatever the chunking, so a request costs one ``delay`` more per round
    trip and connections stay open between requests (keep-alive is honoured).

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

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await reader.read(65536):
                    if not flags["silent"]:
                        writer.write(chunk)
                        await writer.drain()
            writer.transport.abort()

        async def delayed_pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            loop = asyncio.get_running_loop()
            line: deque[tuple[float, bytes]] = deque()
            arrived = asyncio.Event()
            ended = False

            async def forward() -> None:
                while line or not ended:
                    if not line:
                        arrived.clear()
                        await arrived.wait()
                        continue
                    due, chunk = line[0]
                    if (wait := due - loop.time()) > 0:
                        await asyncio.sleep(wait)
                    line.popleft()
                    if not flags["silent"]:
                        writer.write(chunk)
                        await writer.drain()

            forwarding = asyncio.create_task(forward())
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await reader.read(65536):
                    line.append((loop.time() + self.delay, chunk))
                    arrived.set()
                ended = True
                arrived.set()
                await forwarding
            forwarding.cancel()
            writer.transport.abort()

        await asyncio.gather(
            delayed_pipe(client_reader, server_writer) if self.delay else pipe(client_reader, server_writer),
            pipe(server_reader, client_writer),
        )
        self._writers -= {client_writer, server_writer}
        with contextlib.suppress(ValueError):
            self._live.remove(flags)


class RelayProcess(Child):
    """``TcpProxy`` in a child process, listening on a free loopback port once ``start()`` returns."""

    def __init__(self, target_port: int, delay_ms: float) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "tests.support.relay", "--target-port", str(target_port)]
        argv += ["--delay-ms", f"{delay_ms:g}", "--port", str(self.port)]
        super().__init__("relay", argv, python_env({"PYTHONPATH": str(ROOT)}))

    def start(self, stdout: int | None = None, timeout: float = 20.0) -> None:
        super().start(stdout)
        deadline = time.monotonic() + timeout
        while "READY" not in self.log():
            if not self.running or time.monotonic() > deadline:
                self.kill()
                raise ProcessError(f"relay did not start:\n{self.log()[-2000:]}")
            time.sleep(0.05)


async def _serve(target_port: int, delay: float, port: int) -> None:
    relay = await TcpProxy(target_port, delay, port).start()
    print(f"READY port={relay.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await relay.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.relay``: the relay in its own process (the bench's distant
    Pusher), so relaying costs neither the load generator's CPU nor the service's."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.relay")
    parser.add_argument("--target-port", type=int, required=True, help="loopback port to relay to")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added per round trip")
    parser.add_argument("--port", type=int, default=0, help="loopback port to listen on (0: a free one)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.target_port, args.delay_ms / 1000, args.port or free_port()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
