"""Input checks against Pusher's limits, and the messages that name the faulty input."""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Any

import pytest

from mesg_pusher.errors import InputError
from mesg_pusher.limits import DEFAULT_LIMITS
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.publish import batch_events as batch_events_within

# The checks at Pusher's multi-tenant limits (the defaults); raised limits: test_limits.py.
encode_data = partial(check.encode_data, limits=DEFAULT_LIMITS)
channel_name = partial(check.channel_name, limits=DEFAULT_LIMITS)
channel_list = partial(check.channel_list, limits=DEFAULT_LIMITS)
DATA_LIMIT = (
    "the limit is 10240 bytes (Pusher's multi-tenant limit; a dedicated cluster or a compatible "
    "server may allow more: set input 'maxDataBytes' or PUSHER_MAX_DATA_BYTES)"
)
BATCH_LIMIT = (
    "the limit is 10 events (Pusher's multi-tenant limit; a dedicated cluster or a compatible "
    "server may allow more: set input 'maxBatchSize' or PUSHER_MAX_BATCH_SIZE)"
)
CHANNEL_LIMIT = (
    "the limit is 164 characters (Pusher's limit; soketi and sockudo accept 200: set input "
    "'maxChannelNameLength' or PUSHER_MAX_CHANNEL_NAME_LENGTH)"
)


def batch_events(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return batch_events_within(inputs, DEFAULT_LIMITS)


def error(function: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InputError) as caught:
        function(*args, **kwargs)
    return str(caught.value)


# --- data --------------------------------------------------------------------------------------


def test_string_data_is_sent_as_is() -> None:
    assert encode_data({"data": '{"already": "json"}'}) == '{"already": "json"}'
    assert encode_data({"data": "plain"}) == "plain"


def test_objects_are_serialised_compactly_like_json_stringify() -> None:
    assert encode_data({"data": {"a": 1, "b": "é"}}) == '{"a":1,"b":"é"}'
    assert encode_data({"data": [1, 2.5, None, True, {"x": []}]}) == ('[1,2.5,null,true,{"x":[]}]')
    assert encode_data({"data": 3}) == "3"
    assert encode_data({"data": False}) == "false"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"x": [math.nan]}])
def test_nan_and_infinity_are_refused(bad: Any) -> None:
    assert error(encode_data, {"data": bad}) == (
        "input 'data' contains NaN or Infinity, which JSON cannot carry"
    )


def test_null_or_missing_data_is_refused() -> None:
    message = "input 'data' is required (an object or a string)"
    assert error(encode_data, {"data": None}) == message
    assert error(encode_data, {}) == message


def test_data_of_exactly_10240_bytes_is_accepted() -> None:
    text = "x" * 10_240
    assert encode_data({"data": text}) == text


def test_data_of_10241_bytes_is_refused() -> None:
    assert error(encode_data, {"data": "x" * 10_241}) == (
        "input 'data' is 10241 bytes once serialised; " + DATA_LIMIT
    )


def test_multibyte_characters_count_in_bytes() -> None:
    assert encode_data({"data": "é" * 5_120}) == "é" * 5_120  # 10240 bytes
    assert error(encode_data, {"data": "é" * 5_120 + "x"}) == (
        "input 'data' is 10241 bytes once serialised; " + DATA_LIMIT
    )
    assert error(encode_data, {"data": "🎉" * 2_561}) == (
        "input 'data' is 10244 bytes once serialised; " + DATA_LIMIT
    )


def test_object_size_is_counted_after_serialisation() -> None:
    # {"k":"...."} adds 8 bytes of JSON around the value.
    fits = {"k": "x" * (10_240 - 8)}
    assert len(encode_data({"data": fits}).encode()) == 10_240
    over = {"k": "é" * ((10_240 - 8) // 2) + "x"}
    assert error(encode_data, {"data": over}) == (
        "input 'data' is 10241 bytes once serialised; " + DATA_LIMIT
    )


def test_data_error_names_a_batch_item() -> None:
    assert error(encode_data, {"data": None}, where="batch[3].") == (
        "input 'batch[3].data' is required (an object or a string)"
    )


# --- channels ----------------------------------------------------------------------------------


def test_one_channel() -> None:
    assert channel_list({"channel": "my-channel"}) == ["my-channel"]
    assert channel_list({"channel": "a", "channels": []}) == ["a"]
    assert channel_list({"channel": "", "channels": ["a", "b"]}) == ["a", "b"]


def test_up_to_100_channels() -> None:
    names = [f"c{i}" for i in range(100)]
    assert channel_list({"channels": names}) == names


def test_more_than_100_channels() -> None:
    assert error(channel_list, {"channels": [f"c{i}" for i in range(101)]}) == (
        "input 'channels' has 101 channels; Pusher allows 100"
    )


def test_channel_and_channels_both() -> None:
    assert error(channel_list, {"channel": "a", "channels": ["b"]}) == (
        "give either input 'channel' or input 'channels', not both"
    )


@pytest.mark.parametrize("inputs", [{}, {"channel": "", "channels": []}, {"channel": None}])
def test_channel_and_channels_neither(inputs: dict[str, Any]) -> None:
    assert error(channel_list, inputs) == (
        "input 'channel' (a name) or 'channels' (a list of names) is required"
    )


def test_channels_must_be_a_list() -> None:
    assert error(channel_list, {"channels": "a,b"}) == (
        "input 'channels' must be a list of strings, not a string"
    )
    assert error(channel_list, {"channels": {"a": 1}}) == (
        "input 'channels' must be a list of strings, not an object"
    )


def test_duplicate_channels() -> None:
    assert error(channel_list, {"channels": ["a", "b", "a"]}) == (
        "input 'channels' lists a channel more than once"
    )


def test_bad_item_in_channels_is_named_by_index() -> None:
    assert error(channel_list, {"channels": ["ok", 5]}) == (
        "input 'channels[1]' must be a non-empty string, not a number"
    )
    assert error(channel_list, {"channels": ["ok", "ok2", "bad name"]}) == (
        "input 'channels[2]' 'bad name' contains ' '; channel names may only contain "
        "A-Z a-z 0-9 and _ - = @ , . ;"
    )


def test_every_allowed_channel_character() -> None:
    name = "AZaz09_-=@,.;"
    assert channel_name(name) == name
    assert channel_name("private-encrypted-x") == "private-encrypted-x"


def test_channel_name_164_ok_165_fails() -> None:
    assert channel_name("c" * 164) == "c" * 164
    assert error(channel_name, "c" * 165) == ("input 'channel' is 165 characters long; " + CHANNEL_LIMIT)


@pytest.mark.parametrize(
    ("name", "bad"),
    [("a b", "' '"), ("é!", "'!é'"), ("a/b#c", "'#/'"), ("tab\there", "'\\t'")],
)
def test_channel_charset(name: str, bad: str) -> None:
    assert error(channel_name, name) == (
        f"input 'channel' {name!r} contains {bad}; channel names may only contain "
        "A-Z a-z 0-9 and _ - = @ , . ;"
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("", "a string"),
        (None, "null"),
        (3, "a number"),
        (True, "a boolean"),
        (["a"], "a list"),
        ({}, "an object"),
    ],
)
def test_channel_must_be_a_non_empty_string(value: Any, kind: str) -> None:
    assert error(channel_name, value) == (f"input 'channel' must be a non-empty string, not {kind}")


def test_channel_with_trailing_newline_is_refused() -> None:
    with pytest.raises(InputError, match="contains"):
        channel_name("abc\n")


# --- event name --------------------------------------------------------------------------------


def test_event_name_200_ok_201_fails() -> None:
    assert check.event_name({"name": "e" * 200}) == "e" * 200
    assert error(check.event_name, {"name": "e" * 201}) == (
        "input 'name' is 201 characters long; Pusher allows 200"
    )


def test_event_name_required_and_string() -> None:
    assert error(check.event_name, {}) == "input 'name' is required"
    assert error(check.event_name, {"name": ""}) == "input 'name' is required"
    assert error(check.event_name, {"name": 5}) == "input 'name' must be a string, not a number"


# --- socket id ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["123.456", "1.2", "0.0"])
def test_socket_id_digits_dot_digits(value: str) -> None:
    assert check.socket_id({"socket_id": value}) == value


def test_socket_id_optional() -> None:
    assert check.socket_id({}) is None
    assert check.socket_id({"socket_id": ""}) is None
    assert check.socket_id({"socket_id": None}) is None


@pytest.mark.parametrize("value", ["123", "123.", ".456", "1.2.3", "a.b", "12 .34", "1:2"])
def test_socket_id_malformed(value: str) -> None:
    assert error(check.socket_id, {"socket_id": value}) == (
        f"input 'socket_id' must look like 123.456 (the client's socket_id), not {value!r}"
    )


def test_socket_id_not_a_string() -> None:
    assert error(check.socket_id, {"socket_id": 1.5}) == ("input 'socket_id' must be a string, not a number")


def test_socket_id_with_trailing_newline_is_refused() -> None:
    with pytest.raises(InputError):
        check.socket_id({"socket_id": "1.2\n"})


# --- batch -------------------------------------------------------------------------------------


def item(index: int = 0, **extra: Any) -> dict[str, Any]:
    return {"channel": f"ch{index}", "name": f"ev{index}", "data": {"i": index}, **extra}


def test_batch_events_are_encoded() -> None:
    events = batch_events({"batch": [item(0), item(1, socket_id="1.2", data="raw")]})
    assert events == [
        {"channel": "ch0", "name": "ev0", "data": '{"i":0}'},
        {"channel": "ch1", "name": "ev1", "data": "raw", "socket_id": "1.2"},
    ]


def test_batch_of_10_ok() -> None:
    assert len(batch_events({"batch": [item(i) for i in range(10)]})) == 10


def test_batch_of_11_fails() -> None:
    assert error(batch_events, {"batch": [item(i) for i in range(11)]}) == (
        "input 'batch' has 11 events; " + BATCH_LIMIT
    )


@pytest.mark.parametrize("batch", [None, [], {"channel": "a"}, "events"])
def test_batch_must_be_a_non_empty_list(batch: Any) -> None:
    assert error(batch_events, {"batch": batch}) == (
        "input 'batch' must be a list of 1 to 10 events {channel, name, data}"
    )


@pytest.mark.parametrize("bad", ["event", 1, None, ["x"]])
def test_batch_items_must_be_objects(bad: Any) -> None:
    assert error(batch_events, {"batch": [item(0), bad]}) == (
        "input 'batch[1]' must be an object {channel, name, data}"
    )


def test_batch_item_errors_name_the_item() -> None:
    def broken(**changes: Any) -> dict[str, Any]:
        return {"batch": [item(0), item(1), {**item(2), **changes}]}

    without_name = {"batch": [item(0), item(1), {"channel": "c", "data": "d"}]}
    assert error(batch_events, without_name) == "input 'batch[2].name' is required"
    assert error(batch_events, broken(name="n" * 201)) == (
        "input 'batch[2].name' is 201 characters long; Pusher allows 200"
    )
    assert error(batch_events, broken(channel=None)) == (
        "input 'batch[2].channel' must be a non-empty string, not null"
    )
    assert error(batch_events, broken(channel="no spaces")) == (
        "input 'batch[2].channel' 'no spaces' contains ' '; channel names may only contain "
        "A-Z a-z 0-9 and _ - = @ , . ;"
    )
    assert error(batch_events, broken(data=None)) == (
        "input 'batch[2].data' is required (an object or a string)"
    )
    assert error(batch_events, broken(data="x" * 10_241)) == (
        "input 'batch[2].data' is 10241 bytes once serialised; " + DATA_LIMIT
    )
    assert error(batch_events, broken(socket_id="nope")) == (
        "input 'batch[2].socket_id' must look like 123.456 (the client's socket_id), not 'nope'"
    )


# --- params ------------------------------------------------------------------------------------

ALLOWED = ("filter_by_prefix", "info")


def test_params_absent() -> None:
    assert check.params({}, ALLOWED) == {}


def test_params_strings_and_lists() -> None:
    value = {"filter_by_prefix": "presence-", "info": ["user_count", "subscription_count"]}
    assert check.params({"params": value}, ALLOWED) == {
        "filter_by_prefix": "presence-",
        "info": "user_count,subscription_count",
    }


def test_params_empty_values_are_dropped() -> None:
    assert check.params({"params": {"info": "", "filter_by_prefix": None}}, ALLOWED) == {}


def test_params_unknown_keys() -> None:
    assert error(check.params, {"params": {"zeta": "1", "alpha": "2", "info": "x"}}, ALLOWED) == (
        "input 'params' has unknown key(s) 'alpha', 'zeta'; allowed: filter_by_prefix, info"
    )


@pytest.mark.parametrize(
    ("value", "kind"), [(1, "a number"), (True, "a boolean"), ({"a": "b"}, "an object"), ([1], "a list")]
)
def test_params_non_string_values(value: Any, kind: str) -> None:
    assert error(check.params, {"params": {"info": value}}, ALLOWED) == (
        f"input 'params.info' must be a string, not {kind}"
    )


def test_params_must_be_an_object() -> None:
    assert error(check.params, {"params": ["info"]}, ALLOWED) == (
        "input 'params' must be an object, not a list"
    )


# --- strings -----------------------------------------------------------------------------------


def test_optional_string() -> None:
    assert check.optional_string({"k": ""}, "k") is None
    assert check.optional_string({}, "k") is None
    assert check.optional_string({"k": "v"}, "k") == "v"
    assert error(check.optional_string, {"k": []}, "k") == "input 'k' must be a string, not a list"


def test_encoded_data_is_what_json_would_parse_back() -> None:
    data = {"nested": {"list": [1, "two", None]}, "unicode": "日本"}
    assert json.loads(encode_data({"data": data})) == data
