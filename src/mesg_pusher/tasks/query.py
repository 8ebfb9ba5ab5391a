"""Tasks that read channel state: ``channels`` and ``channel``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_pusher.errors import InputError, PusherHTTPError
from mesg_pusher.pusher_client import sdk_errors
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.context import Outputs, TaskContext

CHANNEL_ATTRIBUTES = ("occupied", "user_count", "subscription_count")


def _object(answer: Any, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise PusherHTTPError(200, f"unexpected answer to {what}: {str(answer)[:200]}")
    return answer


def _attributes(info: str | None) -> list[str]:
    return [a.strip() for a in info.split(",") if a.strip()] if info else []


async def channels(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """The occupied channels, optionally filtered by prefix, with attributes when asked."""
    params = check.params(inputs, ("filter_by_prefix", "info"))
    client = ctx.client(inputs)
    with sdk_errors():
        pending = client.channels_info(params.get("filter_by_prefix"), _attributes(params.get("info")))
    found = _object(_object(await pending, "channels").get("channels", {}), "channels")
    outputs: Outputs = {"channels": list(found)}
    if "info" in params:
        outputs["info"] = {name: _object(attrs, "channels") for name, attrs in found.items()}
    return outputs


def _channel_input(inputs: Mapping[str, Any]) -> str:
    channel, legacy = inputs.get("channel"), inputs.get("name")
    if channel not in (None, "") and legacy not in (None, "") and channel != legacy:
        raise InputError("inputs 'channel' and 'name' name different channels; give only 'channel'")
    value = channel if channel not in (None, "") else legacy
    if value in (None, ""):
        raise InputError("input 'channel' (the channel name) is required")
    return check.channel_name(value, "'channel'" if channel not in (None, "") else "'name'")


async def channel(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """Whether one channel is occupied, with the counts asked for in ``params.info``."""
    name = _channel_input(inputs)
    params = check.params(inputs, ("info",))
    client = ctx.client(inputs)
    with sdk_errors():
        pending = client.channel_info(name, _attributes(params.get("info")))
    answer = _object(await pending, "channel")
    outputs: Outputs = {"occupied": bool(answer.get("occupied", False))}
    for key in CHANNEL_ATTRIBUTES[1:]:
        value = answer.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            outputs[key] = value
    return outputs
