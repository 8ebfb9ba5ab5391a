"""A hostile flood of the webhook endpoint while executions run; prints what it cost the service.

Slow clients send a request's headers and trickle its body one byte at a time, for as long as
the server keeps them; abandoned ones send half a body and hang up; malformed ones send a
request aiohttp cannot parse (each of which it reports with a traceback); forged ones send a
whole webhook with a bad signature. Meanwhile an application
keeps executing ``trigger`` tasks. Measured on the service process: log lines written, the
most file descriptors it held (sampled from /proc), and executions completed meanwhile, next
to the executions completed in a window of the same length before the flood.

Run it on its own to compare with another version of the service (e.g. ``git archive`` of an
older commit's ``src``): ``python -m tests.support.flood [--service-src DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mesg_local_engine.app import Application
from tests.support.e2e import channel
from tests.support.soketi import Soketi, free_port
from tests.support.stack import Stack, running_stack

HEADERS = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"


@dataclass
class Clients:
    """What the flooding clients saw (it comes back from their own process, so it pickles)."""

    opened: int = 0  # connections the flood opened
    outcomes: Counter[str] = field(default_factory=Counter)  # per connection, see _slow/_abandoned
    slow_held: list[float] = field(default_factory=list)  # seconds each slow client was kept


@dataclass
class Figures(Clients):
    """What one flood did and cost."""

    log_lines: int = 0
    error_lines: int = 0  # lines with ERROR or a traceback
    max_fds: int = 0
    fds_before: int = 0
    executed: int = 0  # executions completed during the flood
    failed: int = 0
    executed_before: int = 0  # completed in a quiet window just before
    seconds_before: float = 0.0
    seconds: float = 0.0
    cpu_before: float = 0.0  # the service's CPU seconds in the quiet window
    cpu: float = 0.0  # and during the flood

    def report(self) -> str:
        held = sorted(self.slow_held)
        longest = f"{held[-1]:.1f}" if held else "-"
        median = f"{held[len(held) // 2]:.1f}" if held else "-"
        return (
            f"flood: {self.opened} connections in {self.seconds:.1f} s ({dict(self.outcomes)}); "
            f"slow clients held median {median} s, longest {longest} s; "
            f"service log +{self.log_lines} lines ({self.error_lines} ERROR/traceback); "
            f"file descriptors {self.fds_before} before, {self.max_fds} at most; "
            f"executions completed {self.executed} ({self.failed} failed) during the flood "
            f"({self.executed / self.seconds:.0f}/s), {self.executed_before} in {self.seconds_before:.0f} s "
            f"before it ({self.executed_before / self.seconds_before:.0f}/s); service CPU "
            f"{self.cpu / self.seconds:.2f} of a core during the flood, {self.cpu_before / self.seconds_before:.2f} before"
        )


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _sample_fds(pid: int, figures: Figures, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            figures.max_fds = max(figures.max_fds, fd_count(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def _answer_or_close(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """The server's first bytes, b"" if it closed, None if it said nothing within ``timeout``."""
    try:
        return await asyncio.wait_for(reader.read(64), timeout)
    except TimeoutError:
        return None
    except ConnectionError:
        return b""


async def _connect(port: int, clients: Clients) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        connection = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        clients.outcomes["connect failed"] += 1
        return None
    clients.opened += 1
    return connection


async def _slow(port: int, hold: float, clients: Clients) -> None:
    """Headers, then one body byte a second until the server lets go or ``hold`` is over."""
    began = time.monotonic()
    if (connection := await _connect(port, clients)) is None:
        return
    reader, writer = connection
    outcome = "slow: held to the end"
    try:
        writer.write(HEADERS + b'{"time_ms": ')
        while time.monotonic() - began < hold:
            answer = await _answer_or_close(reader, 1.0)
            if answer is not None:
                outcome = "slow: 503 at once" if answer.startswith(b"HTTP/1.1 503") else "slow: cut"
                break
            writer.write(b"1")
    except ConnectionError:
        outcome = "slow: cut"
    finally:
        writer.transport.abort()
    clients.outcomes[outcome] += 1
    clients.slow_held.append(time.monotonic() - began)


async def _abandoned(port: int, clients: Clients) -> None:
    """Headers and half a body, then hang up without waiting for an answer."""
    if (connection := await _connect(port, clients)) is None:
        return
    _, writer = connection
    writer.write(HEADERS + b'{"time_ms": 1, "events": [' + b" " * 2000)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()
    clients.outcomes["abandoned"] += 1


# Whole requests that must be refused: one aiohttp cannot parse (it reports each with a
# traceback), and one with a forged signature (answered 401).
MALFORMED = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: many\r\n\r\n"
_FORGED_BODY = b'{"time_ms": 1, "events": []}'
FORGED = (
    b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pusher-Key: key\r\nX-Pusher-Signature: %s\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (b"0" * 64, len(_FORGED_BODY), _FORGED_BODY)
)


async def _refused(port: int, clients: Clients, label: str, request: bytes) -> None:
    """Send a whole ``request``; the status of the server's answer is recorded under ``label``."""
    if (connection := await _connect(port, clients)) is None:
        return
    reader, writer = connection
    writer.write(request)
    answer = await _answer_or_close(reader, 5.0)
    writer.transport.abort()
    status = answer.split(b" ")[1].decode() if answer and answer.startswith(b"HTTP/") else "no answer"
    clients.outcomes[f"{label}: {status}"] += 1


async def _malformed(port: int, clients: Clients) -> None:
    await _refused(port, clients, "malformed", MALFORMED)


async def _forged(port: int, clients: Clients) -> None:
    await _refused(port, clients, "forged", FORGED)


async def _clients(
    port: int, slow: int, abandoned: int, malformed: int, forged: int, hold: float, waves: int
) -> Clients:
    clients = Clients()

    async def in_waves(kind: Callable[[int, Clients], Awaitable[None]], count: int) -> None:
        for start in range(0, count, waves):
            await asyncio.gather(*(kind(port, clients) for _ in range(min(waves, count - start))))

    await in_waves(_malformed, malformed)  # first, while there is room under the cap
    await in_waves(_forged, forged)
    slow_clients = [asyncio.create_task(_slow(port, hold, clients)) for _ in range(slow)]
    await in_waves(_abandoned, abandoned)
    await asyncio.gather(*slow_clients)
    return clients


def run_clients(
    port: int, slow: int, abandoned: int, malformed: int, forged: int, hold: float, waves: int
) -> Clients:
    """The flood, in a process of its own: its CPU is not the application's that executes tasks."""
    return asyncio.run(_clients(port, slow, abandoned, malformed, forged, hold, waves))


async def _execute(app: Application, instance: bytes, stop: asyncio.Event, counts: Counter[str]) -> None:
    room = channel("flood")
    while not stop.is_set():
        result = await app.execute_task_and_wait_result(
            instance, "trigger", {"channel": room, "name": "tick", "data": {"n": 1}}, timeout=30
        )
        counts["completed" if result.ok else "failed"] += 1


async def _executions_for(app: Application, instance: bytes, seconds: float, lanes: int = 8) -> Counter[str]:
    counts: Counter[str] = Counter()
    stop = asyncio.Event()
    runners = [asyncio.create_task(_execute(app, instance, stop, counts)) for _ in range(lanes)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*runners)
    return counts


async def flood(
    stack: Stack,
    port: int,
    *,
    slow: int = 600,
    abandoned: int = 4000,
    malformed: int = 200,
    forged: int = 500,
    hold: float = 15.0,
    waves: int = 200,
) -> Figures:
    """``slow`` trickling clients (each kept up to ``hold`` s) and ``abandoned`` ones, executions alongside."""
    figures = Figures()
    pid = stack.service.pid
    async with Application.connect(stack.engine.endpoint) as app:
        instance = await app.resolve("com.mesg.pusher")
        await _executions_for(app, instance, 1.0)  # warm up: connections to Pusher and the engine
        figures.fds_before = fd_count(pid)
        log_before = stack.service.log()
        cpu = cpu_seconds(pid)
        quiet = await _executions_for(app, instance, hold)
        figures.executed_before, figures.seconds_before = quiet["completed"], hold
        figures.cpu_before, cpu = cpu_seconds(pid) - cpu, cpu_seconds(pid)

        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_fds(pid, figures, stop))
        counts: Counter[str] = Counter()
        runners = [asyncio.create_task(_execute(app, instance, stop, counts)) for _ in range(8)]
        began = time.monotonic()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            clients = await asyncio.get_running_loop().run_in_executor(
                pool, run_clients, port, slow, abandoned, malformed, forged, hold, waves
            )
        figures.opened, figures.outcomes, figures.slow_held = (
            clients.opened,
            clients.outcomes,
            clients.slow_held,
        )
        stop.set()
        await asyncio.gather(*runners, sampler)
        figures.seconds, figures.cpu = time.monotonic() - began, cpu_seconds(pid) - cpu
        figures.executed, figures.failed = counts["completed"], counts["failed"]
    await asyncio.sleep(0.5)  # the last log lines
    added = stack.service.log()[len(log_before) :].splitlines()
    figures.log_lines = len(added)
    figures.error_lines = sum(1 for line in added if "ERROR" in line or line.startswith("Traceback"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--service-src", help="run the service from this src directory (PYTHONPATH)")
    parser.add_argument("--slow", type=int, default=600)
    parser.add_argument("--abandoned", type=int, default=4000)
    parser.add_argument("--malformed", type=int, default=200)
    parser.add_argument("--forged", type=int, default=500)
    parser.add_argument("--hold", type=float, default=15.0)
    args = parser.parse_args()
    port = free_port()
    service_env = {"PYTHONPATH": args.service_src} if args.service_src else None
    with (
        Soketi() as soketi,
        running_stack(soketi, env={"PUSHER_WEBHOOK_PORT": str(port)}, service_env=service_env) as stack,
    ):
        stack.service.wait_for_log("webhook endpoint listening")
        figures = asyncio.run(
            flood(
                stack,
                port,
                slow=args.slow,
                abandoned=args.abandoned,
                malformed=args.malformed,
                hold=args.hold,
            )
        )
    print(figures.report())


if __name__ == "__main__":
    main()
