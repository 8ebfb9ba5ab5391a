"""A service's mesg.yml compiled into the ``CreateServiceRequest`` that ``mesg-cli`` sends.

The engine deploys whatever mesg.yml it is given. Each key of mesg.yml is the field of the same
name in the engine's messages (``configuration.volumesFrom``, a task's ``inputs``, a parameter's
``object``...), and each map of named items (tasks, events, dependencies, parameters) becomes a
list in file order with the map's key in the item's ``key``, as the CLI compiles it. So this
walks the messages' descriptors rather than spelling every field out; keys the messages do not
have are ignored. YAML anchors and merge keys work (PyYAML resolves them).

Refused, with the place in the file: YAML that does not parse, a section that is not a map, no
``name``, a parameter type other than String, Number, Boolean, Object or Any, a flag that is not
true or false, a list item that is not text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from mesg_local_engine._proto.mesg.api import service_pb2 as api_service_pb2
from mesg_local_engine._proto.mesg.types import service_pb2 as types_service_pb2

__all__ = ["PARAMETER_TYPES", "DefinitionError", "load_service", "service_message"]

#: The parameter types mesg.yml may declare.
PARAMETER_TYPES = ("String", "Number", "Boolean", "Object", "Any")

#: Fields the engine or the CLI fill, never mesg.yml.
_NOT_FROM_THE_FILE = frozenset({"key", "source"})


class DefinitionError(ValueError):
    """A mesg.yml that is not a service definition; the message names the file and the place."""


class _Problem(Exception):
    """A problem at a dotted place of the file, before the file's name is added."""


def load_service(path: str | os.PathLike[str]) -> api_service_pb2.CreateServiceRequest:
    """Compile the mesg.yml at ``path``; ``DefinitionError`` if it is not a valid definition."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: invalid YAML: {exc}") from exc
    request = api_service_pb2.CreateServiceRequest()
    try:
        _fill(request, document, "")
        if not request.name:
            raise _Problem('"name" is required')
    except _Problem as exc:
        raise DefinitionError(f"{path}: {exc}") from None
    # mesg-cli always sends a configuration, empty or not: the same file, the same service hash.
    request.configuration.SetInParent()
    return request


def service_message(
    request: api_service_pb2.CreateServiceRequest, service_hash: bytes
) -> types_service_pb2.Service:
    """The ``mesg.types.Service`` the engine stores for a create request."""
    return types_service_pb2.Service(
        name=request.name,
        description=request.description,
        tasks=request.tasks,
        events=request.events,
        dependencies=request.dependencies,
        configuration=request.configuration,
        repository=request.repository,
        hash=service_hash,
        sid=request.sid,
        source=request.source,
    )


def _fill(message: Message, value: Any, where: str) -> None:
    """Set ``message``'s fields from the YAML map ``value`` found at ``where``."""
    given = _mapping(value, where or "the top level")
    for field in message.DESCRIPTOR.fields:
        item = given.get(field.name)
        if item is None or field.name in _NOT_FROM_THE_FILE:
            continue
        place = f"{where}.{field.name}" if where else field.name
        target = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.is_repeated:
            for key, entry in _mapping(item, place).items():
                if not isinstance(key, str) or not key:
                    raise _Problem(f"{place}: key {key!r} must be a non-empty string")
                _fill(target.add(key=key), entry, f"{place}.{key}")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _fill(target, item, place)
        elif field.is_repeated:
            if not isinstance(item, list):
                raise _Problem(f"{place}: expected a list, got {type(item).__name__}")
            target.extend(_text(entry, f"{place}[{index}]") for index, entry in enumerate(item))
        elif field.type == FieldDescriptor.TYPE_BOOL:
            if not isinstance(item, bool):
                raise _Problem(f"{place}: expected true or false, got {item!r}")
            setattr(message, field.name, item)
        else:
            setattr(message, field.name, _text(item, place))
    if isinstance(message, types_service_pb2.Service.Parameter) and message.type not in PARAMETER_TYPES:
        raise _Problem(f"{where}.type: {given.get('type')!r} is not one of {', '.join(PARAMETER_TYPES)}")


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Problem(f"{where}: expected a map, got {type(value).__name__}")
    return value


def _text(value: Any, where: str) -> str:
    """A text field: YAML may write it as a number (``command: 8080``), not as a map or a flag."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Problem(f"{where}: expected a string, got {type(value).__name__}")
    return str(value)
