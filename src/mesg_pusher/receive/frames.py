"""What Pusher sends a client, as MESG event data: event data, presence members, the watchlist.

Pure functions of one frame: the listener decides when to emit, these decide what, so the
shapes mesg.yml declares for ``received``, ``online`` and ``offline`` are made in one place.
A frame that does not have the documented shape gives ``None`` (or nothing), never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Pusher's internal presence events and the public names its client libraries give them
# (pusher-js binds "pusher:member_added"): what ``received`` carries as ``event``.
MEMBER_EVENTS: Mapping[str, str] = {
    "pusher_internal:member_added": "pusher:member_added",
    "pusher_internal:member_removed": "pusher:member_removed",
}
SUBSCRIBED = "pusher:subscription_succeeded"
WATCHLIST_EVENTS = ("online", "offline")


def strict_json(text: str | bytes) -> Any:
    """JSON as the standard has it: Python's NaN and Infinity extensions are refused (ValueError)."""
    return json.loads(text, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_data(data: Any) -> Any:
    """Pusher carries event data as a string: JSON is decoded, anything else stays a string."""
    if isinstance(data, str):
        try:
            return strict_json(data)
        except ValueError:
            return data
    return data


def _user_id(value: Any) -> str | None:
    """A member's id: Pusher's are strings; an integer id (an auth server's number) as its digits."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _member(user_id: str, user_info: Any) -> dict[str, Any]:
    member: dict[str, Any] = {"user_id": user_id}
    if user_info is not None:
        member["user_info"] = user_info
    return member


def member_event(channel: str, internal: str, data: Any) -> dict[str, Any] | None:
    """``received`` data for ``pusher_internal:member_added`` or ``member_removed``.

    ``event`` is the public name (``pusher:member_added``), ``user_id`` the member's, and
    ``data`` is ``{user_id, user_info}`` as Pusher sends it (``user_info`` when given).
    """
    body = parse_data(data)
    user_id = _user_id(body.get("user_id")) if isinstance(body, dict) else None
    if user_id is None:
        return None
    assert isinstance(body, dict)
    return {
        "channel": channel,
        "event": MEMBER_EVENTS[internal],
        "user_id": user_id,
        "data": _member(user_id, body.get("user_info")),
    }


def presence_snapshot(channel: str, data: Any) -> dict[str, Any] | None:
    """``received`` data for a presence channel's ``subscription_succeeded``: who is there.

    ``data`` is ``{count, members: [{user_id, user_info}]}``, the listener itself included,
    from Pusher's ``{"presence": {"ids", "hash", "count"}}``.
    """
    body = parse_data(data)
    presence = body.get("presence") if isinstance(body, dict) else None
    if not isinstance(presence, dict):
        return None
    raw_hash, raw_ids = presence.get("hash"), presence.get("ids")
    hash_: dict[str, Any] = raw_hash if isinstance(raw_hash, dict) else {}
    ids: list[Any] = raw_ids if isinstance(raw_ids, list) else list(hash_)
    members = [_member(user_id, hash_.get(user_id)) for raw in ids if (user_id := _user_id(raw)) is not None]
    count = presence.get("count")
    if isinstance(count, bool) or not isinstance(count, int | float):
        count = len(members)
    return {"channel": channel, "event": SUBSCRIBED, "data": {"count": count, "members": members}}


def watchlist_events(data: Any) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """``pusher_internal:watchlist_events`` as MESG events: one ``online`` or ``offline`` per user id.

    Pusher groups user ids (``{"events": [{"name": "online", "user_ids": [...]}]}``); one event
    per user lets a MESG process filter on ``user_id``. Also returns what was skipped (an
    entry of another name, or not of that shape), for the log.
    """
    body = parse_data(data)
    entries = body.get("events") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return [], [repr(body)[:100]]
    events: list[tuple[str, dict[str, Any]]] = []
    skipped: list[str] = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        user_ids = entry.get("user_ids") if isinstance(entry, dict) else None
        if name not in WATCHLIST_EVENTS or not isinstance(user_ids, list):
            skipped.append(repr(entry)[:100])
            continue
        for raw in user_ids:
            user_id = _user_id(raw)
            if user_id is None:
                skipped.append(f"{name} of {raw!r}")
            else:
                events.append((str(name), {"user_id": user_id}))
    return events, skipped
