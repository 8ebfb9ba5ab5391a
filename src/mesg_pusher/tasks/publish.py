"""Tasks that publish: ``trigger``, ``triggerBatch`` and ``sendToUser``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pusher.crypto import encrypt, is_encrypted_channel

from mesg_pusher import metrics
from mesg_pusher.errors import InputError
from mesg_pusher.pusher_client import sdk_errors, with_params
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.context import Outputs, TaskContext

SENT: Outputs = {"message": "sent"}


def _check_encryption(channels: list[str], has_key: bool) -> None:
    encrypted = [c for c in channels if is_encrypted_channel(c)]
    if encrypted and len(channels) > 1:
        raise InputError(
            f"channel {encrypted[0]!r} is end-to-end encrypted: Pusher accepts one channel per "
            "encrypted trigger; trigger it on its own"
        )
    if encrypted and not has_key:
        raise InputError(
            f"channel {encrypted[0]!r} is end-to-end encrypted: set PUSHER_ENCRYPTION_MASTER_KEY_BASE64 "
            "(or the encryptionMasterKeyBase64 input)"
        )


def _with_info(answer: Any, key: str) -> Outputs:
    """``sent`` plus the attributes Pusher returned; the event is out either way, so an answer
    without them (some Pusher-compatible servers ignore ``info``) must not fail the execution."""
    if isinstance(answer, dict) and isinstance(answer.get(key), dict | list):
        return {**SENT, key: answer[key]}
    return dict(SENT)


async def trigger(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """One event on 1 to 100 channels; answers only once Pusher accepted it."""
    name = check.event_name(inputs)
    data = check.encode_data(inputs)
    channels = check.channel_list(inputs)
    socket_id = check.socket_id(inputs)
    info = check.attributes(inputs)
    options = ctx.settings.resolve(inputs)
    _check_encryption(channels, options.encryption_master_key_base64 is not None)
    client = ctx.pool.get(options)
    if (
        ctx.coalescer is not None
        and info is None
        and len(channels) == 1
        and not is_encrypted_channel(channels[0])
    ):
        event = {"channel": channels[0], "name": name, "data": data}
        if socket_id is not None:
            event["socket_id"] = socket_id
        await ctx.coalescer.trigger(options, client, event)
        return dict(SENT)
    if info is None:
        with sdk_errors():
            pending = client.trigger(channels, name, data, socket_id)
        await pending
        return dict(SENT)
    # The SDK cannot send `info`; let it build (and encrypt) the request, then add it.
    with sdk_errors():
        request = client._pusher_client.trigger.make_request(channels, name, data, socket_id)
    answer = await with_params(client, request, {"info": info})
    return _with_info(answer, "channels")


def batch_events(inputs: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ``batch`` input as Pusher's batch_events items, each checked like a trigger."""
    batch = inputs.get("batch")
    if not isinstance(batch, list) or not batch:
        raise InputError("input 'batch' must be a list of 1 to 10 events {channel, name, data}")
    if len(batch) > check.MAX_BATCH:
        raise InputError(f"input 'batch' has {len(batch)} events; Pusher allows {check.MAX_BATCH}")
    events = []
    for index, item in enumerate(batch):
        where = f"batch[{index}]."
        if not isinstance(item, dict):
            raise InputError(f"input 'batch[{index}]' must be an object {{channel, name, data}}")
        event = {
            "channel": check.channel_name(item.get("channel"), f"'{where}channel'"),
            "name": check.event_name(item, where=where),
            "data": check.encode_data(item, where=where),
        }
        for key, value in (
            ("socket_id", check.socket_id(item, where=where)),
            ("info", check.attributes(item, where=where)),
        ):
            if value is not None:
                event[key] = value
        events.append(event)
    return events


async def trigger_batch(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """1 to 10 events in one call; answers only once Pusher accepted them all."""
    events = batch_events(inputs)
    options = ctx.settings.resolve(inputs)
    client = ctx.pool.get(options)
    for event in events:
        if is_encrypted_channel(event["channel"]):
            _check_encryption([event["channel"]], options.encryption_master_key_base64 is not None)
            key = client._pusher_client._encryption_master_key
            event["data"] = json.dumps(encrypt(event["channel"], event["data"], key), ensure_ascii=False)
    with sdk_errors():
        # Data is already a string within Pusher's limit; the SDK's own size check counts
        # Python object overhead and would refuse events Pusher accepts.
        pending = client.trigger_batch(events, already_encoded=True)
    metrics.hooks.pusher_batch(len(events))
    answer = await pending
    if any("info" in event for event in events):
        return _with_info(answer, "batch")
    return dict(SENT)


async def send_to_user(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """An event to every connection of one signed-in user (``#server-to-user-{id}``)."""
    user_id = check.user_id(inputs)
    name = check.event_name(inputs)
    data = check.encode_data(inputs)
    client = ctx.client(inputs)
    with sdk_errors():
        pending = client.send_to_user(user_id, name, data)
    await pending
    return dict(SENT)
