"""Values of settings as the environment gives them: what counts as set, booleans, numbers, ports.

Why one module: the engine passes mesg.yml's defaults (``PUSHER_APP_ID=``) as empty strings,
so every reader must take a blank value as unset, and refuse a wrong one with a message that
names the variable, the same way wherever it is read. The connection settings that an
execution's inputs may override (``useTLS``, ``port``...) go through the same parsers; their
messages then name the input and the variable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, overload

from mesg_pusher.errors import ConfigError

TRUE = frozenset({"true", "1", "yes", "y", "on"})
FALSE = frozenset({"false", "0", "no", "n", "off"})


def clean(value: Any) -> Any:
    """None for an unset value (None, or a string of blanks); anything else as it is."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def text(environment: Mapping[str, str], name: str) -> str | None:
    """A variable's value, stripped; None when it is unset or blank."""
    value = environment.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def source(name: str, variable: str) -> str:
    """Who sets a value, for messages: ``input 'port' or variable PUSHER_PORT``, or
    ``variable PUSHER_COALESCE`` for a process-wide setting (``name`` empty)."""
    if not name:
        return f"variable {variable}"
    return f"input {name!r} or variable {variable}"


def parse_bool(value: Any, name: str, variable: str) -> bool:
    """true/false/1/0/yes/no/on/off in any case, or a real boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ConfigError(f"{source(name, variable)} must be true or false (or 1/0, yes/no), not {value!r}")


def parse_int(value: Any, name: str, variable: str, low: int, high: int) -> int:
    """An integer in [low, high]; integral floats pass, as numbers arrive as doubles."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ConfigError(f"{source(name, variable)} must be an integer from {low} to {high}")
    return number


@overload
def flag(environment: Mapping[str, str], name: str, default: bool) -> bool: ...
@overload
def flag(environment: Mapping[str, str], name: str, default: None = None) -> bool | None: ...
def flag(environment: Mapping[str, str], name: str, default: bool | None = None) -> bool | None:
    """A boolean variable (see ``parse_bool``), or ``default`` when unset."""
    raw = text(environment, name)
    return default if raw is None else parse_bool(raw, "", name)


def number(environment: Mapping[str, str], name: str, default: float) -> float:
    """A finite number, or ``default`` when unset; the caller checks its range."""
    raw = text(environment, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, not {raw!r}")
    return value


def port(environment: Mapping[str, str], name: str) -> int | None:
    """A TCP port to listen on (1 to 65535, digits only), or None when unset."""
    raw = text(environment, name)
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"variable {name} must be a port number from 1 to 65535, not {raw[:20]!r}")
    return int(raw)
