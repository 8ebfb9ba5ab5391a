"""The benchmark's ceiling: the service's engine side with handlers that answer at once.

Same worker, engine client and outbox as the real service, but no Pusher call: what is left is
the cost of the engine round trip, which no Pusher relay can beat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from mesg_pusher.cli import serve
from mesg_pusher.config import PusherSettings, ServiceSettings, merged_environment
from mesg_pusher.logs import configure_logging
from mesg_pusher.tasks import TASKS, Handler, Outputs, TaskContext

SENT: Outputs = {"message": "sent"}


async def answer_now(ctx: TaskContext, inputs: Mapping[str, Any]) -> Outputs:
    return SENT


def main() -> int:
    environment = merged_environment()
    settings = ServiceSettings.from_environment(environment)
    configure_logging(settings.log_level, settings.secrets)
    handlers: dict[str, Handler] = dict.fromkeys(TASKS, answer_now)
    asyncio.run(serve(settings, PusherSettings(environment), handlers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
