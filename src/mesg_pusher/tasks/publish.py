"""Tasks that publish: ``trigger`` and ``triggerBatch``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_pusher.errors import InputError
from mesg_pusher.pusher_client import sdk_errors
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.context import Outputs, TaskContext

SENT: Outputs = {"message": "sent"}


async def trigger(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """One event on 1 to 100 channels; answers only once Pusher accepted it."""
    name = check.event_name(inputs)
    data = check.encode_data(inputs)
    channels = check.channel_list(inputs)
    socket_id = check.socket_id(inputs)
    client = ctx.client(inputs)
    with sdk_errors():
        pending = client.trigger(channels, name, data, socket_id)
    await pending
    return dict(SENT)


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
        socket_id = check.socket_id(item, where=where)
        if socket_id is not None:
            event["socket_id"] = socket_id
        events.append(event)
    return events


async def trigger_batch(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """1 to 10 events in one call; answers only once Pusher accepted them all."""
    events = batch_events(inputs)
    client = ctx.client(inputs)
    with sdk_errors():
        # Data is already a string within Pusher's limit; the SDK's own size check counts
        # Python object overhead and would refuse events Pusher accepts.
        pending = client.trigger_batch(events, already_encoded=True)
    await pending
    return dict(SENT)
