"""The service definition (mesg.yml) and the engine's rules for parameter values."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

logger = logging.getLogger(__name__)

__all__ = [
    "PARAMETER_TYPES",
    "Configuration",
    "Dependency",
    "EventDefinition",
    "Parameter",
    "ServiceDefinition",
    "TaskDefinition",
    "check_event_data",
    "check_task_inputs",
    "check_task_outputs",
    "go_quote",
    "load_definition",
    "locate_definition",
    "validate_parameters",
]

#: The parameter types the MESG CLI accepts in mesg.yml.
PARAMETER_TYPES = ("String", "Number", "Boolean", "Object", "Any")


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Parameter:
    """One declared input, output or event-data field; ``object`` holds an Object's fields."""

    key: str
    name: str = ""
    description: str = ""
    type: str = "String"
    optional: bool = False
    repeated: bool = False
    object: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class TaskDefinition:
    """A task as the engine knows it: what it accepts and what it must answer."""

    key: str
    name: str = ""
    description: str = ""
    inputs: tuple[Parameter, ...] = ()
    outputs: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class EventDefinition:
    """An event the service may emit, with the shape of its data."""

    key: str
    name: str = ""
    description: str = ""
    data: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class Configuration:
    """The service container's configuration; ``env`` holds the ``K=V`` defaults."""

    env: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    command: str = ""


@dataclass(frozen=True)
class Dependency:
    """A side container the engine starts next to the service."""

    key: str
    image: str = ""
    volumes: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceDefinition:
    """A parsed mesg.yml; the mappings are read-only and keep the file's order."""

    name: str
    sid: str = ""
    description: str = ""
    repository: str = ""
    configuration: Configuration = field(default_factory=Configuration)
    tasks: Mapping[str, TaskDefinition] = field(default_factory=_empty)
    events: Mapping[str, EventDefinition] = field(default_factory=_empty)
    dependencies: Mapping[str, Dependency] = field(default_factory=_empty)


# --- locating and loading -------------------------------------------------------------------


def locate_definition(cwd: Path | None = None) -> Path:
    """Return ``./mesg.yml`` when the working directory has one, else the packaged copy.

    A developer running from a checkout edits the file at the root; an installed service
    has only the copy shipped inside the package.
    """
    candidate = (Path.cwd() if cwd is None else cwd) / "mesg.yml"
    if candidate.is_file():
        return candidate
    return Path(__file__).with_name("mesg.yml")


def load_definition(path: Path | None = None) -> ServiceDefinition:
    """Parse a mesg.yml (anchors and merge keys allowed) as the MESG CLI compiles it.

    Raises ``ValueError`` naming the file and the offending place when the file is not a
    valid service definition, so a typo in mesg.yml fails at start-up, not at the first task.
    """
    path = locate_definition() if path is None else path
    text = Path(path).read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    try:
        return _service(document)
    except _DefinitionError as exc:
        raise ValueError(f"{path}: {exc}") from None


class _DefinitionError(Exception):
    """A structural problem in mesg.yml, with the dotted place where it was found."""


def _service(document: Any) -> ServiceDefinition:
    top = _mapping(document, "the top level")
    name = _string(top.get("name"), "name")
    if not name:
        raise _DefinitionError('"name" is required')
    return ServiceDefinition(
        name=name,
        sid=_string(top.get("sid"), "sid"),
        description=_string(top.get("description"), "description"),
        repository=_string(top.get("repository"), "repository"),
        configuration=_configuration(top.get("configuration"), "configuration"),
        tasks=_keyed(top.get("tasks"), "tasks", _task),
        events=_keyed(top.get("events"), "events", _event),
        dependencies=_keyed(top.get("dependencies"), "dependencies", _dependency),
    )


def _configuration(value: Any, where: str) -> Configuration:
    config = _mapping(value, where)
    return Configuration(
        env=_strings(config.get("env"), f"{where}.env"),
        ports=_strings(config.get("ports"), f"{where}.ports"),
        volumes=_strings(config.get("volumes"), f"{where}.volumes"),
        volumes_from=_strings(config.get("volumesFrom"), f"{where}.volumesFrom"),
        args=_strings(config.get("args"), f"{where}.args"),
        command=_string(config.get("command"), f"{where}.command"),
    )


def _dependency(key: str, value: Any, where: str) -> Dependency:
    dep = _mapping(value, where)
    return Dependency(
        key=key,
        image=_string(dep.get("image"), f"{where}.image"),
        volumes=_strings(dep.get("volumes"), f"{where}.volumes"),
        volumes_from=_strings(dep.get("volumesFrom"), f"{where}.volumesFrom"),
        ports=_strings(dep.get("ports"), f"{where}.ports"),
        command=_string(dep.get("command"), f"{where}.command"),
        args=_strings(dep.get("args"), f"{where}.args"),
        env=_strings(dep.get("env"), f"{where}.env"),
    )


def _task(key: str, value: Any, where: str) -> TaskDefinition:
    task = _mapping(value, where)
    return TaskDefinition(
        key=key,
        name=_string(task.get("name"), f"{where}.name"),
        description=_string(task.get("description"), f"{where}.description"),
        inputs=_parameters(task.get("inputs"), f"{where}.inputs"),
        outputs=_parameters(task.get("outputs"), f"{where}.outputs"),
    )


def _event(key: str, value: Any, where: str) -> EventDefinition:
    event = _mapping(value, where)
    return EventDefinition(
        key=key,
        name=_string(event.get("name"), f"{where}.name"),
        description=_string(event.get("description"), f"{where}.description"),
        data=_parameters(event.get("data"), f"{where}.data"),
    )


def _parameters(value: Any, where: str) -> tuple[Parameter, ...]:
    return tuple(_keyed(value, where, _parameter).values())


def _parameter(key: str, value: Any, where: str) -> Parameter:
    param = _mapping(value, where)
    kind = param.get("type")
    if kind not in PARAMETER_TYPES:
        raise _DefinitionError(f"{where}.type: {kind!r} is not one of {', '.join(PARAMETER_TYPES)}")
    return Parameter(
        key=key,
        name=_string(param.get("name"), f"{where}.name"),
        description=_string(param.get("description"), f"{where}.description"),
        type=kind,
        optional=_bool(param.get("optional"), f"{where}.optional"),
        repeated=_bool(param.get("repeated"), f"{where}.repeated"),
        object=_parameters(param.get("object"), f"{where}.object"),
    )


def _keyed(value: Any, where: str, build: Any) -> Mapping[str, Any]:
    """Turn a YAML map into a read-only mapping of built items, storing each map key."""
    items = _mapping(value, where)
    built: dict[str, Any] = {}
    for key, item in items.items():
        if not isinstance(key, str) or not key:
            raise _DefinitionError(f"{where}: key {key!r} must be a non-empty string")
        built[key] = build(key, item, f"{where}.{key}")
    return MappingProxyType(built)


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _DefinitionError(f"{where}: expected a map, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _DefinitionError(f"{where}: expected a string, got {type(value).__name__}")
    return str(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _DefinitionError(f"{where}: expected a list, got {type(value).__name__}")
    return tuple(_string(item, f"{where}[{index}]") for index, item in enumerate(value))


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _DefinitionError(f"{where}: expected true or false, got {value!r}")
    return value


# --- the engine's validation rules ----------------------------------------------------------


def validate_parameters(params: Sequence[Parameter], values: Mapping[str, Any]) -> list[str]:
    """Return the engine's reasons why ``values`` do not match ``params`` (empty if they do).

    Mirrors engine v0.16: only declared parameters are checked (extra keys pass), reasons
    come in parameter order, a repeated parameter reports its first bad item only, and an
    Object's nested reasons are listed in place. ``values`` are plain Python as decoded from
    a protobuf Struct, where every number is a float; a bool is not a Number. An absent key
    and a ``None`` value both count as missing.
    """
    reasons: list[str] = []
    for param in params:
        _validate(param, values.get(param.key), reasons)
    return reasons


def _validate(param: Parameter, value: Any, reasons: list[str]) -> None:
    if value is None:
        if not param.optional:
            reasons.append(f"value of {_quote(param.key)} is required")
        return
    if not param.repeated:
        _validate_type(param, value, reasons)
        return
    if not isinstance(value, list | tuple):
        reasons.append(f"value of {_quote(param.key)} is not an array")
        return
    for item in value:
        before = len(reasons)
        _validate_type(param, item, reasons)
        if len(reasons) > before:
            return


def _validate_type(param: Parameter, value: Any, reasons: list[str]) -> None:
    kind = param.type
    if kind == "String":
        if not isinstance(value, str):
            reasons.append(f"value of {_quote(param.key)} is not a string")
    elif kind == "Number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            reasons.append(f"value of {_quote(param.key)} is not a number")
    elif kind == "Boolean":
        if not isinstance(value, bool):
            reasons.append(f"value of {_quote(param.key)} is not a boolean")
    elif kind == "Object":
        if not isinstance(value, Mapping):
            reasons.append(f"value of {_quote(param.key)} is not an object")
        else:
            for nested in param.object:
                _validate(nested, value.get(nested.key), reasons)
    elif kind != "Any":
        # The engine's own text, trailing space included.
        reasons.append(f"value of {_quote(param.key)} has an invalid type ")


def check_task_inputs(service_name: str, task: TaskDefinition, values: Mapping[str, Any]) -> str | None:
    """Return the engine's error for invalid task inputs (``Execution.Create``), or None."""
    reasons = validate_parameters(task.inputs, values)
    if not reasons:
        return None
    detail = "\n".join(reasons)
    return f"service {_quote(service_name)} - inputs of task {_quote(task.key)} are invalid: {detail}"


def check_task_outputs(service_name: str, task: TaskDefinition, values: Mapping[str, Any]) -> str | None:
    """Return the engine's error for invalid task outputs, or None.

    The engine does not reject such an ``Execution.Update``: it marks the execution Failed
    with this text, so a service checks its own outputs first to fail loudly instead.
    """
    reasons = validate_parameters(task.outputs, values)
    if not reasons:
        return None
    detail = "\n".join(reasons)
    return f"service {_quote(service_name)} - outputs of task {_quote(task.key)} are invalid: {detail}"


def check_event_data(service_name: str, event: EventDefinition, values: Mapping[str, Any]) -> str | None:
    """Return the engine's error for invalid event data, or None.

    The text starts with ``data service ...``; ``Event.Create`` prefixes it with
    ``create event: `` on the wire.
    """
    reasons = validate_parameters(event.data, values)
    if not reasons:
        return None
    detail = "\n".join(reasons)
    return f"data service {_quote(service_name)} - data of event {_quote(event.key)} are invalid: {detail}"


def go_quote(text: str) -> str:
    """Quote like Go's ``%q`` does for printable text, as the engine's messages do."""
    return json.dumps(text, ensure_ascii=False)


_quote = go_quote
