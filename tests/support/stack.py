"""A running stack for end-to-end tests: soketi, the local engine and the real service.

The engine generation comes from ``MESG_PUSHER_TEST_GENERATION`` (g1, g2 or g3; default g1),
so the same end-to-end tests run under each generation (CI runs the core ones under all three).
Under g2 and g3 the instance runs as ``MESG_PUSHER_TEST_RUNNERS`` runners (default 2), one
service process each, and the engine spreads the executions among them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from mesg_local_engine.deployment import GENERATIONS
from tests.support.container import service_factory  # the image, when MESG_PUSHER_TEST_IMAGE is set
from tests.support.processes import EngineProcess, ServiceProcess, start_services, terminate_all
from tests.support.soketi import Soketi

DEFAULT_RUNNERS = 2


def engine_generation() -> tuple[str, int]:
    """(generation, runners) the tests run under, from the environment."""
    generation = os.environ.get("MESG_PUSHER_TEST_GENERATION", "g1").strip().lower() or "g1"
    if generation not in GENERATIONS:
        raise ValueError(f"MESG_PUSHER_TEST_GENERATION={generation!r}: use one of {', '.join(GENERATIONS)}")
    if generation == "g1":
        return generation, 1
    return generation, int(os.environ.get("MESG_PUSHER_TEST_RUNNERS") or DEFAULT_RUNNERS)


@dataclass
class Stack:
    soketi: Soketi
    engine: EngineProcess
    services: tuple[ServiceProcess, ...]

    @property
    def service(self) -> ServiceProcess:
        """The first runner's process (the only one under G1)."""
        return self.services[0]

    def log(self) -> str:
        """Every service process's log, one after the other."""
        return "".join(service.log() for service in self.services)


@contextmanager
def running_stack(
    soketi: Soketi,
    env: Mapping[str, str] | None = None,
    service_env: Mapping[str, str] | None = None,
    generation: str | None = None,
    runners: int | None = None,
) -> Iterator[Stack]:
    """Engine with an instance configured like ``mesg-cli service:dev --env ...``, and the service.

    ``generation`` and ``runners`` default to the test environment's (``engine_generation``).
    """
    default_generation, default_runners = engine_generation()
    generation = generation or default_generation
    runners = runners or (default_runners if generation == default_generation else DEFAULT_RUNNERS)
    engine = EngineProcess(
        env={**soketi.pusher_env(), **(env or {})},
        generation=generation,
        runners=runners,
    ).start()
    services: tuple[ServiceProcess, ...] = ()
    try:
        services = start_services(engine, service_env, factory=service_factory())
        yield Stack(soketi, engine, services)
    finally:
        terminate_all([engine, *services])
