"""Hostile and broken proxies: an ``https://`` proxy trusted through ``PUSHER_CA_BUNDLE`` (and
named when its certificate fails), proxy URLs with a bad port, and proxies that echo our
credentials back or answer with endless reason phrases."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesg_pusher.errors import ConfigError, PusherHTTPError, PusherUnreachable
from tests.support.peer import (
    TRIGGER,
    Connection,
    Peer,
    StartPeer,
    answer,
    execute,
    pusher_env,
    serve_forever,
    settings,
)
from tests.support.pusher_side import TestCA

USER = "relay"
PASSWORD = "pr0xy-Echo-Pa55-b41c"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("hostile-ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("hostile-other-ca"), name="a CA nobody trusts")


def server_tls(ca: TestCA, stem: str) -> ssl.SSLContext:
    cert, key = ca.issue(["127.0.0.1"], stem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def tunnel(seen: list[bytes]) -> object:
    """A CONNECT proxy: notes each CONNECT head, answers 200, then relays both ways."""

    async def script(connection: Connection) -> None:
        try:
            head = await connection.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        seen.append(head)
        target = head.split(b" ", 2)[1].decode()
        host, _, port = target.rpartition(":")
        reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        await connection.send(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(connection.reader, writer), pipe(reader, connection.writer))

    return script


async def tls_pusher(peer: StartPeer, ca: TestCA) -> Peer:
    return await peer(
        serve_forever(lambda request, i: answer(body=b'{"tls":1}')), tls=server_tls(ca, "pusher")
    )


async def test_an_https_proxy_is_trusted_through_the_ca_bundle(peer: StartPeer, ca: TestCA) -> None:
    pusher = await tls_pusher(peer, ca)
    seen: list[bytes] = []
    proxy = await peer(tunnel(seen), tls=server_tls(ca, "proxy"))  # type: ignore[arg-type]
    env = settings(
        pusher,
        PUSHER_USE_TLS="true",
        PUSHER_PROXY=f"https://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}",
        PUSHER_CA_BUNDLE=str(ca.pem),
    )
    outcome = await execute("trigger", TRIGGER, env)
    assert outcome.ok, outcome
    assert len(seen) == 1 and seen[0].startswith(f"CONNECT 127.0.0.1:{pusher.port} HTTP/1.1\r\n".encode())
    assert f"Proxy-Authorization: Basic {TOKEN}\r\n".encode() in seen[0]
    assert len(pusher.requests) == 1  # through the tunnel, over TLS


async def test_an_untrusted_proxy_certificate_names_the_proxy(
    peer: StartPeer, ca: TestCA, other_ca: TestCA
) -> None:
    pusher = await tls_pusher(peer, ca)
    proxy = await peer(tunnel([]), tls=server_tls(other_ca, "proxy"))  # type: ignore[arg-type]
    env = settings(
        pusher,
        PUSHER_USE_TLS="true",
        PUSHER_PROXY=f"https://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}",
        PUSHER_CA_BUNDLE=str(ca.pem),
    )
    outcome = await execute("trigger", TRIGGER, env)
    assert outcome.kind is PusherUnreachable, outcome
    assert (outcome.error or "").startswith(
        f"pusher_unreachable: TLS certificate of proxy https://***@127.0.0.1:{proxy.port} not trusted ("
    ), outcome
    assert f"127.0.0.1:{pusher.port}" not in (outcome.error or "")
    assert PASSWORD not in (outcome.error or "")
    assert pusher.accepted == 0


@pytest.mark.parametrize("port", ["notaport", "70000", "0", "-1"])
async def test_a_proxy_url_with_a_bad_port_is_refused_at_configuration(peer: StartPeer, port: str) -> None:
    pusher = await peer(serve_forever(lambda request, i: answer()))
    outcome = await execute(
        "trigger", {**TRIGGER, "proxy": f"http://{USER}:{PASSWORD}@127.0.0.1:{port}"}, settings(pusher)
    )
    assert outcome.kind is ConfigError, outcome
    assert (
        outcome.error
        == "invalid_config: input 'proxy' or variable PUSHER_PROXY has a port that is not a number from 1 to 65535"
    )
    assert pusher.accepted == 0


async def echo(connection: Connection) -> None:
    """A proxy that answers every request with 400 and the request itself as the body."""
    while (request := await connection.read_request()) is not None:
        await connection.send(answer(400, request, "Bad Request"))


async def test_credentials_echoed_by_a_proxy_are_masked_in_the_error(peer: StartPeer) -> None:
    proxy = await peer(echo)
    pusher = await peer(serve_forever(lambda request, i: answer()))
    proxy_url = f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}"
    for where in ("variable", "input"):
        env = settings(pusher, PUSHER_PROXY=proxy_url) if where == "variable" else settings(pusher)
        inputs = TRIGGER if where == "variable" else {**TRIGGER, "proxy": proxy_url}
        outcome = await execute("trigger", inputs, env)
        assert outcome.kind is PusherHTTPError, outcome
        error = outcome.error or ""
        assert error.startswith("pusher_rejected 400: Pusher answered HTTP 400: POST http://127.0.0.1:"), (
            error
        )
        assert "Proxy-Authorization: Basic ***" in error, error  # the proxy did echo it
        assert TOKEN not in error and PASSWORD not in error
    assert TOKEN.encode() in proxy.received  # it was sent to the proxy, as it must be


async def test_a_proxys_endless_reason_phrase_is_cut(peer: StartPeer, ca: TestCA) -> None:
    async def refuse(connection: Connection) -> None:
        head = await connection.reader.readuntil(b"\r\n\r\n")
        await connection.send(
            b"HTTP/1.1 403 " + b"x" * 60_000 + b" " + head.replace(b"\r\n", b" ") + b"\r\n\r\n"
        )
        await connection.wait_closed_by_client()

    proxy = await peer(refuse)
    pusher = await tls_pusher(peer, ca)
    env = settings(
        pusher,
        PUSHER_USE_TLS="true",
        PUSHER_PROXY=f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}",
        PUSHER_CA_BUNDLE=str(ca.pem),
    )
    outcome = await execute("trigger", TRIGGER, env)
    assert outcome.kind is PusherUnreachable, outcome
    error = outcome.error or ""
    assert error.startswith(
        f"pusher_unreachable: proxy http://***@127.0.0.1:{proxy.port} refused the connection to "
        f"127.0.0.1:{pusher.port}: HTTP 403 xxx"
    ), error[:300]
    assert len(error) < 400, len(error)


async def test_the_reason_phrase_echoing_the_token_is_masked(peer: StartPeer, ca: TestCA) -> None:
    async def refuse(connection: Connection) -> None:
        head = await connection.reader.readuntil(b"\r\n\r\n")
        auth = next(line for line in head.split(b"\r\n") if line.startswith(b"Proxy-Authorization"))
        await connection.send(b"HTTP/1.1 403 refused " + auth + b"\r\n\r\n")
        await connection.wait_closed_by_client()

    proxy = await peer(refuse)
    pusher = await tls_pusher(peer, ca)
    env = settings(
        pusher,
        PUSHER_USE_TLS="true",
        PUSHER_PROXY=f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}",
        PUSHER_CA_BUNDLE=str(ca.pem),
    )
    outcome = await execute("trigger", TRIGGER, env)
    assert "HTTP 403 refused Proxy-Authorization: Basic ***" in (outcome.error or ""), outcome
    assert TOKEN not in (outcome.error or "")


@contextlib.contextmanager
def echoing_proxy_process() -> Iterator[int]:
    """The echoing proxy in a process of its own, so the service's process under test is alone."""
    code = (
        "import asyncio, sys\n"
        "from tests.support.peer import Peer\n"
        "from tests.unit.test_http_proxy import echo\n"
        "async def main():\n"
        "    peer = await Peer(echo).start()\n"
        "    print(peer.port, flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(10)


def test_credentials_echoed_by_a_proxy_never_reach_the_output_of_exec() -> None:
    """``mesg-pusher exec`` as an operator runs it: its output and log hold no credential."""
    with echoing_proxy_process() as port:
        env = {
            **os.environ,
            **pusher_env(Peer(serve_forever(lambda r, i: b""), port=1)),
            "PUSHER_PROXY": f"http://{USER}:{PASSWORD}@127.0.0.1:{port}",
            "LOG_LEVEL": "DEBUG",
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mesg_pusher",
                "exec",
                "trigger",
                "--input",
                "channel=c",
                "--input",
                "name=e",
                "--input",
                "data=1",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "HTTP 400" in output and "Proxy-Authorization: Basic ***" in output, output
    assert TOKEN not in output and PASSWORD not in output
