"""What a Pusher webhook says, and whether Pusher said it: signature, freshness, events.

Pusher signs each webhook with one token of the app (``X-Pusher-Key`` names it; Pusher uses
the oldest active one) and sends ``X-Pusher-Signature`` = hex HMAC-SHA256 of the raw body with
that token's secret. Several tokens are accepted, so that a key rotation, or the webhooks of
another app the tasks reach, do not break the endpoint (the node SDK's extra tokens).

Each event of a batch becomes one ``webhook`` event, whatever its type: a type Pusher adds
later, or a compatible server's own, is passed on with what it carries, and never costs the
other events of its batch. Only a body that is not Pusher's shape at all is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesg_pusher.receive.frames import parse_data, strict_json

# Webhooks older or newer than this (by our clock) are refused: a captured request cannot be
# replayed later. The official Python SDK's validate_webhook uses the same window.
MAX_AGE_MS = 300_000

# The fields mesg.yml declares for a webhook event beyond name and time_ms, with
# their JSON types. Anything else an event carries (or one of these of another type) goes
# under ``extra``, as sent.
FIELDS: Mapping[str, type | tuple[type, ...]] = {
    "channel": str,
    "user_id": str,
    "event": str,
    "socket_id": str,
    "subscription_count": (int, float),
}


@dataclass(frozen=True)
class WebhookToken:
    """One key and secret pair whose signature the endpoint accepts."""

    key: str
    secret: str = field(repr=False)


class Malformed(Exception):
    """A signed body that is not Pusher's shape (answered 400); the message says what is wrong."""


def signed_by(tokens: Iterable[WebhookToken], key: str, signature: str, body: bytes) -> bool:
    """True if a token with ``key`` signed ``body`` (constant-time comparison)."""
    if not key or not signature:
        return False
    found = False
    for token in tokens:
        if token.key == key:
            expected = hmac.new(token.secret.encode(), body, hashlib.sha256).hexdigest()
            found |= hmac.compare_digest(expected.encode(), signature.encode(errors="replace"))
    return found


def events_of(body: bytes, now_ms: float | None = None) -> list[dict[str, Any]]:
    """The ``webhook`` events of a signed body; ``Malformed`` if it is not Pusher's shape.

    Pusher's shape: a JSON object whose ``time_ms`` is a number within 5 minutes of ``now_ms``
    and whose ``events`` is a list of objects, each with a string ``name``.
    """
    try:
        parsed = strict_json(body)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("body is not JSON") from None
    if not isinstance(parsed, dict):
        raise Malformed("body is not a JSON object")
    time_ms, events = parsed.get("time_ms"), parsed.get("events")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int | float):
        raise Malformed("time_ms is not a number")
    now = time.time() * 1000 if now_ms is None else now_ms
    if abs(now - time_ms) > MAX_AGE_MS:
        raise Malformed(f"time_ms is more than {MAX_AGE_MS // 60_000} minutes from this server's clock")
    if not isinstance(events, list):
        raise Malformed("events is not a list")
    out = []
    for index, item in enumerate(events):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise Malformed(f"events[{index}] is not an object with a name")
        out.append(to_event(item, time_ms))
    return out


def to_event(item: Mapping[str, Any], time_ms: float) -> dict[str, Any]:
    """One event as mesg.yml's ``webhook`` declares it; fields beyond those under ``extra``."""
    event: dict[str, Any] = {"name": item["name"], "time_ms": time_ms}
    extra: dict[str, Any] = {}
    for key, value in item.items():
        if key == "name":
            continue
        kind = FIELDS.get(key)
        if kind is not None and isinstance(value, kind) and not isinstance(value, bool):
            event[key] = value
        elif key == "data":
            parsed = parse_data(value)
            if parsed is not None:  # null (or the text "null") carries nothing
                event["data"] = parsed
        else:
            extra[key] = value
    if extra:
        event["extra"] = extra
    return event
