"""A running stack for end-to-end tests: soketi, the local engine and the real service."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from mesg_pusher.harness.processes import EngineProcess, ServiceProcess
from mesg_pusher.harness.soketi import Soketi


def pusher_env(soketi: Soketi) -> dict[str, str]:
    """PUSHER_* variables pointing at a local soketi over plain HTTP."""
    return {
        "PUSHER_APP_ID": soketi.app.app_id,
        "PUSHER_APP_KEY": soketi.app.key,
        "PUSHER_APP_SECRET": soketi.app.secret,
        "PUSHER_HOST": soketi.host,
        "PUSHER_PORT": str(soketi.port),
        "PUSHER_USE_TLS": "false",
    }


@dataclass
class Stack:
    soketi: Soketi
    engine: EngineProcess
    service: ServiceProcess


@contextmanager
def running_stack(
    soketi: Soketi, env: Mapping[str, str] | None = None, service_env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """Engine with an instance configured like ``mesg-cli service:dev --env ...``, and the service."""
    engine = EngineProcess(env={**pusher_env(soketi), **(env or {})}).start()
    service = ServiceProcess(engine, env=service_env)
    try:
        service.start_ready()
        yield Stack(soketi, engine, service)
    finally:
        service.stop()
        engine.stop()
