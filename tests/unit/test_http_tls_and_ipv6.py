"""TLS refusals (untrusted CA, a peer that does not speak TLS), and IPv6 literals: they connect,
or are refused at configuration; the listener's WebSocket URL brackets them as well."""

from __future__ import annotations

import ssl

import pytest

from mesg_pusher.config import ConfigError, PusherSettings, build_options
from mesg_pusher.errors import PusherUnreachable
from mesg_pusher.receive.settings import ReceiveSettings
from tests.support.peer import (
    APP_ID,
    KEY,
    SECRET,
    TRIGGER,
    Connection,
    StartPeer,
    answer,
    execute,
    open_sockets,
    serve_forever,
    settings,
)
from tests.support.pusher_side import TestCA


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("tls-ca"))


def server_tls(ca: TestCA) -> ssl.SSLContext:
    cert, key = ca.issue(["127.0.0.1", "::1"], "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def test_an_untrusted_certificate_is_refused_once_not_retried(peer: StartPeer, ca: TestCA) -> None:
    hellos: list[str | None] = []
    tls = server_tls(ca)
    tls.sni_callback = lambda sock, name, context: hellos.append(name)  # each ClientHello
    server = await peer(serve_forever(lambda request, i: answer()), tls=tls)
    before = open_sockets()
    outcome = await execute("channels", {"timeout": 3000}, settings(server, PUSHER_USE_TLS="true"))
    assert outcome.kind is PusherUnreachable, outcome
    assert (outcome.error or "").startswith(
        f"pusher_unreachable: TLS certificate of 127.0.0.1:{server.port} not trusted ("
    ), outcome
    assert "PUSHER_CA_BUNDLE" in (outcome.error or "")
    assert len(hellos) == 1 and server.requests == []  # one handshake (a read, yet not retried)
    await server.wait_open(0)
    # None of this test\'s sockets is left; one of an earlier test may close meanwhile.
    assert open_sockets() <= before


async def test_a_peer_that_does_not_speak_tls(peer: StartPeer) -> None:
    async def plain(connection: Connection) -> None:
        await connection.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await connection.wait_closed_by_client()

    server = await peer(plain)
    outcome = await execute("trigger", TRIGGER, settings(server, PUSHER_USE_TLS="true"))
    assert outcome.kind is PusherUnreachable, outcome
    assert (outcome.error or "").startswith(
        f"pusher_unreachable: TLS handshake with 127.0.0.1:{server.port} failed: "
    ), outcome


async def test_an_ipv6_literal_host_connects(peer: StartPeer) -> None:
    server = await peer(serve_forever(lambda request, i: answer(body=b'{"v6":true}')), host="::1")
    outcome = await execute("trigger", TRIGGER, settings(server))  # PUSHER_HOST=[::1]
    assert outcome.ok, outcome
    [request] = server.requests
    assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in request


async def test_an_ipv6_literal_over_tls_and_in_pusher_url(peer: StartPeer, ca: TestCA) -> None:
    server = await peer(serve_forever(lambda request, i: answer()), host="::1", tls=server_tls(ca))
    env = {
        "PUSHER_URL": f"https://{KEY}:{SECRET}@[::1]:{server.port}/apps/{APP_ID}",
        "PUSHER_CA_BUNDLE": str(ca.pem),
        "PUSHER_TIMEOUT": "3000",
    }
    outcome = await execute("trigger", TRIGGER, PusherSettings(env))
    assert outcome.ok, outcome
    assert len(server.requests) == 1


@pytest.mark.parametrize("host", ["[:::1]", "[12345::1]", "[::1", "::1", "[fe80::1%eth0]"])
def test_a_malformed_ipv6_literal_is_refused_at_configuration(host: str) -> None:
    values = {"appId": APP_ID, "key": KEY, "secret": SECRET, "host": host}
    with pytest.raises(ConfigError, match=r"^input 'host' or variable PUSHER_HOST is not a valid host name$"):
        build_options(values)


def test_the_listeners_websocket_url_brackets_an_ipv6_literal() -> None:
    options = build_options({"appId": APP_ID, "key": KEY, "secret": SECRET, "host": "[::1]", "port": 6001})
    url = ReceiveSettings.from_environment({}).ws_url(options, "1.0")
    assert url.startswith(f"wss://[::1]:6001/app/{KEY}?protocol=7&"), url
