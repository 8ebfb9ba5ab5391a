"""Which engine generation the variables point to, and the errors when they point nowhere."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesg_pusher.cli import run_service
from mesg_pusher.config import ServiceSettings
from mesg_pusher.engine import EngineIdentity, connect
from mesg_pusher.errors import ConfigError
from mesg_pusher.hash_text import b58

INSTANCE, RUNNER, SERVICE, ENV = (bytes([n]) * 32 for n in (1, 2, 3, 4))
SIGNATURE = "c2lnbmVkIGJ5IHRoZSBlbmdpbmUncyBrZXkgLSBub3QgdG8gYmUgbG9nZ2Vk"
G1 = {"MESG_ENDPOINT": "engine:50052", "MESG_TOKEN": b58(INSTANCE)}
G2 = {
    "MESG_ENDPOINT": "engine:50052",
    "MESG_INSTANCE_HASH": b58(INSTANCE),
    "MESG_RUNNER_HASH": b58(RUNNER),
}
G3 = {
    **G2,
    "MESG_SERVICE_HASH": b58(SERVICE),
    "MESG_ENV_HASH": b58(ENV),
    "MESG_REGISTER_SIGNATURE": SIGNATURE,
}


def test_each_generation_is_detected_from_what_its_engine_sets() -> None:
    assert EngineIdentity.from_env(G1) == EngineIdentity("g1", "engine:50052", instance_hash=INSTANCE)
    assert EngineIdentity.from_env(G2) == EngineIdentity(
        "g2", "engine:50052", instance_hash=INSTANCE, runner_hash=RUNNER
    )
    assert EngineIdentity.from_env(G3) == EngineIdentity(
        "g3",
        "engine:50052",
        instance_hash=INSTANCE,
        runner_hash=RUNNER,
        service_hash=SERVICE,
        env_hash=ENV,
        signature=SIGNATURE,
    )


def test_the_signature_decides_over_the_runner_hash_and_the_runner_hash_over_the_token() -> None:
    assert EngineIdentity.from_env({**G1, **G3}).generation == "g3"
    assert EngineIdentity.from_env({**G1, **G2}).generation == "g2"
    # Empty counts as unset: the engine passes mesg.yml's empty defaults through.
    assert EngineIdentity.from_env({**G1, **G2, "MESG_RUNNER_HASH": " "}).generation == "g1"


def test_g3_needs_only_what_register_takes() -> None:
    bare = {k: v for k, v in G3.items() if k not in ("MESG_INSTANCE_HASH", "MESG_RUNNER_HASH")}
    identity = EngineIdentity.from_env(bare)
    assert (identity.generation, identity.instance_hash, identity.runner) == ("g3", None, "unknown")


@pytest.mark.parametrize(
    ("forced", "expected"), [("g1", "g1"), ("G2", "g2"), (" g3 ", "g3")], ids=["g1", "G2", "spaces"]
)
def test_mesg_pusher_engine_forces_a_generation(forced: str, expected: str) -> None:
    environ = {**G1, **G3, "MESG_PUSHER_ENGINE": forced}
    assert EngineIdentity.from_env(environ).generation == expected


def test_a_forced_generation_still_needs_its_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        EngineIdentity.from_env({**G2, "MESG_PUSHER_ENGINE": "g3"})
    assert str(caught.value) == (
        "engine v0.21 to v0.26 (MESG_PUSHER_ENGINE=g3) sets MESG_ENDPOINT, MESG_SERVICE_HASH, "
        "MESG_ENV_HASH and MESG_REGISTER_SIGNATURE; missing: MESG_SERVICE_HASH, MESG_ENV_HASH, "
        "MESG_REGISTER_SIGNATURE"
    )
    with pytest.raises(ConfigError, match=r"^MESG_PUSHER_ENGINE must be g1, g2 or g3 .*not 'v0.21'"):
        EngineIdentity.from_env({**G3, "MESG_PUSHER_ENGINE": "v0.21"})


def test_nothing_set_names_every_generations_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        EngineIdentity.from_env({"MESG_ENDPOINT": "engine:50052"})
    message = str(caught.value)
    assert message.startswith("MESG_ENDPOINT and MESG_TOKEN must be set (engine v0.16)")
    for variable in ("MESG_RUNNER_HASH", "MESG_INSTANCE_HASH", "MESG_REGISTER_SIGNATURE", "MESG_ENV_HASH"):
        assert variable in message


@pytest.mark.parametrize(
    ("drop", "generation", "missing"),
    [
        ("MESG_INSTANCE_HASH", "engine v0.17 to v0.20 (MESG_RUNNER_HASH is set)", "MESG_INSTANCE_HASH"),
        ("MESG_ENDPOINT", "engine v0.17 to v0.20 (MESG_RUNNER_HASH is set)", "MESG_ENDPOINT"),
    ],
)
def test_an_incomplete_g2_set_names_what_is_missing(drop: str, generation: str, missing: str) -> None:
    environ = {k: v for k, v in G2.items() if k != drop}
    with pytest.raises(ConfigError) as caught:
        EngineIdentity.from_env(environ)
    assert str(caught.value).startswith(generation)
    assert str(caught.value).endswith(f"missing: {missing}")


def test_an_incomplete_g3_set_is_not_taken_for_g2() -> None:
    environ = {k: v for k, v in G3.items() if k != "MESG_ENV_HASH"}
    with pytest.raises(ConfigError, match=r"\(MESG_REGISTER_SIGNATURE is set\).*missing: MESG_ENV_HASH$"):
        EngineIdentity.from_env(environ)


def test_token_and_instance_hash_naming_different_instances_is_contradictory() -> None:
    environ = {**G2, "MESG_TOKEN": b58(bytes([9]) * 32)}
    with pytest.raises(ConfigError, match="MESG_TOKEN and MESG_INSTANCE_HASH name different instances"):
        EngineIdentity.from_env(environ)
    assert EngineIdentity.from_env({**G2, "MESG_TOKEN": G2["MESG_INSTANCE_HASH"]}).generation == "g2"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MESG_RUNNER_HASH",
            "0OIl",
            "MESG_RUNNER_HASH is not a base58 runner hash: Invalid character '0'",
        ),
        (
            "MESG_INSTANCE_HASH",
            b58(b"\x07" * 31),
            "MESG_INSTANCE_HASH must decode to a 32-byte instance hash",
        ),
        (
            "MESG_SERVICE_HASH",
            b58(b"\x07" * 33),
            "MESG_SERVICE_HASH must decode to a 32-byte service hash",
        ),
        ("MESG_ENV_HASH", "abc!", "MESG_ENV_HASH is not a base58 env hash: Invalid character '!'"),
    ],
)
def test_malformed_hashes_name_their_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EngineIdentity.from_env({**G3, variable: value})
    assert str(caught.value) == message


async def test_the_signature_never_shows() -> None:
    identity = EngineIdentity.from_env(G3)
    assert SIGNATURE not in repr(identity)
    assert "signature='***'" in repr(identity)
    assert b58(RUNNER) in repr(identity)
    settings = ServiceSettings.from_environment(G3)
    assert SIGNATURE not in repr(settings)
    assert settings.secrets == (SIGNATURE,)
    client = connect(identity)
    try:
        assert SIGNATURE not in repr(client)
    finally:
        await client.close()


def test_service_settings_carry_the_identity() -> None:
    g1 = ServiceSettings.from_environment(G1)
    assert (g1.identity.generation, g1.token, g1.instance_hash) == ("g1", G1["MESG_TOKEN"], INSTANCE)
    assert g1.secrets == ()
    g2 = ServiceSettings.from_environment(G2)
    assert (g2.identity.generation, g2.identity.runner_hash, g2.token) == ("g2", RUNNER, "")
    # Built by hand from a token (as tests and tools do), settings stand for a G1 engine.
    by_hand = ServiceSettings(endpoint="e:1", instance_hash=INSTANCE, token=G1["MESG_TOKEN"])
    assert by_hand.identity == EngineIdentity("g1", "e:1", instance_hash=INSTANCE)


@pytest.mark.parametrize(("environ", "adapter"), [(G1, "G1Client"), (G2, "G2Client"), (G3, "G3Client")])
async def test_connect_picks_the_adapter_of_the_generation(environ: dict[str, str], adapter: str) -> None:
    engine = connect(EngineIdentity.from_env(environ))
    try:
        assert type(engine).__name__ == adapter
        assert engine.generation == EngineIdentity.from_env(environ).generation
        assert engine.endpoint == "engine:50052"
    finally:
        await engine.close()


@pytest.mark.parametrize("signature", ["abé+", "a\nb==", "not base64", "YWJj="])
def test_a_signature_that_is_not_base64_stops_the_service_without_showing_it(signature: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EngineIdentity.from_env({**G3, "MESG_REGISTER_SIGNATURE": signature})
    assert str(caught.value) == (
        "MESG_REGISTER_SIGNATURE is not base64 (the engine sets it as the base64 of a signature)"
    )


@pytest.fixture
def service_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """An empty working directory and no MESG_* variables; the root logger restored after."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("MESG_", "PUSHER_")):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield monkeypatch
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_service_does_not_start_on_an_incomplete_set_and_says_why(
    service_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in G3.items():
        if name != "MESG_ENV_HASH":
            service_environment.setenv(name, value)
    assert run_service() == 2
    log = capsys.readouterr().err
    assert "cannot start: engine v0.21 to v0.26 (MESG_REGISTER_SIGNATURE is set)" in log, log
    assert log.rstrip().endswith("missing: MESG_ENV_HASH"), log
    assert SIGNATURE not in log and "Traceback" not in log
