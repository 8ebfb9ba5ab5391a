"""TLS faults against soketi serving HTTPS/WSS with a certificate from a test CA: the service
verifies it when given the CA bundle, fails with a certificate error without it or for another
name, and stops at start-up naming the variable when the bundle is unreadable.

application -> local engine -> real service process -> soketi over TLS -> a wss subscriber.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.pusher_side import TestCA, TLSSoketi
from tests.support.pusher_ws import PusherWS
from tests.support.stack import running_stack


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_soketi(test_ca: TestCA) -> Iterator[TLSSoketi]:
    """soketi with a certificate for 127.0.0.1 and localhost, signed by the test CA."""
    cert, key = test_ca.issue(["127.0.0.1", "localhost"], "server")
    with TLSSoketi(cert, key, test_ca.context()) as server:
        yield server


@pytest.fixture(scope="module")
def other_name_soketi(test_ca: TestCA) -> Iterator[TLSSoketi]:
    """soketi whose certificate (same test CA) names another host only."""
    cert, key = test_ca.issue(["other.example"], "other")
    with TLSSoketi(cert, key, test_ca.context()) as server:
        yield server


async def _instance(app: Application) -> bytes:
    return await app.resolve("com.mesg.pusher")


async def test_untrusted_ca_fails_with_a_certificate_error(tls_soketi: TLSSoketi) -> None:
    with running_stack(tls_soketi) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await _instance(app)
            name = channel("tls")
            result = await run(app, instance, "trigger", {"channel": name, "name": "ev", "data": {"a": 1}})
            assert result.status == "Failed"
            error = result.error or ""
            assert f"TLS certificate of 127.0.0.1:{tls_soketi.port} not trusted" in error, error
            assert "unable to get local issuer certificate" in error, error
            assert "PUSHER_CA_BUNDLE" in error, error
            # A read fails the same way and is not retried until the timeout.
            read = await run(app, instance, "channels", {"timeout": 4000})
            assert read.status == "Failed" and "not trusted" in (read.error or "")
        assert stack.service.running


async def test_ca_bundle_trusts_the_server_and_the_event_arrives(
    tls_soketi: TLSSoketi, test_ca: TestCA
) -> None:
    env = {"PUSHER_CA_BUNDLE": str(test_ca.pem)}
    with running_stack(tls_soketi, env=env) as stack:
        assert "trusting the CA certificates in PUSHER_CA_BUNDLE" in stack.service.log()
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await _instance(app)
            name = channel("tls")
            async with PusherWS(tls_soketi.ws_url(), ssl=test_ca.context()) as ws:
                assert ws.url.startswith("wss://")
                await ws.subscribe(name)
                result = await run(
                    app, instance, "trigger", {"channel": name, "name": "secure", "data": {"n": 1}}
                )
                assert result.ok, result.error
                assert (await ws.next_event(channel=name, event="secure"))["data"] == {"n": 1}
                occupied = await run(app, instance, "channel", {"channel": name})
                assert occupied.ok and occupied.outputs["occupied"] is True


async def test_certificate_for_another_name_fails_with_hostname_mismatch(
    tls_soketi: TLSSoketi, other_name_soketi: TLSSoketi, test_ca: TestCA
) -> None:
    env = {"PUSHER_CA_BUNDLE": str(test_ca.pem)}
    with running_stack(tls_soketi, env=env) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await _instance(app)
            trigger = {"channel": channel("tls"), "name": "ev", "data": {"a": 1}}
            port = other_name_soketi.port
            # Trusted CA, wrong name: by IP address, then by DNS name.
            for host, expected in (
                ("127.0.0.1", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
                ("localhost", "Hostname mismatch, certificate is not valid for 'localhost'"),
            ):
                result = await run(app, instance, "trigger", {**trigger, "host": host, "port": port})
                assert result.status == "Failed"
                error = result.error or ""
                assert f"TLS certificate of {host}:{port} does not match the host name" in error, error
                assert expected in error, error
            # The same service still reaches the server whose certificate is right.
            ok = await run(app, instance, "trigger", trigger)
            assert ok.ok, ok.error


@pytest.mark.parametrize("kind", ["missing", "not-pem", "directory"])
def test_unreadable_ca_bundle_stops_the_service_naming_the_variable(
    tls_soketi: TLSSoketi, tmp_path: Path, kind: str
) -> None:
    path = {
        "missing": tmp_path / "nowhere.pem",
        "not-pem": tmp_path / "garbage.pem",
        "directory": tmp_path,
    }[kind]
    if kind == "not-pem":
        path.write_text("not a certificate\n")
    engine = EngineProcess(env={**tls_soketi.pusher_env(), "PUSHER_CA_BUNDLE": str(path)}).start()
    service = ServiceProcess(engine)
    try:
        service.start()
        assert service.wait(20) == 2
        log = service.log()
        assert f"cannot start: PUSHER_CA_BUNDLE '{path}'" in log, log
        reason = {"missing": "No such file", "not-pem": "no usable PEM CA", "directory": "Is a directory"}
        assert reason[kind] in log, log
    finally:
        service.stop()
        engine.stop()
