"""The engine's rules for parameter values: a task's inputs and outputs, an event's data.

Checked as engines v0.16 to v0.26 check them, on the ``mesg.protobuf.Struct`` as it arrives
(a value's kind is its type: there is no integer, every number is a double):

- only declared parameters are checked; extra keys pass;
- a missing or null value is required unless the parameter is optional;
- a repeated parameter needs a list, and only its first bad item is reported;
- an Object's own parameters are checked inside it, their reasons listed in place;
- reasons come in declaration order and are joined by newlines in the engine's message.

The texts are the engine's: a service that checks its own outputs before it answers (so that
the engine does not silently fail them) must apply the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from mesg_local_engine._proto.mesg.protobuf.struct_pb2 import Struct, Value
from mesg_local_engine._proto.mesg.types.service_pb2 import Service

__all__ = ["check_data", "check_inputs", "check_outputs", "go_quote", "reasons"]

Parameter = Service.Parameter

#: Parameter type -> (the Value kind it needs, how the engine names it).
_KINDS = {
    "String": ("string_value", "a string"),
    "Number": ("number_value", "a number"),
    "Boolean": ("bool_value", "a boolean"),
    "Object": ("struct_value", "an object"),
}


def go_quote(text: str) -> str:
    """Quote like Go's ``%q`` does for printable text, as the engine's messages do."""
    return json.dumps(text, ensure_ascii=False)


def reasons(params: Iterable[Parameter], values: Struct) -> list[str]:
    """Why ``values`` do not match ``params``, in the engine's words; empty if they do."""
    found: list[str] = []
    for param in params:
        _check(param, values.fields.get(param.key), found)
    return found


def _check(param: Parameter, value: Value | None, found: list[str]) -> None:
    kind = value.WhichOneof("kind") if value is not None else None
    if value is None or kind in (None, "null_value"):
        if not param.optional:
            found.append(f"value of {go_quote(param.key)} is required")
        return
    if not param.repeated:
        _check_type(param, value, found)
    elif kind != "list_value":
        found.append(f"value of {go_quote(param.key)} is not an array")
    else:
        for item in value.list_value.values:
            if not _check_type(param, item, found):
                return  # the first bad item only


def _check_type(param: Parameter, value: Value, found: list[str]) -> bool:
    """Whether ``value`` has the parameter's type (an Object: and its parameters' values)."""
    if param.type == "Any":
        return True
    if param.type not in _KINDS:
        found.append(f"value of {go_quote(param.key)} has an invalid type ")  # the engine's text
        return False
    kind, noun = _KINDS[param.type]
    if value.WhichOneof("kind") != kind:
        found.append(f"value of {go_quote(param.key)} is not {noun}")
        return False
    if kind != "struct_value":
        return True
    nested = reasons(param.object, value.struct_value)
    found += nested
    return not nested


def _error(service: str, what: str, reasons: list[str]) -> str | None:
    return f"service {go_quote(service)} - {what} are invalid: " + "\n".join(reasons) if reasons else None


def check_inputs(service: str, task: Service.Task, inputs: Struct) -> str | None:
    """The engine's refusal of ``Execution.Create`` for these inputs, or None."""
    return _error(service, f"inputs of task {go_quote(task.key)}", reasons(task.inputs, inputs))


def check_outputs(service: str, task: Service.Task, outputs: Struct) -> str | None:
    """The error an execution is Failed with when its outputs break the task's rules, or None.

    The engine does not refuse such an ``Update``: the call succeeds and the execution fails.
    """
    return _error(service, f"outputs of task {go_quote(task.key)}", reasons(task.outputs, outputs))


def check_data(service: str, event: Service.Event, data: Struct) -> str | None:
    """The engine's refusal of ``Event.Create`` for this data (after ``create event: data``), or None."""
    return _error(service, f"data of event {go_quote(event.key)}", reasons(event.data, data))
