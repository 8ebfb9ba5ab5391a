"""``mesg.protobuf.Struct`` to and from plain Python, for the application side (``Application``).

The engine itself never decodes values (it checks them as they are, see ``validation``); an
application does, to send inputs and read outputs. Numbers travel as doubles: an integral one
within ±2**53 reads back as ``int``, as a JavaScript application would print it (``6001``, not
``6001.0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_local_engine._proto.mesg.protobuf.struct_pb2 import NULL_VALUE, Struct, Value

__all__ = ["dict_to_struct", "struct_to_dict", "value_to_python"]

_EXACT = 2**53


def value_to_python(value: Value) -> Any:
    """A ``Value`` as ``None``, bool, int or float, str, dict or list."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [value_to_python(item) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) <= _EXACT else number
    return getattr(value, kind) if kind and kind != "null_value" else None


def struct_to_dict(struct: Struct) -> dict[str, Any]:
    return {key: value_to_python(value) for key, value in struct.fields.items()}


def dict_to_struct(mapping: Mapping[str, Any]) -> Struct:
    """A new ``Struct``; ``TypeError`` for a value JSON could not hold."""
    struct = Struct()
    _fill(struct, mapping)
    return struct


def _fill(struct: Struct, mapping: Mapping[str, Any]) -> None:
    for key, item in mapping.items():
        _set(struct.fields[key], item)


def _set(target: Value, item: Any) -> None:
    match item:
        case None:
            target.null_value = NULL_VALUE
        case bool():
            target.bool_value = item
        case int() | float():
            try:
                target.number_value = item
            except OverflowError:
                raise TypeError(f"number {item} does not fit a double") from None
        case str():
            target.string_value = item
        case Mapping():
            target.struct_value.SetInParent()
            _fill(target.struct_value, item)
        case list() | tuple():
            target.list_value.SetInParent()
            for element in item:
                _set(target.list_value.values.add(), element)
        case _:
            raise TypeError(f"cannot send a {type(item).__name__} as a Struct value")
