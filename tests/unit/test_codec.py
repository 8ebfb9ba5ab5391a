"""Struct <-> Python conversion: every Value kind, number rules, and wire compatibility."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from google.protobuf import struct_pb2 as google_struct
from hypothesis import given, settings
from hypothesis import strategies as st

from mesg_pusher.codec import (
    Struct,
    Value,
    decode_value,
    dict_to_struct,
    encode_value,
    struct_to_dict,
)


def roundtrip(mapping: dict[str, Any]) -> dict[str, Any]:
    """Encode, serialise to bytes, parse into a fresh Struct, decode."""
    wire = dict_to_struct(mapping).SerializeToString()
    return struct_to_dict(Struct.FromString(wire))


def value_of(python: Any) -> Value:
    value = Value()
    encode_value(value, python)
    return value


# --- each kind ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("python", "kind"),
    [
        (None, "null_value"),
        (True, "bool_value"),
        (False, "bool_value"),
        (0, "number_value"),
        (1.5, "number_value"),
        ("", "string_value"),
        ("text", "string_value"),
        ({}, "struct_value"),
        ([], "list_value"),
    ],
)
def test_each_python_type_selects_its_value_kind(python: Any, kind: str) -> None:
    assert value_of(python).WhichOneof("kind") == kind


def test_bool_is_not_encoded_as_a_number() -> None:
    value = value_of(True)
    assert value.bool_value is True
    assert decode_value(value) is True
    assert decode_value(value_of(False)) is False


def test_scalars_round_trip_with_their_types() -> None:
    original = {"null": None, "yes": True, "no": False, "text": "hello", "int": 42, "neg": -7}
    decoded = roundtrip(original)
    assert decoded == original
    assert decoded["null"] is None
    assert decoded["yes"] is True and decoded["no"] is False
    assert type(decoded["int"]) is int and type(decoded["neg"]) is int


def test_nesting_round_trips() -> None:
    original = {
        "object": {"inner": {"deeper": [1, "two", None, {"x": [True, []]}]}},
        "list": [[1, 2], [], [{}], {"k": "v"}],
        "empty_object": {},
        "empty_list": [],
    }
    assert roundtrip(original) == original


def test_empty_struct_and_empty_containers_keep_their_kind() -> None:
    assert dict_to_struct({}).SerializeToString() == b""
    assert roundtrip({}) == {}
    parsed = Struct.FromString(dict_to_struct({"o": {}, "l": []}).SerializeToString())
    assert parsed.fields["o"].WhichOneof("kind") == "struct_value"
    assert parsed.fields["l"].WhichOneof("kind") == "list_value"
    assert struct_to_dict(parsed) == {"o": {}, "l": []}


def test_tuples_encode_as_lists() -> None:
    assert roundtrip({"t": (1, "a")}) == {"t": [1, "a"]}


def test_unset_value_decodes_as_none() -> None:
    assert decode_value(Value()) is None


# --- numbers -----------------------------------------------------------------------------------


def test_integral_doubles_decode_as_int() -> None:
    value = Value(number_value=6001.0)
    decoded = decode_value(value)
    assert decoded == 6001
    assert type(decoded) is int


def test_fractional_double_stays_float() -> None:
    decoded = decode_value(Value(number_value=1.5))
    assert decoded == 1.5
    assert type(decoded) is float


def test_int_travels_as_a_double() -> None:
    assert value_of(7).number_value == 7.0


@pytest.mark.parametrize("number", [2**53, -(2**53)])
def test_exact_double_boundary_decodes_as_int(number: int) -> None:
    decoded = decode_value(Value(number_value=float(number)))
    assert decoded == number
    assert type(decoded) is int


@pytest.mark.parametrize("number", [2.0**53 + 2, -(2.0**53) - 2, 1e300])
def test_integral_doubles_beyond_the_exact_range_stay_float(number: float) -> None:
    decoded = decode_value(Value(number_value=number))
    assert type(decoded) is float
    assert decoded == number


def test_negative_and_zero() -> None:
    assert roundtrip({"z": 0, "n": -3, "f": -0.25}) == {"z": 0, "n": -3, "f": -0.25}


def test_nan_and_infinities_decode_as_floats() -> None:
    decoded = roundtrip({"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
    assert type(decoded["nan"]) is float and math.isnan(decoded["nan"])
    assert decoded["inf"] == math.inf and type(decoded["inf"]) is float
    assert decoded["ninf"] == -math.inf and type(decoded["ninf"]) is float


def test_big_int_within_double_range_is_encoded_approximately() -> None:
    # The value 10**20 fits a double (not exactly); it decodes as a float, not a wrong int.
    decoded = roundtrip({"big": 10**20})
    assert decoded["big"] == 1e20
    assert type(decoded["big"]) is float


@pytest.mark.parametrize("number", [2**1024, -(2**1024), 10**400])
def test_int_that_overflows_a_double_is_a_type_error(number: int) -> None:
    with pytest.raises(TypeError, match=r"does not fit a double"):
        dict_to_struct({"n": number})


# --- strings and keys --------------------------------------------------------------------------


def test_unicode_keys_and_values_round_trip() -> None:
    original = {"clé": "valeur é", "键": "值", "emoji 🎉": ["🚀", {"ünï": "cödé"}], "": "empty key"}
    assert roundtrip(original) == original


@pytest.mark.parametrize("key", [1, None, b"bytes", ("t",)])
def test_non_string_keys_are_rejected(key: Any) -> None:
    with pytest.raises(TypeError, match=r"Struct keys must be strings, not "):
        dict_to_struct({key: 1})


def test_non_string_keys_are_rejected_when_nested() -> None:
    with pytest.raises(TypeError, match=r"Struct keys must be strings, not int"):
        dict_to_struct({"outer": [{"ok": 1}, {2: "bad"}]})


@pytest.mark.parametrize(
    ("value", "name"),
    [(b"bytes", "bytes"), ({1, 2}, "set"), (object(), "object"), (1j, "complex")],
)
def test_unsupported_types_are_rejected(value: Any, name: str) -> None:
    with pytest.raises(TypeError, match=rf"^cannot encode {name} in a Struct$"):
        dict_to_struct({"v": value})


# --- property ----------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=15,
)


def expected_after_roundtrip(value: Any) -> Any:
    """What decoding gives back: integral floats within ±2**53 become ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: expected_after_roundtrip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expected_after_roundtrip(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equality that also checks bool/int/float types (True == 1 must not pass)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=100, deadline=None, database=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_json_like_values_round_trip(mapping: dict[str, Any]) -> None:
    decoded = roundtrip(mapping)
    assert same(decoded, expected_after_roundtrip(mapping))


# --- wire compatibility with google.protobuf.Struct --------------------------------------------

SAMPLE = {
    "str": "é",
    "num": 1.5,
    "int": 6001,
    "bool": True,
    "null": None,
    "list": [1, "a", None, False, {"x": []}],
    "obj": {"nested": {"deep": "v"}},
}


def test_our_struct_parses_as_google_struct() -> None:
    wire = dict_to_struct(SAMPLE).SerializeToString()
    google = google_struct.Struct.FromString(wire)
    assert google.fields["str"].string_value == "é"
    assert google.fields["num"].number_value == 1.5
    assert google.fields["int"].number_value == 6001.0
    assert google.fields["bool"].bool_value is True
    assert google.fields["null"].WhichOneof("kind") == "null_value"
    assert (
        google.fields["list"].list_value.values[4].struct_value.fields["x"].WhichOneof("kind") == "list_value"
    )
    # google's own JSON-ish view agrees (its numbers are all floats).
    assert google_struct.Struct.FromString(wire) == google
    as_python = dict(google)
    assert as_python["str"] == "é"
    assert as_python["obj"]["nested"]["deep"] == "v"


def test_google_struct_parses_as_ours() -> None:
    google = google_struct.Struct()
    google.update(SAMPLE)
    decoded = struct_to_dict(Struct.FromString(google.SerializeToString()))
    assert same(decoded, SAMPLE)


def test_bytes_are_identical_both_ways() -> None:
    google = google_struct.Struct()
    google.update({"a": 1.0})
    ours = dict_to_struct({"a": 1})
    assert ours.SerializeToString() == google.SerializeToString()
    # Struct.fields = 1 (a map entry: key = 1, value = 2); Value.number_value = 2 (fixed64).
    entry = b"\n\x01a" + b"\x12\x09" + b"\x11" + struct.pack("<d", 1.0)
    assert ours.SerializeToString() == b"\n" + bytes([len(entry)]) + entry
