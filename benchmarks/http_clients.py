"""Which HTTP client should carry Pusher calls: ours (``http1``) or a well-kept library?

Two parts, both re-runnable:

``python -m benchmarks.http_clients speed`` -- CPU per trigger at 64 in flight against a real
soketi, on loopback and 50 ms away (the repo's delaying relay in front of soketi). Each
measurement runs in a fresh child process: the SDK builds and signs every request (as in the
service), the client sends it and the answer is decoded as JSON. Variants are interleaved
round after round (shuffled each round) with two baselines in every round: ``sign`` (the SDK
building and signing, no I/O) and ``bare`` (a minimal asyncio client: one write, an answer
read by its Content-Length, no limits and no checks). The figure to compare is each client's
CPU per call divided by ``bare``'s in the same round: this machine's speed drifts by a third
within minutes, and the ratio moves far less than the absolute figure.

``python -m benchmarks.http_clients hostile`` -- each client, wrapped as we would have to wrap
it (the same body cap for all), against raw loopback peers that misbehave: CR/LF in the
target, a 2 GB Content-Length, an endless header line, interim 100 answers, a 101, and a
server that never answers 300 requests (connections held against a limit of 256).

Libraries compared: aiohttp (already a dependency, for the webhook server), httpcore (h11
underneath, the core of httpx) and curl-cffi (libcurl's multi interface on the asyncio loop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

VARIANTS = ("sign", "bare", "ours", "aiohttp", "httpcore", "curl_cffi", "transport", "transport-before")
BASELINE = "bare"
LIBRARIES = ("ours", "aiohttp", "httpcore", "curl_cffi")
BODY_CAP = 4 * 1024 * 1024  # what http1 allows; the others are given the same by their wrapper
LIMIT = 256  # connections per pool, as in the transport


# --- clients ------------------------------------------------------------------------------------
# Each: ``await send(method, url, headers, body, timeout) -> (status, body)``; ``await close()``.

Send = Callable[[str, str, dict[str, str], bytes, float], Awaitable[tuple[int, bytes]]]


class Bare:
    """The floor: kept-alive connections, one write, an answer read by its Content-Length."""

    def __init__(self) -> None:
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> tuple[int, bytes]:
        rest = url.split("://", 1)[1]
        authority, _, target = rest.partition("/")
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            host, _, port = authority.rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
        head = f"{method} /{target} HTTP/1.1\r\nHost: {authority}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        answer_head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in answer_head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await reader.readexactly(length)
        self._idle.append((reader, writer))
        return int(answer_head[9:12]), data

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


class Ours:
    """``http1.ConnectionPool``, the transport's client, with its caps and checks."""

    def __init__(self) -> None:
        from mesg_pusher.http1 import ConnectionPool, Endpoint

        self._pools: dict[str, Any] = {}
        self._make = lambda host, port: ConnectionPool(
            Endpoint(host=host, port=port, tls=None), keep_alive=True, keepalive=4.0, limit=LIMIT
        )

    async def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> tuple[int, bytes]:
        rest = url.split("://", 1)[1]
        authority, _, target = rest.partition("/")
        pool = self._pools.get(authority)
        if pool is None:
            host, _, port = authority.rpartition(":")
            pool = self._pools[authority] = self._make(host.strip("[]"), int(port))  # type: ignore[no-untyped-call]
        deadline = asyncio.get_running_loop().time() + timeout
        response = await pool.exchange(method, "/" + target, headers, body, deadline)
        return response.status, response.body

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()


class AioHTTP:
    """aiohttp's client session, as the transport used it before http1 (URL taken as encoded)."""

    def __init__(self) -> None:
        import aiohttp
        import yarl

        self._url: Any = lambda url: yarl.URL(url, encoded=True)
        self._aiohttp = aiohttp
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=LIMIT, limit_per_host=LIMIT, keepalive_timeout=4.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )

    async def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> tuple[int, bytes]:
        limit = self._aiohttp.ClientTimeout(total=timeout)
        async with self._session.request(
            method, self._url(url), data=body or None, headers=headers, timeout=limit
        ) as r:
            chunks, size = [], 0
            while chunk := await r.content.read(65536):  # the cap is ours to apply
                size += len(chunk)
                if size > BODY_CAP:
                    raise ValueError("answer over the cap")
                chunks.append(chunk)
            return r.status, b"".join(chunks)

    async def close(self) -> None:
        await self._session.close()


class HTTPCore:
    """httpcore's connection pool (h11 parses), streaming the body to apply the cap."""

    def __init__(self) -> None:
        import httpcore

        self._pool = httpcore.AsyncConnectionPool(max_connections=LIMIT, keepalive_expiry=4.0)

    async def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> tuple[int, bytes]:
        extensions = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}
        async with self._pool.stream(
            method, url, headers=list(headers.items()), content=body, extensions=extensions
        ) as r:
            chunks, size = [], 0
            async for chunk in r.aiter_stream():
                size += len(chunk)
                if size > BODY_CAP:
                    raise ValueError("answer over the cap")
                chunks.append(chunk)
            return r.status, b"".join(chunks)

    async def close(self) -> None:
        await self._pool.aclose()


class CurlCFFI:
    """curl-cffi's AsyncSession (libcurl multi on the asyncio loop); libcurl caps the body."""

    def __init__(self) -> None:
        from curl_cffi import CurlOpt
        from curl_cffi.requests import AsyncSession

        self._session: Any = AsyncSession(max_clients=LIMIT, curl_options={CurlOpt.MAXFILESIZE: BODY_CAP})

    async def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes, timeout: float
    ) -> tuple[int, bytes]:
        r = await self._session.request(method, url, headers=headers, data=body or None, timeout=timeout)
        return r.status_code, r.content

    async def close(self) -> None:
        await self._session.close()


CLIENTS: dict[str, Callable[[], Any]] = {
    "bare": Bare,
    "ours": Ours,
    "aiohttp": AioHTTP,
    "httpcore": HTTPCore,
    "curl_cffi": CurlCFFI,
}


# --- speed: one child process per measurement ----------------------------------------------------


async def _measure(variant: str, port: int, calls: int, in_flight: int) -> dict[str, float]:
    import pusher

    sdk = pusher.Pusher(
        app_id="100001", key="test-app-key", secret="test-app-secret", host="127.0.0.1", port=port, ssl=False
    )
    inner = sdk._pusher_client
    base = f"http://127.0.0.1:{port}"
    if variant.startswith("transport"):  # the service's whole path: our Transport under the SDK
        from mesg_pusher.config import PusherOptions
        from mesg_pusher.transport import Transport

        options = PusherOptions(
            app_id="100001",
            key="test-app-key",
            secret="test-app-secret",
            host="127.0.0.1",
            use_tls=False,
            port=port,
        )
        transport = Transport(options)

        async def one(i: int) -> None:
            await transport.send(inner.trigger.make_request("bench", "ev", '{"i":1}'))

        client: Any = transport
    else:
        client = CLIENTS[variant]() if variant != "sign" else None

    async def one_call(i: int) -> None:
        request = inner.trigger.make_request("bench", "ev", '{"i":1}')
        if client is None:
            return
        status, body = await client.send(
            request.method, base + request.signed_path, request.headers, request.body or b"", 10.0
        )
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        json.loads(body)

    call = one if variant.startswith("transport") else one_call

    async def worker(count: int) -> None:
        for i in range(count):
            await call(i)

    await asyncio.gather(*(worker(200 // in_flight + 1) for _ in range(in_flight)))  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(calls // in_flight) for _ in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = (calls // in_flight) * in_flight
    if client is not None:
        await client.close()
    import resource

    return {
        "cpu_us": cpu / done * 1e6,
        "rate": done / wall,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(args: argparse.Namespace) -> int:
    result = asyncio.run(_measure(args.variant, args.port, args.calls, args.in_flight))
    print(json.dumps(result), flush=True)
    return 0


def _speed(args: argparse.Namespace) -> int:
    from tests.support.relay import RelayProcess
    from tests.support.soketi import Soketi

    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    with Soketi() as soketi:
        targets = {0: soketi.port}
        relays = []
        for rtt in args.rtt_ms:
            if rtt:
                relay = RelayProcess(soketi.port, rtt)
                relay.start()
                relays.append(relay)
                targets[rtt] = relay.port
        try:
            for round_ in range(args.rounds):
                for rtt, port in targets.items():
                    order = list(args.variants)
                    random.shuffle(order)
                    for variant in order:
                        calls = args.calls if rtt == 0 else args.calls_far
                        argv = [
                            sys.executable,
                            __file__,
                            "child",
                            variant,
                            str(port),
                            str(calls),
                            str(args.in_flight),
                        ]
                        out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                        if out.returncode != 0:
                            print(f"{variant} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                            continue
                        figure = json.loads(out.stdout.strip().splitlines()[-1])
                        figure["round"] = round_
                        results.setdefault((rtt, variant), []).append(figure)
                        print(
                            f"round {round_} rtt {rtt} ms {variant:10} {figure['cpu_us']:7.1f} µs/call {figure['rate']:7.0f}/s",
                            file=sys.stderr,
                        )
        finally:
            for relay in relays:
                relay.stop()
    _report(results, args)
    return 0


def _report(results: dict[tuple[int, str], list[dict[str, float]]], args: argparse.Namespace) -> None:
    def fmt(values: list[float], digits: int = 0) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    for rtt in sorted({rtt for rtt, _ in results}):
        base = {f["round"]: f["cpu_us"] for f in results.get((rtt, BASELINE), [])}
        print(
            f"\n{'loopback' if rtt == 0 else f'{rtt} ms away'}, {args.in_flight} in flight, {args.rounds} rounds; medians (range)"
        )
        print("| client | CPU µs per trigger | ÷ bare, same round | ÷ ours, same round | triggers/s |")
        print("|---|---|---|---|---|")
        ours = {f["round"]: f["cpu_us"] for f in results.get((rtt, "ours"), [])}
        for variant in args.variants:
            figures = results.get((rtt, variant), [])
            if not figures:
                continue
            cpu = [f["cpu_us"] for f in figures]
            to_base = [f["cpu_us"] / base[f["round"]] for f in figures if f["round"] in base]
            to_ours = [f["cpu_us"] / ours[f["round"]] for f in figures if f["round"] in ours]
            print(
                f"| {variant} | {fmt(cpu)} | {fmt(to_base, 2) if to_base else '-'} | "
                f"{fmt(to_ours, 2) if to_ours else '-'} | {fmt([f['rate'] for f in figures])} |"
            )


# --- hostile peers -----------------------------------------------------------------------------


class Peer:
    """A raw loopback server running ``script(reader, writer)``; counts connections."""

    def __init__(
        self, script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> None:
        self.script = script
        self.open = 0
        self.most = 0
        self.received = bytearray()

    async def start(self) -> Peer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await self.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
            self.open -= 1

    async def close(self) -> None:
        self.server.close()


def _flood(
    head: bytes, total: int = 32 * 1024 * 1024
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        piece, sent = b"a" * 65536, 0
        while sent < total:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
        await reader.read()

    return script


HEADS: list[bytes] = []  # request heads the ``_reply`` peers received


def _reply(data: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        HEADS.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(data)
        await writer.drain()
        await reader.read()

    return script


async def _case(
    client_name: str, script: Any, path: str = "/apps/1/events", timeout: float = 3.0
) -> dict[str, Any]:
    HEADS.clear()
    peer = await Peer(script).start()
    client = CLIENTS[client_name]()
    loop_errors: list[Any] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context))
    tracemalloc.start()
    began = time.perf_counter()
    try:
        status, body = await client.send(
            "POST",
            f"http://127.0.0.1:{peer.port}{path}",
            {"Content-Type": "application/json"},
            b"{}",
            timeout,
        )
        outcome = f"HTTP {status}, {len(body)} bytes"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:80]}"
    took = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with contextlib.suppress(Exception):
        await client.close()
    await peer.close()
    if any(b"\r\nX-Injected: 1\r\n" in head for head in HEADS):
        outcome += " (the injected header reached the server)"
    return {"outcome": outcome, "peak_mb": peak / 1e6, "seconds": took, "escaped": len(loop_errors)}


async def _never_answer_cap(client_name: str) -> dict[str, Any]:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()

    peer = await Peer(hang).start()
    client = CLIENTS[client_name]()
    url = f"http://127.0.0.1:{peer.port}/apps/1/events"
    results = await asyncio.gather(
        *(client.send("POST", url, {"Content-Type": "application/json"}, b"{}", 2.0) for _ in range(300)),
        return_exceptions=True,
    )
    kinds = sorted({type(r).__name__ for r in results})
    most = peer.most
    with contextlib.suppress(Exception):
        await client.close()
    await asyncio.sleep(0.2)
    left = peer.open
    await peer.close()
    return {
        "outcome": f"most open {most}, open after close {left}; {', '.join(kinds)}",
        "peak_mb": 0.0,
        "seconds": 0.0,
        "escaped": 0,
    }


HOSTILE: dict[str, Callable[[str], Awaitable[dict[str, Any]]]] = {
    "CR/LF in the target": lambda c: _case(
        c, _reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"), "/apps/1/events?k=a\r\nX-Injected: 1"
    ),
    "Content-Length 2 GB": lambda c: _case(
        c, _flood(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000000\r\n\r\n")
    ),
    "endless header line": lambda c: _case(c, _flood(b"HTTP/1.1 200 OK\r\nX-Endless: ")),
    "body to the close, 32 MB": lambda c: _case(c, _flood(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")),
    "100 Continue, then 200": lambda c: _case(
        c, _reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    ),
    "101 Switching Protocols": lambda c: _case(
        c, _reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    ),
    "300 requests, never answered": _never_answer_cap,
}


async def _hostile(clients: list[str]) -> None:
    print("| case | " + " | ".join(clients) + " |")
    print("|---|" + "---|" * len(clients))
    for name, case in HOSTILE.items():
        cells = []
        for client in clients:
            r = await case(client)
            extra = f"; peak {r['peak_mb']:.1f} MB, {r['seconds']:.2f} s" if r["peak_mb"] else ""
            extra += f"; {r['escaped']} error(s) escaped to the loop" if r["escaped"] else ""
            cells.append(r["outcome"].replace("|", "/") + extra)
        print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed", help="CPU per trigger at 64 in flight, interleaved rounds")
    speed.add_argument("--rounds", type=int, default=5)
    speed.add_argument("--calls", type=int, default=3000, help="measured calls per run on loopback")
    speed.add_argument("--calls-far", type=int, default=2000, help="measured calls per run with the relay")
    speed.add_argument("--in-flight", type=int, default=64)
    speed.add_argument("--rtt-ms", type=int, nargs="+", default=[0, 50])
    speed.add_argument("--variants", nargs="+", default=list(VARIANTS[:6]), choices=VARIANTS)
    speed.add_argument(
        "--compare-src",
        help="src/ of another tree, for the transport-before variant (our Transport from there)",
    )
    hostile = sub.add_parser("hostile", help="each client against misbehaving loopback peers")
    hostile.add_argument("--clients", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    child = sub.add_parser("child")
    child.add_argument("variant", choices=VARIANTS)
    child.add_argument("port", type=int)
    child.add_argument("calls", type=int)
    child.add_argument("in_flight", type=int)
    args = parser.parse_args(argv)
    if args.command == "child":
        return _child(args)
    if args.command == "speed":
        return _speed(args)
    asyncio.run(_hostile(args.clients))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
