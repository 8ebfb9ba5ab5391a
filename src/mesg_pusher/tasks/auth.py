"""Tasks that sign for clients and act on users: authorization, sign-in, termination.

A MESG application serving a browser's auth endpoint calls these instead of holding the
app secret itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mesg_pusher.errors import InputError
from mesg_pusher.pusher_client import sdk_errors, send_signed
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.context import Outputs, TaskContext

PRIVATE = ("private-", "presence-")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def authorize_channel(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """``auth`` (+ ``channel_data`` for presence, ``shared_secret`` for encrypted channels)."""
    socket_id = check.socket_id(inputs)
    if socket_id is None:
        raise InputError("input 'socket_id' is required (the client's socket_id, e.g. 123.456)")
    channel = check.channel_prefixed(
        inputs.get("channel"), PRIVATE, "authorizeChannel", limits=ctx.limits(inputs)
    )
    options = ctx.settings.resolve(inputs)
    custom: dict[str, Any] | None = None
    if channel.startswith("presence-"):
        custom = {"user_id": check.user_id(inputs)}
        # Pusher keeps at most 1 KB of user_info per presence member.
        info = check.json_object(inputs, "user_info", check.MAX_USER_INFO_BYTES, optional=True)
        if info is not None:
            custom["user_info"] = info
    elif channel.startswith("private-encrypted-") and options.encryption_master_key_base64 is None:
        raise InputError(
            f"channel {channel!r} is end-to-end encrypted: set PUSHER_ENCRYPTION_MASTER_KEY_BASE64 "
            "(or the encryptionMasterKeyBase64 input)"
        )
    client = ctx.pool.get(options)
    with sdk_errors():
        answer = client.authenticate(channel, socket_id, custom)
    return {key: _text(value) for key, value in answer.items()}


async def authenticate_user(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """The ``pusher:signin`` payload: ``auth`` and the ``user_data`` JSON string."""
    socket_id = check.socket_id(inputs)
    if socket_id is None:
        raise InputError("input 'socket_id' is required (the client's socket_id, e.g. 123.456)")
    user_data = check.json_object(inputs, "user_data", check.MAX_USER_DATA_BYTES)
    assert user_data is not None
    check.user_id(user_data, "id", where="user_data.")
    client = ctx.client(inputs)
    with sdk_errors():
        answer = client.authenticate_user(socket_id, user_data)
    json.loads(answer["user_data"])  # the SDK's own encoding; fails loudly if it ever changes
    return {"auth": _text(answer["auth"]), "user_data": _text(answer["user_data"])}


async def terminate_user_connections(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """Close every connection of a user, at the path the HTTP API documents."""
    user_id = check.user_id(inputs)
    options = ctx.settings.resolve(inputs)
    client = ctx.pool.get(options)
    await send_signed(client, "POST", f"/apps/{options.app_id}/users/{user_id}/terminate_connections", {})
    return {"message": "terminated"}
