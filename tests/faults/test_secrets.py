"""Secrets never leave the service: not in its stdout/stderr at LOG_LEVEL=DEBUG, not
in an execution's error, not in outputs (bar values derived from them by design: a channel
``auth`` signature, a private-encrypted- channel's ``shared_secret``).

The real service process runs through success, a wrong secret (401), an unreachable host and
proxy, bad inputs, a proxy with a password (and a 407), the encryption master key and a
``PUSHER_URL`` holding the secret, well-formed and malformed.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesg_local_engine.app import Application
from mesg_pusher.config import ConfigError, load_ssl_context, parse_pusher_url
from mesg_pusher.redact import redact_pusher_url
from tests.support.e2e import channel, run
from tests.support.fixtures import SoketiFactory
from tests.support.pusher_side import HttpProxy
from tests.support.pusher_ws import PusherWS
from tests.support.soketi import Soketi, SoketiApp, free_port
from tests.support.stack import running_stack

SECRET = "Kn0wn-app-Secret-a81f2c"
WRONG_SECRET = "Wr0ng-app-Secret-93bd04"
PROXY_USER = "relay"
PROXY_PASSWORD = "Kn0wn-proxy-Pass-77e1"
MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
SECRETS = (SECRET, WRONG_SECRET, PROXY_PASSWORD, MASTER_KEY)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture(scope="module")
def proxy() -> Iterator[HttpProxy]:
    with HttpProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as server:
        yield server


@pytest.fixture
def secret_soketi(soketi_factory: SoketiFactory) -> Soketi:
    return soketi_factory(app=SoketiApp(secret=SECRET))


async def test_no_secret_in_logs_errors_or_outputs(secret_soketi: Soketi, proxy: HttpProxy) -> None:
    server = secret_soketi
    app_id, key, port = server.app.app_id, server.app.key, server.port
    env = {
        # Everything from PUSHER_URL (the secret with it), nothing from the single variables.
        "PUSHER_APP_ID": "",
        "PUSHER_APP_KEY": "",
        "PUSHER_APP_SECRET": "",
        "PUSHER_HOST": "",
        "PUSHER_PORT": "",
        "PUSHER_USE_TLS": "",
        "PUSHER_URL": f"http://{key}:{SECRET}@127.0.0.1:{port}/apps/{app_id}",
        "PUSHER_PROXY": f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}",
        "PUSHER_ENCRYPTION_MASTER_KEY_BASE64": MASTER_KEY,
        "LOG_LEVEL": "DEBUG",
    }
    seen: list[str] = []  # every execution's error and outputs, as text
    with running_stack(server, env=env) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")

            async def execute(task: str, inputs: dict[str, Any], ok: bool, expect: str = "") -> Any:
                result = await run(app, instance, task, inputs)
                seen.append(json.dumps([result.error, result.outputs]))
                assert result.ok is ok, (task, inputs.keys(), result.error)
                assert expect in (result.error or ""), result.error
                return result.outputs

            public = channel("secrets")
            event = {"channel": public, "name": "ev", "data": {"n": 1}}
            async with PusherWS(server.ws_url()) as ws:
                await ws.subscribe(public)
                # Success, through the proxy with its password, signed with the URL's secret.
                await execute("trigger", event, ok=True)
                assert (await ws.next_event(channel=public, event="ev"))["data"] == {"n": 1}
            await execute("channels", {}, ok=True)
            await execute("channel", {"channel": public}, ok=True)
            # The master key: encrypted trigger, and the channel's derived shared secret.
            encrypted = "private-encrypted-" + channel("secrets")
            await execute("trigger", {**event, "channel": encrypted}, ok=True)
            outputs = await execute(
                "authorizeChannel", {"socket_id": "123.456", "channel": encrypted}, ok=True
            )
            assert outputs["auth"].startswith(f"{key}:") and outputs["shared_secret"]
            await execute(
                "authorizeChannel", {"socket_id": "123.456", "channel": "private-" + public}, ok=True
            )
            # Wrong secret: 401 with soketi's message, for a write and a read.
            await execute("trigger", {**event, "secret": WRONG_SECRET}, ok=False, expect="HTTP 401")
            await execute("channels", {"secret": WRONG_SECRET}, ok=False, expect="HTTP 401")
            # Unreachable host: through the proxy, which answers 502. (An empty proxy input
            # counts as unset, so every execution here goes through PUSHER_PROXY.)
            dead = free_port()
            unreachable = {"port": dead, "timeout": 2000, "secret": WRONG_SECRET}
            await execute("trigger", {**event, **unreachable}, ok=False, expect="HTTP 502")
            await execute("channels", unreachable, ok=False, expect="HTTP 502")
            # The proxy unreachable, with a password in its URL; then refusing credentials.
            gone = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{dead}"
            await execute(
                "trigger", {**event, "proxy": gone, "timeout": 1500}, ok=False, expect="unreachable"
            )
            wrong_proxy = f"http://{PROXY_USER}:{WRONG_SECRET}@127.0.0.1:{proxy.port}"
            await execute("trigger", {**event, "proxy": wrong_proxy}, ok=False, expect="HTTP 407")
            await execute("channels", {"proxy": f"http://127.0.0.1:{proxy.port}"}, ok=False, expect="407")
            # Bad inputs next to secrets (the engine itself refuses wrongly typed ones).
            bad: list[dict[str, Any]] = [
                {**event, "channel": "bad channel!", "secret": WRONG_SECRET},
                {**event, "name": "x" * 201},
                {**event, "proxy": f"ftp://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:1"},
                {**event, "encryptionMasterKeyBase64": WRONG_SECRET},
                {**event, "encryptionMasterKeyBase64": MASTER_KEY[:-4]},
                {**event, "appId": "not-digits", "secret": WRONG_SECRET},
                {**event, "data": {"secret": "x" * 20_000}, "secret": WRONG_SECRET},
            ]
            for inputs in bad:
                await execute("trigger", inputs, ok=False)
        log = stack.service.log()
    assert "DEBUG" in log and "failed" in log  # the log is at debug and saw the failures
    assert "proxy http://***@127.0.0.1" in log or any("http://***@" in s for s in seen)
    for text in [log, *seen]:
        for leaked in _leaks(text):
            at = text.index(leaked)
            raise AssertionError(f"{leaked!r} leaked: ...{text[max(0, at - 400) : at + 100]}...")


@pytest.mark.parametrize(
    "url",
    [
        f"https://key:{SECRET}/apps/1",  # the @host forgotten: key:secret reads as host:port
        f"https://key:{SECRET}@host/apps/not-digits",
        f"key:{SECRET}@host/apps/1",
        f"https://key:{SECRET[:5]}/{SECRET[5:]}@host/apps/1",  # a / in the secret
    ],
)
def test_malformed_pusher_url_never_shows_the_secret(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_pusher_url(url)
    assert SECRET not in str(error.value) and SECRET[5:] not in str(error.value)
    assert "***" in str(error.value)
    assert redact_pusher_url("https://api-eu.pusher.com/apps/1") == "https://api-eu.pusher.com/apps/1"
    assert redact_pusher_url("https://host:443/apps/x") == "https://host:443/apps/x"


async def test_malformed_pusher_url_in_the_service(soketi: Soketi) -> None:
    env = {"PUSHER_URL": f"https://key:{SECRET}/apps/1", "PUSHER_APP_SECRET": "", "LOG_LEVEL": "DEBUG"}
    with running_stack(soketi, env=env) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            result = await run(app, instance, "trigger", {"channel": "c", "name": "e", "data": "x"})
            assert result.status == "Failed"
            assert "PUSHER_URL 'https://***/apps/1' is not of the form" in (result.error or "")
        log = stack.service.log()
    assert "no usable default Pusher settings" in log
    assert SECRET not in log and SECRET not in (result.error or "")


def test_ca_bundle_errors_name_the_variable(tmp_path: Path) -> None:
    assert load_ssl_context(None) is None
    with pytest.raises(ConfigError, match=r"^PUSHER_CA_BUNDLE '.*nowhere.pem' cannot be read: No such file"):
        load_ssl_context(str(tmp_path / "nowhere.pem"))
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(ConfigError, match=r"PUSHER_CA_BUNDLE .* holds no usable PEM CA certificate"):
        load_ssl_context(str(tmp_path / "empty.pem"))
