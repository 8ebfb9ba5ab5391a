"""Who the listener is to Pusher: its presence member, its signed-in user, and the signatures.

The service signs its own subscriptions and sign-in with the app secret, as an application
server's auth endpoint would for a browser: there is no endpoint to call, the secret is here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pusher.signature import sign

# One stable id for every process of the service: the runners of an instance (and restarts)
# are one presence member, so they count once in user_count and fire no member_added for
# each new process. An id nobody chose at random, which an application can recognise.
DEFAULT_USER_ID = "mesg-pusher"


def compact(value: Any) -> str:
    """JSON as Pusher's own libraries write it (no spaces), so signatures cover what is sent."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ListenerIdentity:
    """The listener's user: ``user_id`` and ``user_info`` in presence channels and at sign-in.

    ``signin`` sends ``pusher:signin`` on every connection; ``watchlist`` (user ids) asks
    Pusher for their online and offline events, which only signed-in connections receive.
    """

    user_id: str = DEFAULT_USER_ID
    user_info: Mapping[str, Any] | None = field(default=None, hash=False)
    signin: bool = False
    watchlist: tuple[str, ...] = ()

    def channel_data(self) -> str:
        """The ``channel_data`` of a presence subscription."""
        member: dict[str, Any] = {"user_id": self.user_id}
        if self.user_info is not None:
            member["user_info"] = dict(self.user_info)
        return compact(member)

    def user_data(self) -> str:
        """The ``user_data`` of ``pusher:signin``: ``id``, and ``user_info`` and ``watchlist`` if set."""
        user: dict[str, Any] = {"id": self.user_id}
        if self.user_info is not None:
            user["user_info"] = dict(self.user_info)
        if self.watchlist:
            user["watchlist"] = list(self.watchlist)
        return compact(user)


def channel_auth(key: str, secret: str, socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """``auth`` of a private or presence subscription: ``key:HMAC(secret, "socket:channel[:data]")``."""
    text = f"{socket_id}:{channel}" if channel_data is None else f"{socket_id}:{channel}:{channel_data}"
    return f"{key}:{sign(secret, text)}"


def signin_auth(key: str, secret: str, socket_id: str, user_data: str) -> str:
    """``auth`` of ``pusher:signin``: ``key:HMAC(secret, "socket_id::user::user_data")``."""
    return f"{key}:{sign(secret, f'{socket_id}::user::{user_data}')}"
