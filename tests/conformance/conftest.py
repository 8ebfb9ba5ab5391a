"""Fixtures of the conformance checks: the installed service, the emulated engine, soketi."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.emulation import EmulatedEngine, EngineFactory, Node, ServiceFactory
from tests.support.installed import Installation, InstalledService, definition_json, installed_definition
from tests.support.soketi import Soketi


@pytest.fixture(scope="session")
def installed_service(installed: Installation) -> Path:
    """The ``mesg-pusher`` entry point of this checkout installed from its wheel (once a session)."""
    return installed.entry_point


@pytest.fixture(scope="session")
def service_definition(installed_service: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed mesg.yml's tasks and events, as JSON for engine.js."""
    return definition_json(
        installed_definition(installed_service), tmp_path_factory.mktemp("def") / "service.json"
    )


@pytest.fixture
def engine_factory(service_definition: Path) -> Iterator[EngineFactory]:
    """``engine_factory("g3", nodes=2)`` starts engine.js; every one is stopped at teardown."""
    started: list[EmulatedEngine] = []

    def make(generation: str, nodes: int = 1) -> EmulatedEngine:
        engine = EmulatedEngine(generation, nodes, service_definition)
        started.append(engine)
        return engine.start()

    yield make
    for engine in reversed(started):
        engine.stop()


@pytest.fixture
def service_factory(installed_service: Path, soketi: Soketi) -> Iterator[ServiceFactory]:
    """``service_factory(node)`` starts the installed service with the variables the engine sets
    for that node (less ``without``), plus PUSHER_* of the shared soketi; every one is stopped at
    teardown."""
    started: list[InstalledService] = []

    def make(
        node: Node, env: Mapping[str, str] | None = None, rogue: bool = False, without: Sequence[str] = ()
    ) -> InstalledService:
        variables = {**soketi.pusher_env(), **(node.rogue_env if rogue else node.env), **(env or {})}
        variables = {k: v for k, v in variables.items() if k not in without}
        service = InstalledService(installed_service, variables, name=f"service-node{node.index}")
        started.append(service)
        service.start()
        return service

    yield make
    for service in reversed(started):
        service.stop()
