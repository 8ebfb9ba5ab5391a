"""Tasks that change what the service listens to: ``subscribe`` and ``unsubscribe``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_pusher.errors import InputError
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.context import Listener, Outputs, TaskContext


def _listener(ctx: TaskContext) -> Listener:
    listener = ctx.listener
    if listener is None:
        raise InputError(
            "this mesg-pusher process has no channel listener (it runs without the receiving side)"
        )
    return listener


async def subscribe(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """Listen to more channels (starting the listener if needed); answers once Pusher confirmed."""
    names = check.channel_list(inputs, limits=ctx.limits(inputs))
    listener = _listener(ctx)
    options = ctx.settings.resolve(inputs)
    return {"channels": await listener.subscribe(names, options)}


async def unsubscribe(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """Stop listening to channels; channels not listened to are ignored."""
    names = check.channel_list(inputs, limits=ctx.limits(inputs))
    return {"channels": await _listener(ctx).unsubscribe(names)}
