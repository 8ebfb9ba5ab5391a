"""The limits as settings: parsing, precedence, bounds, and the checks that follow them."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from pusher.crypto import encrypt

from mesg_pusher.coalesce import Coalescer
from mesg_pusher.config import (
    PusherOptions,
    PusherSettings,
    build_limits,
    build_options,
    limits_from_environment,
)
from mesg_pusher.errors import ConfigError, InputError
from mesg_pusher.limits import BATCH, CHANNEL_NAME, DATA, DEFAULT_LIMITS, Limits
from mesg_pusher.receive.settings import ReceiveSettings
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.publish import batch_events
from tests.support.http_server import Seen, json_reply

ENV = {"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "key", "PUSHER_APP_SECRET": "s3cr3t", "PUSHER_HOST": "h"}
INPUTS = {"appId": "1", "key": "key", "secret": "s3cr3t", "host": "h"}


def error(function: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises((InputError, ConfigError)) as caught:
        function(*args, **kwargs)
    return str(caught.value)


# --- parsing -----------------------------------------------------------------------------------


def test_defaults_are_pushers_multi_tenant_limits() -> None:
    limits = PusherSettings(ENV).limits({})
    assert (limits.max_data_bytes, limits.max_batch_size, limits.max_channel_name_length) == (10_240, 10, 164)
    assert limits == DEFAULT_LIMITS
    assert PusherSettings(ENV).resolve({}).limits == DEFAULT_LIMITS


def test_variables_set_the_limits() -> None:
    env = {
        **ENV,
        "PUSHER_MAX_DATA_BYTES": "102400",
        "PUSHER_MAX_BATCH_SIZE": "20",
        "PUSHER_MAX_CHANNEL_NAME_LENGTH": "200",
    }
    limits = PusherSettings(env).limits({})
    assert limits == Limits(102_400, 20, 200)
    assert PusherSettings(env).resolve({}).limits == limits


def test_inputs_beat_variables_and_numbers_arrive_as_doubles() -> None:
    env = {**ENV, "PUSHER_MAX_DATA_BYTES": "20480"}
    limits = PusherSettings(env).limits({"maxDataBytes": 65536.0, "maxBatchSize": 50.0})
    assert limits == Limits(65_536, 50, 164)
    assert PusherSettings(env).resolve({"maxDataBytes": 65536.0}).limits.max_data_bytes == 65_536


def test_empty_values_count_as_unset() -> None:
    env = {**ENV, "PUSHER_MAX_DATA_BYTES": "", "PUSHER_MAX_BATCH_SIZE": " "}
    assert PusherSettings(env).limits({"maxChannelNameLength": ""}) == DEFAULT_LIMITS


@pytest.mark.parametrize(
    ("setting", "value"),
    [(DATA, 1), (DATA, 1_048_576), (BATCH, 1), (BATCH, 100), (CHANNEL_NAME, 1), (CHANNEL_NAME, 200)],
)
def test_bounds_are_accepted(setting: Any, value: int) -> None:
    assert build_limits({setting.input: value}).value(setting) == value


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        (DATA, 0),
        (DATA, 1_048_577),
        (BATCH, 0),
        (BATCH, 101),
        (CHANNEL_NAME, 0),
        (CHANNEL_NAME, 201),
        (DATA, 1.5),
        (DATA, -1),
        (DATA, "10k"),
        (BATCH, True),
        (CHANNEL_NAME, "nan"),
    ],
)
def test_out_of_bounds_or_not_an_integer_names_input_and_variable(setting: Any, value: Any) -> None:
    assert error(build_limits, {setting.input: value}) == (
        f"input {setting.input!r} or variable {setting.variable} must be an integer "
        f"from {setting.low} to {setting.high}"
    )


def test_a_bad_limit_fails_the_execution_not_the_process() -> None:
    settings = PusherSettings({**ENV, "PUSHER_MAX_BATCH_SIZE": "1000"})
    for resolve in (settings.limits, settings.resolve):
        assert "PUSHER_MAX_BATCH_SIZE must be an integer from 1 to 100" in error(resolve, {})
    # An execution's own valid input replaces the bad variable.
    assert settings.limits({"maxBatchSize": 20}).max_batch_size == 20


def test_a_list_for_a_limit_is_an_input_error() -> None:
    assert error(PusherSettings(ENV).limits, {"maxDataBytes": [1]}) == (
        "input 'maxDataBytes' must be a single value, not a list or object"
    )


def test_limits_need_no_credentials() -> None:
    """Inputs are checked against the limits before the credentials are looked at."""
    assert PusherSettings({}).limits({"maxDataBytes": 20480}).max_data_bytes == 20_480


def test_limits_are_cached_by_inputs() -> None:
    settings = PusherSettings(ENV)
    assert settings.limits({"maxDataBytes": 2048.0}) is settings.limits({"maxDataBytes": 2048.0})


def test_options_with_other_limits_are_other_options() -> None:
    """Other limits, another SDK client and coalescing lane (whose batch size they set)."""
    assert build_options({**INPUTS, "maxBatchSize": 20}) != build_options(INPUTS)
    assert build_options({**INPUTS, "maxBatchSize": 20}).limits.max_batch_size == 20


def test_repr_shows_limits_only_when_raised() -> None:
    assert "limits" not in repr(build_options(INPUTS))
    assert repr(build_options({**INPUTS, "maxDataBytes": 20480})).endswith(
        ", limits=Limits(max_data_bytes=20480, max_batch_size=10, max_channel_name_length=164))"
    )


def test_limits_from_environment() -> None:
    assert limits_from_environment({"PUSHER_MAX_CHANNEL_NAME_LENGTH": "200"}).max_channel_name_length == 200
    assert "PUSHER_MAX_DATA_BYTES" in error(limits_from_environment, {"PUSHER_MAX_DATA_BYTES": "x"})


# --- where the limit in force came from ----------------------------------------------------------


def test_refusal_at_the_default_says_how_to_raise_it() -> None:
    limits = PusherSettings(ENV).limits({})
    assert error(check.encode_data, {"data": "x" * 10_241}, limits=limits) == (
        "input 'data' is 10241 bytes once serialised; the limit is 10240 bytes (Pusher's multi-tenant "
        "limit; a dedicated cluster or a compatible server may allow more: set input 'maxDataBytes' or "
        "PUSHER_MAX_DATA_BYTES)"
    )


def test_refusal_names_the_variable_that_set_the_limit() -> None:
    limits = PusherSettings({**ENV, "PUSHER_MAX_DATA_BYTES": "20480"}).limits({})
    assert error(check.encode_data, {"data": "x" * 20_481}, limits=limits) == (
        "input 'data' is 20481 bytes once serialised; the limit is 20480 bytes "
        "(set by variable PUSHER_MAX_DATA_BYTES)"
    )


def test_refusal_names_the_input_that_set_the_limit() -> None:
    limits = PusherSettings({**ENV, "PUSHER_MAX_DATA_BYTES": "20480"}).limits({"maxDataBytes": 4096})
    assert error(check.encode_data, {"data": "x" * 4097}, limits=limits) == (
        "input 'data' is 4097 bytes once serialised; the limit is 4096 bytes (set by input 'maxDataBytes')"
    )


# --- the checks follow the limits ----------------------------------------------------------------


def test_raised_data_limit() -> None:
    limits = Limits(max_data_bytes=51_200)
    text = "x" * 51_200
    assert check.encode_data({"data": text}, limits=limits) == text
    assert "51201 bytes" in error(check.encode_data, {"data": text + "x"}, limits=limits)


def test_lowered_data_limit() -> None:
    assert "1025 bytes" in error(check.encode_data, {"data": "é" * 512 + "x"}, limits=Limits(1024))


def test_raised_channel_name_limit_everywhere() -> None:
    limits = Limits(max_channel_name_length=200)
    name = "c" * 200
    assert check.channel_name(name, limits=limits) == name
    assert check.channel_list({"channels": [name, "b"]}, limits=limits) == [name, "b"]
    prefixed = "presence-" + "p" * 191
    assert check.channel_prefixed(prefixed, ("presence-",), "users", limits=limits) == prefixed
    assert error(check.channel_name, name + "c", limits=limits) == (
        "input 'channel' is 201 characters long; the limit is 200 characters (Pusher's limit; soketi "
        "and sockudo accept 200: set input 'maxChannelNameLength' or PUSHER_MAX_CHANNEL_NAME_LENGTH)"
    )


def test_raised_batch_limit() -> None:
    limits = Limits(max_batch_size=20)
    batch = [{"channel": "c", "name": "e", "data": str(i)} for i in range(20)]
    assert len(batch_events({"batch": batch}, limits)) == 20
    assert "input 'batch' has 21 events; the limit is 20 events" in error(
        batch_events, {"batch": [*batch, batch[0]]}, limits
    )
    assert "1 to 20 events" in error(batch_events, {"batch": []}, limits)


def test_batch_items_follow_the_raised_limits() -> None:
    limits = Limits(max_data_bytes=20_000, max_channel_name_length=200)
    events = batch_events({"batch": [{"channel": "c" * 200, "name": "e", "data": "x" * 20_000}]}, limits)
    assert events[0]["channel"] == "c" * 200
    assert "input 'batch[0].data' is 20001 bytes" in error(
        batch_events, {"batch": [{"channel": "c", "name": "e", "data": "x" * 20_001}]}, limits
    )


def test_subscribe_variable_follows_the_channel_name_limit() -> None:
    long = "l" * 190
    with pytest.raises(
        ConfigError, match="variable PUSHER_SUBSCRIBE is 190 characters long; the limit is 164"
    ):
        ReceiveSettings.from_environment({"PUSHER_SUBSCRIBE": long})
    raised = ReceiveSettings.from_environment(
        {"PUSHER_SUBSCRIBE": f"a,{long}", "PUSHER_MAX_CHANNEL_NAME_LENGTH": "200"}
    )
    assert raised.subscribe == ("a", long)


# --- encrypted channels: the limit counts what is sent ---------------------------------------------

KEY = bytes(range(32))


def envelope(channel: str, plaintext: str) -> str:
    return json.dumps(encrypt(channel, plaintext, KEY), ensure_ascii=False)


def test_encrypted_envelope_within_the_limit_passes() -> None:
    sent = envelope("private-encrypted-x", "x" * 7_000)
    assert len(sent) <= 10_240
    assert check.encrypted_data(sent, "x" * 7_000, "private-encrypted-x", limits=DEFAULT_LIMITS) == sent


def test_encrypted_envelope_over_the_limit_is_an_input_error_though_the_plaintext_fits() -> None:
    plaintext = "x" * 8_000
    assert check.encode_data({"data": plaintext}, limits=DEFAULT_LIMITS) == plaintext
    sent = envelope("private-encrypted-x", plaintext)
    message = error(check.encrypted_data, sent, plaintext, "private-encrypted-x", limits=DEFAULT_LIMITS)
    assert message.startswith(
        f"input 'data' is 8000 bytes once serialised and {len(sent)} once encrypted for "
        "'private-encrypted-x' (what Pusher receives); the limit is 10240 bytes"
    )
    assert len(sent) > 10_240
    where = error(
        check.encrypted_data, sent, plaintext, "private-encrypted-x", limits=DEFAULT_LIMITS, where="batch[1]."
    )
    assert where.startswith("input 'batch[1].data' is 8000 bytes")


def test_the_envelope_is_a_third_bigger_than_the_plaintext() -> None:
    """Why plaintext alone cannot be checked: base64 of nonce and ciphertext, in JSON."""
    sent = envelope("private-encrypted-x", "x" * 3_000)
    assert set(json.loads(sent)) == {"nonce", "ciphertext"}
    assert len(sent) == len(json.dumps({"nonce": base64.b64encode(b"n" * 24).decode(), "ciphertext": ""})) + (
        4 * -(-(3_000 + 16) // 3)
    )


# --- the coalescer's batches follow the option set's batch limit ----------------------------------


@pytest.mark.parametrize(("limit", "sizes"), [(20, [5, 20]), (3, [1] + [3] * 8), (10, [5, 10, 10])])
async def test_coalesced_batches_follow_the_batch_limit(
    http_server: Any, make_client: Any, limit: int, sizes: list[int]
) -> None:
    server = await http_server(lambda seen, index: json_reply(200, {}))
    client = make_client(server.port)
    options = PusherOptions(
        app_id="1",
        key="k",
        secret="s3cr3t",
        host="127.0.0.1",
        use_tls=False,
        port=server.port,
        limits=Limits(max_batch_size=limit),
    )
    coalescer = Coalescer()
    events = [{"channel": "c", "name": f"e{i}", "data": "{}"} for i in range(25)]
    await asyncio.gather(*(coalescer.trigger(options, client, event) for event in events))

    def count(seen: Seen) -> int:
        body = json.loads(seen.body)
        return len(body["batch"]) if seen.path.endswith("/batch_events") else len(body["channels"])

    assert sorted(count(seen) for seen in server.requests) == sizes
