"""A running stack for end-to-end tests: soketi, the local engine and the real service."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from mesg_pusher.harness.processes import EngineProcess, ServiceProcess
from mesg_pusher.harness.soketi import Soketi
from tests.support.container import service_process  # the image, when MESG_PUSHER_TEST_IMAGE is set


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
    engine = EngineProcess(env={**soketi.pusher_env(), **(env or {})}).start()
    service = service_process(engine, env=service_env)
    try:
        service.start_ready()
        yield Stack(soketi, engine, service)
    finally:
        service.stop()
        engine.stop()
