"""Tasks that read channel state: ``channels``, ``channel`` and ``users``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_pusher.errors import InputError, PusherHTTPError
from mesg_pusher.limits import Limits
from mesg_pusher.pusher_client import sdk_errors
from mesg_pusher.tasks import validation as check
from mesg_pusher.tasks.context import Outputs, TaskContext

COUNTS = ("user_count", "subscription_count")


def _object(answer: Any, what: str) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise PusherHTTPError(200, f"unexpected answer to {what}: {str(answer)[:200]}")
    return answer


def _attributes(info: str | None) -> list[str]:
    return [a.strip() for a in info.split(",") if a.strip()] if info else []


def query(inputs: Mapping[str, Any], names: tuple[str, ...], limits: Limits) -> dict[str, str]:
    """Query parameters from first-class inputs, or from the original ``params`` object."""
    params = check.params(inputs, names)
    for name in names:
        value = check.optional_string(inputs, name)
        if value is None:
            continue
        if name in params and params[name] != value:
            raise InputError(f"input '{name}' and 'params.{name}' differ; give only '{name}'")
        params[name] = value
    # The SDK puts query values in unencoded: an `&` or `+` would break the signed query.
    if "filter_by_prefix" in params:
        # A prefix is at most a whole channel name.
        check.channel_name(params["filter_by_prefix"], "'filter_by_prefix'", limits=limits)
    if "info" in params:
        check.attributes(params)
    return params


async def channels(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """The occupied channels, optionally filtered by prefix, with attributes when asked."""
    params = query(inputs, ("filter_by_prefix", "info"), ctx.limits(inputs))
    client = ctx.client(inputs)
    with sdk_errors():
        pending = client.channels_info(params.get("filter_by_prefix"), _attributes(params.get("info")))
    found = _object(_object(await pending, "channels").get("channels", {}), "channels")
    outputs: Outputs = {"channels": list(found)}
    if "info" in params:
        outputs["info"] = {name: _object(attrs, "channels") for name, attrs in found.items()}
    return outputs


def _channel_input(inputs: Mapping[str, Any], limits: Limits) -> str:
    channel, legacy = inputs.get("channel"), inputs.get("name")
    if channel not in (None, "") and legacy not in (None, "") and channel != legacy:
        raise InputError("inputs 'channel' and 'name' name different channels; give only 'channel'")
    value = channel if channel not in (None, "") else legacy
    if value in (None, ""):
        raise InputError("input 'channel' (the channel name) is required")
    return check.channel_name(value, "'channel'" if channel not in (None, "") else "'name'", limits=limits)


async def channel(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """Whether one channel is occupied, with the attributes asked for in ``info``."""
    limits = ctx.limits(inputs)
    name = _channel_input(inputs, limits)
    params = query(inputs, ("info",), limits)
    client = ctx.client(inputs)
    with sdk_errors():
        pending = client.channel_info(name, _attributes(params.get("info")))
    answer = _object(await pending, "channel")
    outputs: Outputs = {"occupied": bool(answer.get("occupied", False))}
    for key in COUNTS:
        value = answer.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            outputs[key] = value
    if isinstance(answer.get("cache"), dict):
        outputs["cache"] = answer["cache"]
    return outputs


async def users(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    """The users of a presence channel, each ``{id}``."""
    name = check.channel_prefixed(inputs.get("channel"), ("presence-",), "users", limits=ctx.limits(inputs))
    client = ctx.client(inputs)
    with sdk_errors():
        pending = client.users_info(name)
    found = _object(await pending, "users").get("users", [])
    if not isinstance(found, list):
        raise PusherHTTPError(200, f"unexpected answer to users: {str(found)[:200]}")
    return {"users": [{"id": str(user.get("id"))} for user in found if isinstance(user, dict)]}
