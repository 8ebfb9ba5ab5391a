"""Pusher through a real HTTP proxy (proxy.py), with and without Basic credentials.

application -> local engine -> real service process -> proxy.py -> soketi -> a subscriber;
the proxy's access log proves the request went through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.pusher_side import HttpProxy, TestCA, TLSSoketi
from tests.support.pusher_ws import PusherWS
from tests.support.soketi import Soketi, free_port
from tests.support.stack import running_stack

USER = "relay"
PASSWORD = "pr0xy-Pa55word-7d1f"  # must never show in a log or an error


@pytest.fixture(scope="module")
def open_proxy() -> Iterator[HttpProxy]:
    with HttpProxy() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def auth_proxy() -> Iterator[HttpProxy]:
    with HttpProxy(auth=(USER, PASSWORD)) as proxy:
        yield proxy


def _events_path(soketi: Soketi) -> str:
    return f"POST {soketi.host}:{soketi.port}/apps/{soketi.app.app_id}/events"


async def test_pusher_proxy_routes_the_trigger_through_the_proxy(
    soketi: Soketi, open_proxy: HttpProxy
) -> None:
    # One connection per request: proxy.py logs a connection's request when it closes.
    env = {"PUSHER_PROXY": open_proxy.url(), "PUSHER_KEEP_ALIVE": "false", "LOG_LEVEL": "DEBUG"}
    with running_stack(soketi, env=env) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            name = channel("proxied")
            before = open_proxy.log().count(_events_path(soketi))
            async with PusherWS(soketi.ws_url()) as ws:
                await ws.subscribe(name)
                result = await run(
                    app, instance, "trigger", {"channel": name, "name": "ev", "data": {"p": 1}}
                )
                assert result.ok, result.error
                assert (await ws.next_event(channel=name, event="ev"))["data"] == {"p": 1}
            # A read goes through it as well.
            read = await run(app, instance, "channels", {})
            assert read.ok, read.error
        open_proxy.wait_for_log(_events_path(soketi), count=before + 1)
        open_proxy.wait_for_log(f"GET {soketi.host}:{soketi.port}/apps/{soketi.app.app_id}/channels")


async def test_proxy_with_credentials_in_the_url_and_without(soketi: Soketi, auth_proxy: HttpProxy) -> None:
    env = {"PUSHER_PROXY": auth_proxy.url(USER, PASSWORD), "LOG_LEVEL": "DEBUG"}
    errors: list[str] = []
    with running_stack(soketi, env=env) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            name = channel("proxied-auth")
            async with PusherWS(soketi.ws_url()) as ws:
                await ws.subscribe(name)
                inputs = {"channel": name, "name": "ev", "data": {"auth": True}}
                result = await run(app, instance, "trigger", inputs)
                assert result.ok, result.error
                assert (await ws.next_event(channel=name, event="ev"))["data"] == {"auth": True}

            # The same proxy without credentials: a 407, said plainly, and not retried.
            bare = await run(app, instance, "trigger", {**inputs, "proxy": auth_proxy.url()})
            assert bare.status == "Failed"
            assert (
                f"proxy {auth_proxy.url()} requires authentication (HTTP 407 Proxy Authentication Required)"
                in (bare.error or "")
            ), bare.error
            assert "http://user:password@host:port" in (bare.error or "")
            # Wrong credentials: the message masks them and says they were refused.
            wrong = await run(
                app, instance, "trigger", {**inputs, "proxy": auth_proxy.url(USER, "nope-wrong")}
            )
            assert wrong.status == "Failed"
            assert "HTTP 407" in (wrong.error or "") and "refused the credentials" in (wrong.error or "")
            assert f"http://***@127.0.0.1:{auth_proxy.port}" in (wrong.error or ""), wrong.error
            # A proxy that is not there: unreachable, the URL masked.
            gone = f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}"
            down = await run(app, instance, "trigger", {**inputs, "proxy": gone, "timeout": 1500})
            assert down.status == "Failed"
            assert "proxy http://***@127.0.0.1:" in (down.error or "") and "unreachable" in (down.error or "")
            errors += [bare.error or "", wrong.error or "", down.error or ""]
        log = stack.service.log()
    # Logged once the service closed its kept-alive connection through the proxy.
    auth_proxy.wait_for_log(_events_path(soketi))
    assert "DEBUG" in log  # the log level really was debug
    for text in [log, *errors]:
        assert PASSWORD not in text
        assert "nope-wrong" not in text


async def test_https_through_the_proxy_uses_connect(
    auth_proxy: HttpProxy, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ca = TestCA(tmp_path_factory.mktemp("proxy-ca"))
    cert, key = ca.issue(["127.0.0.1"], "server")
    with TLSSoketi(cert, key, ca.context()) as server:
        env = {
            "PUSHER_PROXY": auth_proxy.url(USER, PASSWORD),
            "PUSHER_CA_BUNDLE": str(ca.pem),
            "LOG_LEVEL": "DEBUG",
        }
        with running_stack(server, env=env) as stack:
            async with Application.connect(stack.engine.endpoint) as app:
                instance = await app.resolve("com.mesg.pusher")
                name = channel("tunnel")
                async with PusherWS(server.ws_url(), ssl=ca.context()) as ws:
                    await ws.subscribe(name)
                    inputs = {"channel": name, "name": "ev", "data": {"tls": True}}
                    result = await run(app, instance, "trigger", inputs)
                    assert result.ok, result.error
                    assert (await ws.next_event(channel=name, event="ev"))["data"] == {"tls": True}
                bare = await run(app, instance, "trigger", {**inputs, "proxy": auth_proxy.url()})
                assert "requires authentication (HTTP 407" in (bare.error or ""), bare.error
            log = stack.service.log()
        auth_proxy.wait_for_log(f"CONNECT 127.0.0.1:{server.port}")
        assert PASSWORD not in log and PASSWORD not in (bare.error or "")


async def test_listener_goes_through_the_proxy_and_trusts_the_ca_bundle(
    auth_proxy: HttpProxy, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``received`` over wss through the proxy: the listener goes the way the HTTP transport goes."""
    ca = TestCA(tmp_path_factory.mktemp("listener-ca"))
    cert, key = ca.issue(["127.0.0.1"], "server")
    name = channel("listened")
    with TLSSoketi(cert, key, ca.context()) as server:
        # Wrong credentials: the listener's connection is refused by the proxy, so it does use it.
        env = {
            "PUSHER_PROXY": auth_proxy.url(USER, "nope-wrong"),
            "PUSHER_CA_BUNDLE": str(ca.pem),
            "PUSHER_SUBSCRIBE": name,
        }
        with running_stack(server, env=env) as stack:
            stack.service.wait_for_log("HTTP 407")
            refused = stack.service.log()
        assert "Pusher connection to wss://127.0.0.1" in refused
        assert "nope-wrong" not in refused
        # The right ones: subscribed through the tunnel, with the test CA trusted over TLS.
        env["PUSHER_PROXY"] = auth_proxy.url(USER, PASSWORD)
        with running_stack(server, env=env) as stack:
            async with Application.connect(stack.engine.endpoint) as app:
                instance = await app.resolve("com.mesg.pusher")
                events = await app.listen_events(instance, key="received")
                try:
                    subscribed = await run(app, instance, "subscribe", {"channels": [name]})
                    assert subscribed.ok and name in subscribed.outputs["channels"], subscribed.error
                    sent = await run(app, instance, "trigger", {"channel": name, "name": "ev", "data": [1]})
                    assert sent.ok, sent.error
                    async with asyncio.timeout(10):
                        async for _, data in events:
                            if data["channel"] == name:
                                assert data == {"channel": name, "event": "ev", "data": [1]}
                                break
                finally:
                    events.close()
            log = stack.service.log()
        assert "CERTIFICATE_VERIFY_FAILED" not in log, log
        assert PASSWORD not in log
