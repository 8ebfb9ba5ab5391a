"""What a task handler gets besides its inputs: settings and the shared SDK clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pusher

from mesg_pusher.coalesce import Coalescer
from mesg_pusher.config import PusherOptions, PusherSettings
from mesg_pusher.limits import Limits
from mesg_pusher.pusher_client import ClientPool

Outputs = dict[str, Any]


class Listener(Protocol):
    """What the subscribe and unsubscribe tasks need of the receiving side's channel listener
    (``mesg_pusher.receive.Listener``): declared here, so the tasks do not import the receiving
    side, which sits beside them, not below."""

    async def subscribe(self, names: Iterable[str], options: PusherOptions) -> list[str]:
        """Listen to more channels; the channels listened to once Pusher confirmed them."""
        ...

    async def unsubscribe(self, names: Iterable[str]) -> list[str]:
        """Stop listening to channels; the channels still listened to."""
        ...


@dataclass(frozen=True)
class TaskContext:
    """Shared by every execution; holds no per-execution state."""

    settings: PusherSettings
    pool: ClientPool
    # The Pusher channel listener of the receiving side (subscribe/unsubscribe tasks); None
    # where the process runs without it.
    listener: Listener | None = None
    # Sends concurrent single-channel triggers together (PUSHER_COALESCE); None when off.
    coalescer: Coalescer | None = None

    def limits(self, inputs: Mapping[str, Any]) -> Limits:
        """The limits this execution's inputs are checked against (variables, or its inputs)."""
        return self.settings.limits(inputs)

    def client(self, inputs: Mapping[str, Any]) -> pusher.Pusher:
        """The SDK client for this execution's connection settings."""
        return self.pool.get(self.settings.resolve(inputs))


Handler = Callable[[TaskContext, Mapping[str, Any]], Awaitable[Outputs]]
