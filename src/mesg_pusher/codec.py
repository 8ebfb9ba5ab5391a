"""Conversion between ``mesg.protobuf.Struct`` and plain Python values.

Numbers travel as doubles. Integral doubles within the range a double represents exactly
(±2**53) decode to ``int``, so ``6001.0`` becomes ``6001`` and JSON sent on to Pusher reads
``1`` rather than ``1.0`` — what the JavaScript SDK an application was written against sends.
NaN and ±Infinity decode to floats as they are; validation rejects them where they matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_pusher._proto.mesg.protobuf.struct_pb2 import NULL_VALUE, ListValue, Struct, Value

_EXACT = 2**53


def _decode_number(number: float) -> float | int:
    if number.is_integer() and -_EXACT <= number <= _EXACT:
        return int(number)
    return number


def decode_value(value: Value) -> Any:
    """One ``Value`` to its Python form (``None``, bool, int/float, str, dict, list)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return _decode_number(value.number_value)
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "list_value":
        return [decode_value(item) for item in value.list_value.values]
    return None


def struct_to_dict(struct: Struct) -> dict[str, Any]:
    """A ``Struct`` to a dict of plain Python values."""
    return {key: decode_value(value) for key, value in struct.fields.items()}


def encode_value(target: Value, value: Any) -> None:
    """Write a Python value into ``target``; raises ``TypeError`` for anything not JSON-like."""
    if value is None:
        target.null_value = NULL_VALUE
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int | float):
        try:
            target.number_value = float(value)
        except OverflowError:
            raise TypeError(f"number {value} does not fit a double") from None
    elif isinstance(value, Mapping):
        fill_struct(target.struct_value, value)
    elif isinstance(value, list | tuple):
        target.list_value.SetInParent()
        values = target.list_value.values
        for item in value:
            encode_value(values.add(), item)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a Struct")


def fill_struct(target: Struct, mapping: Mapping[str, Any]) -> None:
    """Fill ``target`` (possibly a sub-message) from a mapping with string keys."""
    target.SetInParent()
    fields = target.fields
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"Struct keys must be strings, not {type(key).__name__}")
        encode_value(fields[key], value)


def dict_to_struct(mapping: Mapping[str, Any]) -> Struct:
    """A mapping of plain Python values to a new ``Struct``."""
    struct = Struct()
    fill_struct(struct, mapping)
    return struct


__all__ = [
    "ListValue",
    "Struct",
    "Value",
    "decode_value",
    "dict_to_struct",
    "encode_value",
    "fill_struct",
    "struct_to_dict",
]
