"""Pusher and service settings: precedence, parsing, error messages, secrets kept out of reprs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from mesg_pusher.config import (
    DEFAULT_TIMEOUT_MS,
    PusherOptions,
    PusherSettings,
    ServiceSettings,
    build_options,
    merged_environment,
)
from mesg_pusher.errors import ConfigError, InputError
from mesg_pusher.hash_text import b58

CREDENTIALS = {"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "key", "PUSHER_APP_SECRET": "s3cr3t-value"}
ENV = {**CREDENTIALS, "PUSHER_CLUSTER": "eu"}
INPUTS = {"appId": "1", "key": "key", "secret": "s3cr3t-value", "cluster": "eu"}


def settings(tmp_path: Path, environ: dict[str, str], dotenv: str | None = None) -> PusherSettings:
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    return PusherSettings(merged_environment(tmp_path, environ))


# --- precedence --------------------------------------------------------------------------------


def test_defaults_apply_when_only_required_values_are_given(tmp_path: Path) -> None:
    options = settings(tmp_path, ENV).resolve({})
    assert options == PusherOptions(
        app_id="1",
        key="key",
        secret="s3cr3t-value",
        host="api-eu.pusher.com",
        use_tls=True,
        port=None,
        proxy=None,
        timeout=DEFAULT_TIMEOUT_MS / 1000,
        keep_alive=True,
    )
    assert options.timeout == 5.0
    assert options.base_url == "https://api-eu.pusher.com:443"


def test_dotenv_file_in_cwd_is_read(tmp_path: Path) -> None:
    dotenv = "PUSHER_APP_ID=7\nPUSHER_APP_KEY=dkey\nPUSHER_APP_SECRET=dsecret\nPUSHER_CLUSTER=ap1\n"
    options = settings(tmp_path, {}, dotenv).resolve({})
    assert (options.app_id, options.key, options.secret, options.host) == (
        "7",
        "dkey",
        "dsecret",
        "api-ap1.pusher.com",
    )


def test_process_environment_beats_dotenv(tmp_path: Path) -> None:
    dotenv = "PUSHER_APP_ID=7\nPUSHER_APP_KEY=dkey\nPUSHER_APP_SECRET=dsecret\nPUSHER_CLUSTER=ap1\n"
    environ = {"PUSHER_APP_KEY": "envkey", "PUSHER_CLUSTER": "us2"}
    options = settings(tmp_path, environ, dotenv).resolve({})
    assert options.app_id == "7"  # only in .env
    assert options.key == "envkey"
    assert options.host == "api-us2.pusher.com"


def test_inputs_beat_environment_and_dotenv(tmp_path: Path) -> None:
    dotenv = "PUSHER_APP_ID=7\nPUSHER_APP_KEY=dkey\nPUSHER_APP_SECRET=dsecret\nPUSHER_CLUSTER=ap1\n"
    environ = {"PUSHER_APP_KEY": "envkey", "PUSHER_PORT": "8080"}
    options = settings(tmp_path, environ, dotenv).resolve({"key": "inputkey", "appId": "99", "port": 6001.0})
    assert (options.app_id, options.key, options.secret) == ("99", "inputkey", "dsecret")
    assert options.port == 6001


def test_merged_environment_reads_dotenv_under_process_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=from-file\nB=from-file\n")
    assert merged_environment(tmp_path, {"B": "from-env", "C": "c"}) == {
        "A": "from-file",
        "B": "from-env",
        "C": "c",
    }


def test_missing_dotenv_is_fine(tmp_path: Path) -> None:
    assert merged_environment(tmp_path, {"X": "1"}) == {"X": "1"}


def test_empty_inputs_count_as_unset(tmp_path: Path) -> None:
    options = settings(tmp_path, ENV).resolve(
        {"appId": "", "key": "  ", "secret": None, "cluster": "", "port": "", "useTLS": ""}
    )
    assert (options.app_id, options.key, options.secret) == ("1", "key", "s3cr3t-value")
    assert options.host == "api-eu.pusher.com"
    assert options.port is None
    assert options.use_tls is True


def test_empty_environment_values_count_as_unset(tmp_path: Path) -> None:
    # The engine passes mesg.yml's defaults, e.g. PUSHER_APP_ID=, as empty strings.
    environ = {
        name: ""
        for name in (
            "PUSHER_APP_ID",
            "PUSHER_APP_KEY",
            "PUSHER_APP_SECRET",
            "PUSHER_CLUSTER",
            "PUSHER_USE_TLS",
            "PUSHER_HOST",
            "PUSHER_PORT",
            "PUSHER_PROXY",
            "PUSHER_TIMEOUT",
            "PUSHER_KEEP_ALIVE",
        )
    }
    options = settings(tmp_path, environ).resolve(INPUTS)
    assert options.app_id == "1"
    assert options.port is None and options.proxy is None
    assert options.timeout == 5.0 and options.use_tls is True and options.keep_alive is True
    assert settings(tmp_path, environ).secrets == ()


def test_empty_process_variable_does_not_hide_dotenv_value(tmp_path: Path) -> None:
    dotenv = "PUSHER_APP_ID=7\nPUSHER_APP_KEY=dkey\nPUSHER_APP_SECRET=dsecret\nPUSHER_CLUSTER=ap1\n"
    options = settings(tmp_path, {"PUSHER_APP_ID": "", "PUSHER_CLUSTER": ""}, dotenv).resolve({})
    assert options.app_id == "7"
    assert options.host == "api-ap1.pusher.com"


def test_empty_dotenv_value_counts_as_unset(tmp_path: Path) -> None:
    options = settings(tmp_path, ENV, "PUSHER_PORT=\nPUSHER_TIMEOUT=\n").resolve({})
    assert options.port is None
    assert options.timeout == 5.0


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("YES", True),
        ("false", False),
        ("FALSE", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("No", False),
        (" true ", True),
        (True, True),
        (False, False),
    ],
)
def test_booleans(raw: Any, expected: bool) -> None:
    options = build_options({**INPUTS, "useTLS": raw, "keepAlive": raw})
    assert options.use_tls is expected
    assert options.keep_alive is expected


@pytest.mark.parametrize("raw", ["maybe", "2", 1, 1.0])
def test_bad_boolean_names_input_and_variable(raw: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        build_options({**INPUTS, "useTLS": raw})
    assert str(caught.value) == (
        f"input 'useTLS' or variable PUSHER_USE_TLS must be true or false (or 1/0, yes/no), not {raw!r}"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(6001.0, 6001), (6001, 6001), ("6001", 6001), (" 443 ", 443), (1, 1), (65535, 65535)],
)
def test_port(raw: Any, expected: int) -> None:
    port = build_options({**INPUTS, "port": raw}).port
    assert port == expected
    assert type(port) is int


@pytest.mark.parametrize("raw", [0, 65536, 6001.5, "abc", "6001.0", True, -1])
def test_bad_port(raw: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        build_options({**INPUTS, "port": raw})
    assert str(caught.value) == ("input 'port' or variable PUSHER_PORT must be an integer from 1 to 65535")


@pytest.mark.parametrize(
    ("raw", "seconds"), [(1500, 1.5), ("250", 0.25), (30000.0, 30.0), (1, 0.001), (600000, 600.0)]
)
def test_timeout_milliseconds_become_seconds(raw: Any, seconds: float) -> None:
    assert build_options({**INPUTS, "timeout": raw}).timeout == seconds


@pytest.mark.parametrize("raw", [0, 600001, "soon"])
def test_bad_timeout(raw: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^input 'timeout' or variable PUSHER_TIMEOUT must be "
        r"an integer from 1 to 600000$",
    ):
        build_options({**INPUTS, "timeout": raw})


def test_host_overrides_cluster() -> None:
    options = build_options({**INPUTS, "cluster": "eu", "host": "127.0.0.1", "port": 6001, "useTLS": "false"})
    assert options.host == "127.0.0.1"
    assert options.base_url == "http://127.0.0.1:6001"


def test_cluster_gives_pusher_host() -> None:
    assert build_options({**INPUTS, "cluster": "mt1"}).host == "api-mt1.pusher.com"
    assert build_options({**INPUTS, "cluster": " us3 "}).host == "api-us3.pusher.com"


def test_default_port_follows_tls() -> None:
    assert build_options({**INPUTS, "useTLS": False}).base_url == "http://api-eu.pusher.com:80"


@pytest.mark.parametrize("name", ["host", "cluster"])
def test_invalid_host_names(name: str) -> None:
    variable = {"host": "PUSHER_HOST", "cluster": "PUSHER_CLUSTER"}[name]
    with pytest.raises(ConfigError) as caught:
        build_options({**INPUTS, name: "bad host/x"})
    assert str(caught.value) == f"input {name!r} or variable {variable} is not a valid host name"


@pytest.mark.parametrize(
    ("missing", "variable"),
    [("appId", "PUSHER_APP_ID"), ("key", "PUSHER_APP_KEY"), ("secret", "PUSHER_APP_SECRET")],
)
def test_each_missing_credential_names_variable_and_input(missing: str, variable: str) -> None:
    values = {k: v for k, v in INPUTS.items() if k != missing}
    with pytest.raises(ConfigError) as caught:
        build_options(values)
    assert str(caught.value) == f"Pusher credentials missing: set {variable} (input {missing!r})"


def test_all_missing_credentials_are_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        build_options({"cluster": "eu"})
    assert str(caught.value) == (
        "Pusher credentials missing: set PUSHER_APP_ID (input 'appId'), "
        "PUSHER_APP_KEY (input 'key'), PUSHER_APP_SECRET (input 'secret')"
    )


def test_non_string_credential() -> None:
    with pytest.raises(ConfigError) as caught:
        build_options({**INPUTS, "key": 12})
    assert str(caught.value) == "input 'key' or variable PUSHER_APP_KEY must be a string"


def test_neither_cluster_nor_host() -> None:
    values = {k: v for k, v in INPUTS.items() if k != "cluster"}
    with pytest.raises(ConfigError) as caught:
        build_options(values)
    assert str(caught.value) == (
        "Pusher host missing: set PUSHER_CLUSTER (input 'cluster', e.g. eu or mt1) "
        "or PUSHER_HOST (input 'host')"
    )


@pytest.mark.parametrize("app_id", ["abc", "12a", "-1", "1.5"])
def test_non_numeric_app_id(app_id: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_options({**INPUTS, "appId": app_id})
    assert str(caught.value) == (f"input 'appId' or variable PUSHER_APP_ID must be digits, not {app_id!r}")


@pytest.mark.parametrize("proxy", ["socks5://p:1080", "proxy:3128", 5])
def test_proxy_must_be_http_url(proxy: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        build_options({**INPUTS, "proxy": proxy})
    assert str(caught.value) == ("input 'proxy' or variable PUSHER_PROXY must be an http:// or https:// URL")


@pytest.mark.parametrize(
    ("name", "value"), [("port", [6001]), ("cluster", ["eu", "us2"]), ("host", {"a": 1}), ("secret", ["x"])]
)
def test_list_or_object_for_a_scalar_input_is_an_input_error(tmp_path: Path, name: str, value: Any) -> None:
    with pytest.raises(InputError) as caught:
        settings(tmp_path, ENV).resolve({name: value})
    assert str(caught.value) == f"input {name!r} must be a single value, not a list or object"


def test_unrelated_inputs_are_ignored(tmp_path: Path) -> None:
    resolver = settings(tmp_path, ENV)
    assert resolver.resolve({"channel": "x", "data": {"a": [1]}}) is resolver.resolve({})


# --- secrets -----------------------------------------------------------------------------------

PROXY = "http://proxyuser:pr0xy-pa55@proxy.local:3128"


def test_repr_and_str_hide_secret_and_proxy_password() -> None:
    options = build_options({**INPUTS, "proxy": PROXY})
    for text in (repr(options), str(options), f"{options}", repr([options])):
        assert "s3cr3t-value" not in text
        assert "pr0xy-pa55" not in text
        assert "proxyuser" not in text
    assert repr(options).startswith(
        "PusherOptions(app_id='1', key='key', secret='***', host='api-eu.pusher.com', "
        "use_tls=True, port=None, proxy='http://***@proxy.local:3128', timeout=5.0, "
        "keep_alive=True"
    )


def test_options_secrets() -> None:
    assert build_options(INPUTS).secrets == ("s3cr3t-value",)
    # The proxy password, and the Basic token it is sent in (a proxy may echo it back).
    token = base64.b64encode(b"proxyuser:pr0xy-pa55").decode()
    assert build_options({**INPUTS, "proxy": PROXY}).secrets == (
        "s3cr3t-value",
        "pr0xy-pa55",
        token,
        "proxyuser:pr0xy-pa55",
    )
    assert build_options({**INPUTS, "proxy": "http://proxy.local:3128"}).secrets == ("s3cr3t-value",)


def test_settings_secrets_come_from_the_environment_layer(tmp_path: Path) -> None:
    resolver = settings(tmp_path, {**ENV, "PUSHER_PROXY": PROXY})
    assert resolver.secrets[:2] == ("s3cr3t-value", "pr0xy-pa55")


def test_options_are_frozen_and_hashable() -> None:
    options = build_options(INPUTS)
    with pytest.raises(AttributeError):
        options.secret = "other"  # type: ignore[misc]
    assert {options: 1}[build_options(dict(INPUTS))] == 1


# --- caching -----------------------------------------------------------------------------------


def test_resolve_caches_by_inputs(tmp_path: Path) -> None:
    resolver = settings(tmp_path, ENV)
    first = resolver.resolve({"port": 6001.0, "host": "127.0.0.1"})
    assert resolver.resolve({"host": "127.0.0.1", "port": 6001.0}) is first
    assert resolver.resolve({"host": "127.0.0.1", "port": 6002.0}) is not first
    assert resolver.resolve({"host": "127.0.0.1", "port": 6002.0}).port == 6002


def test_errors_are_not_cached(tmp_path: Path) -> None:
    resolver = settings(tmp_path, {})
    for _ in range(2):
        with pytest.raises(ConfigError, match="Pusher credentials missing"):
            resolver.resolve({})
    assert resolver.resolve(INPUTS).app_id == "1"


# --- service settings --------------------------------------------------------------------------

HASH = bytes(range(1, 33))
TOKEN = b58(HASH)
SERVICE_ENV = {"MESG_ENDPOINT": "engine:50052", "MESG_TOKEN": TOKEN}


def test_service_settings_defaults() -> None:
    service = ServiceSettings.from_environment(SERVICE_ENV)
    assert service == ServiceSettings(endpoint="engine:50052", instance_hash=HASH, token=TOKEN)
    assert (service.concurrency, service.grace_period, service.keepalive_ms, service.log_level) == (
        64,
        10.0,
        300_000,
        "INFO",
    )
    assert repr(HASH) not in repr(service)


def test_service_settings_overrides() -> None:
    service = ServiceSettings.from_environment(
        {
            **SERVICE_ENV,
            "MESG_PUSHER_CONCURRENCY": "8",
            "MESG_PUSHER_GRACE_PERIOD": "2.5",
            "MESG_PUSHER_KEEPALIVE_MS": "60000",
            "LOG_LEVEL": "debug",
        }
    )
    assert (service.concurrency, service.grace_period, service.keepalive_ms, service.log_level) == (
        8,
        2.5,
        60_000,
        "DEBUG",
    )


def test_leading_zero_bytes_in_token() -> None:
    hash_ = b"\0\0" + bytes(range(30))
    token = b58(hash_)
    assert token.startswith("11")
    assert ServiceSettings.from_environment({**SERVICE_ENV, "MESG_TOKEN": token}).instance_hash == hash_


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"MESG_ENDPOINT": "engine:50052"},
        {"MESG_TOKEN": TOKEN},
        {"MESG_ENDPOINT": "", "MESG_TOKEN": TOKEN},
        {"MESG_ENDPOINT": "e:1", "MESG_TOKEN": " "},
    ],
)
def test_missing_endpoint_or_token(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_environment(environ)
    assert str(caught.value).startswith("MESG_ENDPOINT and MESG_TOKEN must be set")


def test_token_not_base58() -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_environment({**SERVICE_ENV, "MESG_TOKEN": TOKEN[:-1] + "0"})
    assert str(caught.value) == "MESG_TOKEN is not a base58 instance hash: Invalid character '0'"


@pytest.mark.parametrize("length", [31, 33, 1])
def test_token_of_wrong_length(length: int) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_environment({**SERVICE_ENV, "MESG_TOKEN": b58(b"\x07" * length)})
    assert str(caught.value) == "MESG_TOKEN must decode to a 32-byte instance hash"


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("10000", 10000)])
def test_concurrency_bounds_accepted(raw: str, expected: int) -> None:
    environ = {**SERVICE_ENV, "MESG_PUSHER_CONCURRENCY": raw}
    assert ServiceSettings.from_environment(environ).concurrency == expected


@pytest.mark.parametrize("raw", ["0", "10001", "-5"])
def test_concurrency_out_of_bounds(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_environment({**SERVICE_ENV, "MESG_PUSHER_CONCURRENCY": raw})
    assert str(caught.value) == "MESG_PUSHER_CONCURRENCY must be from 1 to 10000"


def test_concurrency_not_a_number() -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_environment({**SERVICE_ENV, "MESG_PUSHER_CONCURRENCY": "many"})
    assert str(caught.value) == "MESG_PUSHER_CONCURRENCY must be a number, not 'many'"


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_concurrency_nan_or_infinite_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="MESG_PUSHER_CONCURRENCY"):
        ServiceSettings.from_environment({**SERVICE_ENV, "MESG_PUSHER_CONCURRENCY": raw})


@pytest.mark.parametrize("raw", ["-1", "3601"])
def test_grace_period_bounds(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceSettings.from_environment({**SERVICE_ENV, "MESG_PUSHER_GRACE_PERIOD": raw})
    assert str(caught.value) == "MESG_PUSHER_GRACE_PERIOD must be from 0 to 3600 seconds"


def test_grace_period_not_a_number() -> None:
    with pytest.raises(ConfigError, match="MESG_PUSHER_GRACE_PERIOD must be a number"):
        ServiceSettings.from_environment({**SERVICE_ENV, "MESG_PUSHER_GRACE_PERIOD": "nan"})


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, True), ("", True), ("false", False), ("NO", False), ("1", True)]
)
def test_coalescing_switch(raw: str | None, expected: bool) -> None:
    environment = dict(SERVICE_ENV) if raw is None else {**SERVICE_ENV, "PUSHER_COALESCE": raw}
    assert ServiceSettings.from_environment(environment).coalesce is expected


def test_coalescing_switch_names_its_variable() -> None:
    with pytest.raises(ConfigError, match=r"^variable PUSHER_COALESCE must be true or false"):
        ServiceSettings.from_environment({**SERVICE_ENV, "PUSHER_COALESCE": "maybe"})
