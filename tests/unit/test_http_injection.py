"""What reaches the wire from inputs: a CR/LF, space or non-ASCII character in the app key or id
must never split or bend a request. Refused at configuration (naming the input or variable),
and again where the request is written (nothing sent)."""

from __future__ import annotations

import pusher
import pytest

from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import ConfigError, InputError
from mesg_pusher.transport import SDKBackend, Transport
from tests.support.peer import SECRET, TRIGGER, StartPeer, answer, execute, serve_forever, settings

SPLIT = "k\r\nX-Injected: 1\r\n\r\nDELETE /apps/1/everything HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    "key",
    [SPLIT, "k\nX-Injected: 1", "k\rX", "k ey", "k\tey", "clé", "k&auth_key=other", "k\x00"],
    ids=["crlf-request", "lf", "cr", "space", "tab", "non-ascii", "query", "nul"],
)
async def test_key_input_that_would_bend_the_request_is_refused_naming_it(peer: StartPeer, key: str) -> None:
    server = await peer(serve_forever(lambda request, i: answer()))
    outcome = await execute("trigger", {**TRIGGER, "key": key}, settings(server))
    assert outcome.kind is ConfigError, outcome
    assert outcome.error is not None
    assert outcome.error.startswith(
        "invalid_config: input 'key' or variable PUSHER_APP_KEY (the app key) must be"
    ), outcome
    assert "\r" not in outcome.error and "\n" not in outcome.error
    assert server.accepted == 0 and server.received == b""  # nothing reached the wire


async def test_key_variable_with_crlf_is_refused_naming_it(peer: StartPeer) -> None:
    server = await peer(serve_forever(lambda request, i: answer()))
    outcome = await execute("trigger", TRIGGER, settings(server, PUSHER_APP_KEY=SPLIT))
    assert outcome.kind is ConfigError
    assert "variable PUSHER_APP_KEY" in (outcome.error or "")
    assert server.received == b""


async def test_pusher_url_with_crlf_in_its_key_is_refused(peer: StartPeer) -> None:
    server = await peer(serve_forever(lambda request, i: answer()))
    url = f"http://k%0d%0aX:{SECRET}@127.0.0.1:{server.port}/apps/1".replace("%0d%0a", "\r\n")
    env = {"PUSHER_URL": url, "PUSHER_APP_KEY": "", "PUSHER_APP_ID": "", "PUSHER_HOST": "", "PUSHER_PORT": ""}
    outcome = await execute("trigger", TRIGGER, settings(server, **env))
    assert outcome.kind is ConfigError, outcome
    assert "PUSHER_APP_KEY (the app key) must be" in (outcome.error or "")
    assert SECRET not in (outcome.error or "")
    assert server.received == b""


@pytest.mark.parametrize("app_id", ["1\r\n2", "1 2", "١٢", "1" * 21])
async def test_app_id_that_is_not_plain_digits_is_refused(peer: StartPeer, app_id: str) -> None:
    server = await peer(serve_forever(lambda request, i: answer()))
    outcome = await execute("trigger", {**TRIGGER, "appId": app_id}, settings(server))
    assert outcome.kind is ConfigError
    assert (outcome.error or "").startswith(
        "invalid_config: input 'appId' or variable PUSHER_APP_ID must be digits"
    )
    assert server.received == b""


@pytest.mark.parametrize("key", [SPLIT, "k ey", "clé"], ids=["crlf", "space", "non-ascii"])
async def test_the_request_writer_refuses_it_too_and_sends_nothing(peer: StartPeer, key: str) -> None:
    """Options that skipped the configuration's checks (built by hand): nothing is written."""
    server = await peer(serve_forever(lambda request, i: answer()))
    options = PusherOptions(
        app_id="1", key=key, secret=SECRET, host="127.0.0.1", use_tls=False, port=server.port, timeout=2.0
    )
    transport = Transport(options)

    client = pusher.Pusher(
        app_id="1",
        key=key,
        secret=SECRET,
        ssl=False,
        host="127.0.0.1",
        port=server.port,
        backend=SDKBackend,
        transport=transport,
    )
    try:
        with pytest.raises(InputError) as caught:
            await client.trigger("ch", "ev", "d")
    finally:
        await transport.close()
    assert str(caught.value) == (
        "request not sent: its path or query holds a character HTTP does not allow there "
        "(CR, LF, space, a control or non-ASCII character)"
    )
    assert server.accepted == 0 and server.received == b""
