"""The raw signed request task (``request``): the escape hatch for what no task covers yet.

When Pusher or a compatible server adds a parameter or an endpoint, users of the node SDK call
``pusher.get``/``pusher.post`` with a path and parameters the SDK signs. This task is the same
for MESG applications: a GET or a POST to a path under the app, signed by the official SDK
(``pusher.http.Request``) and sent through the transport every task uses (timeout, proxy,
TLS trust, retries, error mapping).

- ``path`` is relative to the app, as the node SDK's: ``/channels`` is sent to
  ``/apps/<appId>/channels``. The app id comes from the credentials that sign the request, so
  a request cannot name another app than the one it is signed for, and a path cannot leave
  ``/apps/<appId>/``: ``..``, ``.`` and empty segments are refused, as are ``?``, ``#``, ``%``,
  spaces, line breaks and non-ASCII characters, which would change what is signed or split
  the request line.
- ``params`` is the query string (GET and POST): strings, numbers and booleans, sent as they
  are (the SDK does not encode them), so names and values are limited to characters that need
  no encoding, and names to lower case (Pusher lowercases names when it checks the signature).
  The ``auth_*`` names and ``body_md5`` are the signature's own and are refused.
- ``body`` is a POST's JSON body (any JSON; ``{}`` when absent); a GET has none.

What counts as an error: any status outside 2xx fails the execution with Pusher's status and
body (``pusher_rejected 404: Pusher answered HTTP 404: ...``), as every task does. A GET is
retried like every read (connection lost, 5xx, 429, within the timeout); a POST only after a
429 or 503, which say it was not taken, never once it may have been. A 2xx answer completes the execution with its ``status`` and its ``body``: the JSON
answer parsed, or its text when it is not JSON, absent when it is empty or ``null``.
Pusher's limits on what a request carries (data size, batch size) are the server's to
enforce here: the answer says what it refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from mesg_pusher.errors import InputError
from mesg_pusher.pusher_client import send_raw, signed_request
from mesg_pusher.tasks.context import Outputs, TaskContext
from mesg_pusher.tasks.validation import type_name

METHODS = ("GET", "POST")
MAX_PATH = 1_000
MAX_PARAMS = 50
MAX_PARAM_VALUE = 1_000
# The signature's own query parameters (the node SDK refuses the same ones).
RESERVED = frozenset({"auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5"})
_SEGMENT = re.compile(r"[A-Za-z0-9_\-=@,.;:~]+")
_SEGMENT_CHARS = "A-Z a-z 0-9 and _ - = @ , . ; : ~"
_PARAM_NAME = re.compile(r"[a-z0-9_.\-]{1,100}")
_PARAM_VALUE = re.compile(r"[A-Za-z0-9_\-.~,:;@=/]*")
_VALUE_CHARS = "A-Z a-z 0-9 and _ - . ~ , : ; @ = /"
_EXAMPLE = "e.g. /channels or /channels/my-channel/users"


def method(inputs: Mapping[str, Any]) -> str:
    """``GET`` or ``POST``, in any case."""
    value = inputs.get("method")
    if not isinstance(value, str) or value.strip().upper() not in METHODS:
        shown = repr(value[:20]) if isinstance(value, str) else type_name(value)
        raise InputError(f"input 'method' must be GET or POST, not {shown}")
    return value.strip().upper()


def path(inputs: Mapping[str, Any]) -> str:
    """A path under the app, relative to ``/apps/<appId>``, that is sent exactly as signed."""
    value = inputs.get("path")
    if value in (None, ""):
        raise InputError(f"input 'path' is required: a path under the app ({_EXAMPLE})")
    if not isinstance(value, str):
        raise InputError(f"input 'path' must be a string, not {type_name(value)}")
    shown = repr(value[:80])
    if len(value) > MAX_PATH:
        raise InputError(f"input 'path' is {len(value)} characters long; at most {MAX_PATH} are allowed")
    if "\r" in value or "\n" in value:
        raise InputError(f"input 'path' {shown} contains a line break")
    if not value.isascii():
        raise InputError(f"input 'path' {shown} contains non-ASCII characters; paths are sent as they are")
    if " " in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InputError(f"input 'path' {shown} contains a space or a control character")
    if "?" in value:
        raise InputError(f"input 'path' {shown} contains '?': give query parameters in input 'params'")
    if "#" in value:
        raise InputError(f"input 'path' {shown} contains '#', which is never sent to the server")
    if not value.startswith("/"):
        raise InputError(f"input 'path' {shown} must start with / ({_EXAMPLE})")
    if value == "/apps" or value.startswith("/apps/"):
        raise InputError(
            f"input 'path' {shown} is relative to the app: give /channels, not /apps/<id>/channels "
            "(the service adds /apps/<appId>)"
        )
    for segment in value[1:].split("/"):
        if segment == "":
            raise InputError(f"input 'path' {shown} has an empty segment (// or a trailing /)")
        if segment in (".", ".."):
            raise InputError(f"input 'path' {shown} has a {segment!r} segment; it must stay under the app")
        if not _SEGMENT.fullmatch(segment):
            bad = "".join(sorted({c for c in segment if not _SEGMENT.fullmatch(c)}))
            raise InputError(
                f"input 'path' {shown} contains {bad!r}; path segments may only contain {_SEGMENT_CHARS}"
            )
    return value


def _param_value(name: str, value: Any) -> str:
    label = f"'params.{name}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InputError(f"input {label} must be a finite number, not {value}")
        text = str(int(value)) if float(value).is_integer() else repr(float(value))
    elif isinstance(value, str):
        text = value
    else:
        raise InputError(f"input {label} must be a string, a number or a boolean, not {type_name(value)}")
    if len(text) > MAX_PARAM_VALUE:
        raise InputError(
            f"input {label} is {len(text)} characters long; at most {MAX_PARAM_VALUE} are allowed"
        )
    if not _PARAM_VALUE.fullmatch(text):
        bad = "".join(sorted({c for c in text if not _PARAM_VALUE.fullmatch(c)}))
        raise InputError(
            f"input {label} {text[:80]!r} contains {bad!r}; query values are sent unencoded, so they "
            f"may only contain {_VALUE_CHARS}"
        )
    return text


def query(inputs: Mapping[str, Any]) -> dict[str, str]:
    """The ``params`` object as the query parameters to sign and send."""
    value = inputs.get("params")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"input 'params' must be an object of query parameters, not {type_name(value)}")
    if len(value) > MAX_PARAMS:
        raise InputError(f"input 'params' has {len(value)} parameters; at most {MAX_PARAMS} are allowed")
    params: dict[str, str] = {}
    for name, item in value.items():
        if name in RESERVED or name.startswith("auth_"):
            raise InputError(
                f"input 'params.{name}' is reserved: the service signs the request (auth_* and body_md5)"
            )
        if not _PARAM_NAME.fullmatch(name):
            raise InputError(
                f"input 'params' has the name {name[:80]!r}; query parameter names are 1 to 100 lower-case "
                "letters, digits, '_', '.' or '-' (Pusher lowercases names when it checks the signature)"
            )
        params[name] = _param_value(name, item)
    return params


def body(inputs: Mapping[str, Any], verb: str) -> Any:
    """A POST's JSON body (``{}`` when absent); a GET may not have one."""
    value = inputs.get("body")
    if value is None:
        return {} if verb == "POST" else None
    if verb == "GET":
        raise InputError("input 'body' is sent with POST only; a GET carries input 'params'")
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        raise InputError("input 'body' contains NaN or Infinity, which JSON cannot carry") from None
    except RecursionError:
        raise InputError("input 'body' is nested too deeply to be sent as JSON") from None
    return value


def parsed(text: str) -> Any:
    """The answer's body as an output: JSON parsed (numbers as the doubles a Struct carries),
    else the text as it came; ``None`` when empty."""
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_int=float)
    except (ValueError, RecursionError):
        return text


async def request(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """One signed GET or POST under ``/apps/<appId>``; its status and parsed body."""
    verb = method(inputs)
    relative = path(inputs)
    params = query(inputs)
    payload = body(inputs, verb)
    options = ctx.settings.resolve(inputs)
    client = ctx.pool.get(options)
    target = f"/apps/{options.app_id}{relative}"
    if verb == "GET":
        signed = signed_request(client, verb, target, params)
    else:
        signed = signed_request(client, verb, target, payload, query=params)
    answer = await send_raw(client, signed)
    outputs: Outputs = {"status": answer.status}
    if (content := parsed(answer.text)) is not None:
        outputs["body"] = content
    return outputs
