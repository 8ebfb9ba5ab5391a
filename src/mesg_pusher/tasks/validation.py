"""Checks of task inputs against Pusher's documented limits, with messages naming the input.

The data size, batch size and channel-name length are the execution's ``Limits`` (Pusher's
multi-tenant ones unless raised, see ``mesg_pusher.limits``); a refusal says which limit was
in force and who set it. The other limits are the same on every Pusher cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mesg_pusher.errors import InputError
from mesg_pusher.limits import BATCH, DATA, Limits

# Pusher's naming rules live in mesg_pusher.names, below the tasks and the receiving side; the
# two byte limits are re-exported for the tasks that read them here (check.MAX_USER_INFO_BYTES).
from mesg_pusher.names import CHANNEL_CHARACTERS as _CHANNEL
from mesg_pusher.names import MAX_CHANNELS, MAX_EVENT_NAME, MAX_USER_ID, channel_fault
from mesg_pusher.names import MAX_USER_DATA_BYTES as MAX_USER_DATA_BYTES
from mesg_pusher.names import MAX_USER_INFO_BYTES as MAX_USER_INFO_BYTES
from mesg_pusher.names import SOCKET_ID as _SOCKET_ID

ATTRIBUTES = re.compile(r"[A-Za-z_]+(?:,[A-Za-z_]+)*")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def string(inputs: Mapping[str, Any], key: str, *, where: str = "") -> str:
    """A required, non-empty string input."""
    value = inputs.get(key)
    if value is None or value == "":
        raise InputError(f"input '{where}{key}' is required")
    if not isinstance(value, str):
        raise InputError(f"input '{where}{key}' must be a string, not {type_name(value)}")
    return value


def optional_string(inputs: Mapping[str, Any], key: str, *, where: str = "") -> str | None:
    """An optional string input; empty counts as absent."""
    if inputs.get(key) in (None, ""):
        return None
    return string(inputs, key, where=where)


def channel_name(value: Any, label: str = "'channel'", *, limits: Limits) -> str:
    """A channel name Pusher accepts: ``A-Za-z0-9_-=@,.;``, within the execution's length limit."""
    if not isinstance(value, str) or not value:
        raise InputError(f"input {label} must be a non-empty string, not {type_name(value)}")
    if (fault := channel_fault(value, limits)) is not None:
        raise InputError(f"input {label} {fault}")
    return value


def event_name(inputs: Mapping[str, Any], key: str = "name", *, where: str = "") -> str:
    """An event name of 1 to 200 characters."""
    name = string(inputs, key, where=where)
    if len(name) > MAX_EVENT_NAME:
        raise InputError(
            f"input '{where}{key}' is {len(name)} characters long; Pusher allows {MAX_EVENT_NAME}"
        )
    return name


def socket_id(inputs: Mapping[str, Any], key: str = "socket_id", *, where: str = "") -> str | None:
    """An optional socket id, ``digits.digits`` as Pusher hands them to clients."""
    value = optional_string(inputs, key, where=where)
    if value is not None and not _SOCKET_ID.fullmatch(value):
        raise InputError(
            f"input '{where}{key}' must look like 123.456 (the client's socket_id), not {value[:40]!r}"
        )
    return value


def byte_size(text: str) -> int:
    """The size Pusher counts: UTF-8 bytes of the data string."""
    return len(text.encode("utf-8", "surrogatepass"))


def encode_data(inputs: Mapping[str, Any], key: str = "data", *, limits: Limits, where: str = "") -> str:
    """The event data as the string Pusher carries: strings as they are, anything else as JSON.

    Compact JSON without ASCII escaping, as JavaScript's ``JSON.stringify`` writes it, so the
    data limit counts what really travels.
    """
    value = inputs.get(key)
    if value is None:
        raise InputError(f"input '{where}{key}' is required (an object or a string)")
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise InputError(
                f"input '{where}{key}' contains NaN or Infinity, which JSON cannot carry"
            ) from None
    size = byte_size(text)
    if size > limits.max_data_bytes:
        raise InputError(f"input '{where}{key}' is {size} bytes once serialised; {limits.in_force(DATA)}")
    return text


def encrypted_data(
    envelope: str, plaintext: str, channel: str, *, limits: Limits, key: str = "data", where: str = ""
) -> str:
    """The data of an end-to-end encrypted channel as sent: Pusher counts the JSON envelope of
    nonce and ciphertext (about a third bigger than the plaintext), so that is what is checked."""
    size = byte_size(envelope)
    if size > limits.max_data_bytes:
        raise InputError(
            f"input '{where}{key}' is {byte_size(plaintext)} bytes once serialised and {size} once "
            f"encrypted for {channel!r} (what Pusher receives); {limits.in_force(DATA)}"
        )
    return envelope


def batch_size(count: int, *, limits: Limits) -> None:
    """A ``batch_events`` call holds 1 to the batch limit of events."""
    if count > limits.max_batch_size:
        raise InputError(f"input 'batch' has {count} events; {limits.in_force(BATCH)}")


def channel_list(inputs: Mapping[str, Any], *, limits: Limits) -> list[str]:
    """Exactly one of ``channel`` (a name) and ``channels`` (1 to 100 names)."""
    one, many = inputs.get("channel"), inputs.get("channels")
    if one not in (None, "") and many not in (None, []):
        raise InputError("give either input 'channel' or input 'channels', not both")
    if one not in (None, ""):
        return [channel_name(one, limits=limits)]
    if many in (None, []):
        raise InputError("input 'channel' (a name) or 'channels' (a list of names) is required")
    if not isinstance(many, list):
        raise InputError(f"input 'channels' must be a list of strings, not {type_name(many)}")
    if len(many) > MAX_CHANNELS:
        raise InputError(f"input 'channels' has {len(many)} channels; Pusher allows {MAX_CHANNELS}")
    names = [channel_name(name, f"'channels[{i}]'", limits=limits) for i, name in enumerate(many)]
    if len(set(names)) != len(names):
        raise InputError("input 'channels' lists a channel more than once")
    return names


def params(inputs: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, str]:
    """The optional ``params`` object: only the allowed keys, each a string (lists are joined)."""
    value = inputs.get("params")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"input 'params' must be an object, not {type_name(value)}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InputError(
            f"input 'params' has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )
    result = {}
    for key, item in value.items():
        if isinstance(item, list) and all(isinstance(i, str) for i in item):
            item = ",".join(item)
        if item in (None, ""):
            continue
        if not isinstance(item, str):
            raise InputError(f"input 'params.{key}' must be a string, not {type_name(item)}")
        result[key] = item
    return result


def user_id(inputs: Mapping[str, Any], key: str = "user_id", *, where: str = "") -> str:
    """A user id as Pusher accepts it: 1 to 200 characters of the channel-name alphabet."""
    value = string(inputs, key, where=where)
    if len(value) > MAX_USER_ID:
        raise InputError(f"input '{where}{key}' is {len(value)} characters long; Pusher allows {MAX_USER_ID}")
    if not _CHANNEL.fullmatch(value):
        raise InputError(
            f"input '{where}{key}' {value[:80]!r} may only contain A-Z a-z 0-9 and _ - = @ , . ;"
        )
    return value


def channel_prefixed(
    value: Any, prefixes: tuple[str, ...], task: str, label: str = "'channel'", *, limits: Limits
) -> str:
    """A channel name that must start with one of ``prefixes`` for this task to make sense."""
    name = channel_name(value, label, limits=limits)
    if not name.startswith(prefixes):
        kinds = " or ".join(f"{p}*" for p in prefixes)
        raise InputError(f"{task} needs a {kinds} channel, not {name!r}")
    return name


MAX_INFO = 200


def attributes(inputs: Mapping[str, Any], key: str = "info", *, where: str = "") -> str | None:
    """Optional attribute names for Pusher's ``info``: ``user_count,subscription_count``."""
    value = optional_string(inputs, key, where=where)
    if value is not None and (len(value) > MAX_INFO or not ATTRIBUTES.fullmatch(value)):
        raise InputError(
            f"input '{where}{key}' must be attribute names separated by commas "
            f"(e.g. user_count,subscription_count), not {value[:80]!r}"
        )
    return value


def json_object(
    inputs: Mapping[str, Any], key: str, limit: int, *, optional: bool = False
) -> dict[str, Any] | None:
    """An object the SDK will serialise for a client: strict JSON (no NaN) within ``limit`` bytes."""
    value = inputs.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise InputError(f"input '{key}' must be an object, not {type_name(value)}")
    try:
        size = len(json.dumps(value, allow_nan=False))  # the SDK's own (ASCII-escaped) form
    except ValueError:
        raise InputError(f"input '{key}' contains NaN or Infinity, which JSON cannot carry") from None
    if size > limit:
        raise InputError(f"input '{key}' is {size} bytes once serialised; at most {limit} are allowed")
    return value
