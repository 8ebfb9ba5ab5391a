"""Tasks that publish: ``trigger``, ``triggerBatch`` and ``sendToUser``.

Each checks its inputs against the execution's limits first (``TaskContext.limits``), so a
refusal names the input whether or not the credentials are complete. Events go out as
requests signed by the SDK (``events_request``, ``batch_request``: ``pusher_client``), not
through the SDK's ``trigger``: that one refuses data over 30 KB by its own count whatever the
cluster allows, and cannot send ``info``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pusher.crypto import is_encrypted_channel

from mesg_pusher import metrics
from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import InputError
from mesg_pusher.limits import Limits
from mesg_pusher.pusher_client import batch_request, encrypted_data, events_request, send
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


def _encrypted(channel: str, data: str, options: PusherOptions, limits: Limits, where: str = "") -> str:
    """The data as sent on an encrypted channel (the SDK's envelope), checked against the limit."""
    assert options.encryption_master_key_base64 is not None  # _check_encryption ran
    envelope = encrypted_data(options.encryption_master_key_base64, channel, data)
    return check.encrypted_data(envelope, data, channel, limits=limits, where=where)


def _with_info(answer: Any, key: str) -> Outputs:
    """``sent`` plus the attributes Pusher returned; the event is out either way, so an answer
    without them (some Pusher-compatible servers ignore ``info``) must not fail the execution."""
    if isinstance(answer, dict) and isinstance(answer.get(key), dict | list):
        return {**SENT, key: answer[key]}
    return dict(SENT)


async def trigger(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """One event on 1 to 100 channels; answers only once Pusher accepted it."""
    limits = ctx.limits(inputs)
    name = check.event_name(inputs)
    data = check.encode_data(inputs, limits=limits)
    channels = check.channel_list(inputs, limits=limits)
    socket_id = check.socket_id(inputs)
    info = check.attributes(inputs)
    options = ctx.settings.resolve(inputs)
    _check_encryption(channels, options.encryption_master_key_base64 is not None)
    client = ctx.pool.get(options)
    encrypted = is_encrypted_channel(channels[0])
    if ctx.coalescer is not None and info is None and len(channels) == 1 and not encrypted:
        one = {"channel": channels[0], "name": name, "data": data}
        if socket_id is not None:
            one["socket_id"] = socket_id
        await ctx.coalescer.trigger(options, client, one)
        return dict(SENT)
    if encrypted:
        data = _encrypted(channels[0], data, options, limits)
    event: dict[str, Any] = {"name": name, "channels": channels, "data": data}
    if socket_id is not None:
        event["socket_id"] = socket_id
    if info is not None:
        event["info"] = info
    answer = await send(client, events_request(client, event))
    return _with_info(answer, "channels") if info is not None else dict(SENT)


def batch_events(inputs: Mapping[str, Any], limits: Limits) -> list[dict[str, str]]:
    """The ``batch`` input as Pusher's batch_events items, each checked like a trigger."""
    batch = inputs.get("batch")
    if not isinstance(batch, list) or not batch:
        raise InputError(
            f"input 'batch' must be a list of 1 to {limits.max_batch_size} events {{channel, name, data}}"
        )
    check.batch_size(len(batch), limits=limits)
    events = []
    for index, item in enumerate(batch):
        where = f"batch[{index}]."
        if not isinstance(item, dict):
            raise InputError(f"input 'batch[{index}]' must be an object {{channel, name, data}}")
        event = {
            "channel": check.channel_name(item.get("channel"), f"'{where}channel'", limits=limits),
            "name": check.event_name(item, where=where),
            "data": check.encode_data(item, limits=limits, where=where),
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
    """1 to the batch limit of events in one call; answers only once Pusher accepted them all."""
    limits = ctx.limits(inputs)
    events = batch_events(inputs, limits)
    options = ctx.settings.resolve(inputs)
    client = ctx.pool.get(options)
    for index, event in enumerate(events):
        if is_encrypted_channel(event["channel"]):
            _check_encryption([event["channel"]], options.encryption_master_key_base64 is not None)
            event["data"] = _encrypted(event["channel"], event["data"], options, limits, f"batch[{index}].")
    request = batch_request(client, events)
    metrics.hooks.pusher_batch(len(events))
    answer = await send(client, request)
    if any("info" in event for event in events):
        return _with_info(answer, "batch")
    return dict(SENT)


async def send_to_user(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """An event to every connection of one signed-in user (``#server-to-user-{id}``)."""
    limits = ctx.limits(inputs)
    user_id = check.user_id(inputs)
    name = check.event_name(inputs)
    data = check.encode_data(inputs, limits=limits)
    client = ctx.client(inputs)
    event = {"name": name, "channels": [f"#server-to-user-{user_id}"], "data": data}
    await send(client, events_request(client, event))
    return dict(SENT)
