"""pytest fixtures running real soketi servers, and the stack under an engine generation.

Enabled from tests/conftest.py with `pytest_plugins = ["tests.support.fixtures"]`.

A module marked ``pytestmark = pytest.mark.all_generations`` runs each test that uses the
``stack`` fixture under engine generations g1, g2 and g3 (g2 and g3 with two runners), one
stack per generation; ``MESG_PUSHER_TEST_GENERATION`` set narrows it to that one generation,
and also sets the generation of every other stack (see ``tests/support/stack.py``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from mesg_local_engine.app import Application
from mesg_local_engine.deployment import GENERATIONS
from tests.support.installed import Installation, installation
from tests.support.relay import TcpProxy
from tests.support.soketi import Soketi
from tests.support.stack import Stack, engine_generation, running_stack

SoketiFactory = Callable[..., Soketi]


@pytest.fixture(scope="session")
def soketi() -> Iterator[Soketi]:
    """One shared server with the default app (client messages on, no user authentication).

    Shared because starting soketi costs ~1 s; tests must use their own channel names.
    """
    with Soketi() as server:
        yield server


@pytest.fixture
def soketi_factory() -> Iterator[SoketiFactory]:
    """Start extra servers with custom options: `soketi_factory(user_authentication=True)`.

    Takes Soketi's keyword arguments, returns it started; stops every one at teardown.
    """
    started: list[Soketi] = []

    def make(**options: Any) -> Soketi:
        server = Soketi(**options)
        started.append(server)
        return server.start()

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def installed() -> Iterator[Installation]:
    """The service's wheel, built from this checkout and installed alone in a fresh venv (once a
    session: about 30-60 s); the conformance and the packaging checks run it."""
    with installation() as found:
        yield found


@pytest.fixture
async def slow_pusher(soketi: Soketi) -> AsyncIterator[TcpProxy]:
    """soketi behind a relay that holds each request 1 s: executions stay in flight a while."""
    proxy = await TcpProxy(soketi.port, delay=1.0).start()
    yield proxy
    await proxy.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "all_generations: run the module's stack tests under engine generations g1, g2 and g3"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "generation" in metafunc.fixturenames and metafunc.definition.get_closest_marker("all_generations"):
        chosen = os.environ.get("MESG_PUSHER_TEST_GENERATION")
        generations = [engine_generation()[0]] if chosen else list(GENERATIONS)
        metafunc.parametrize("generation", generations, indirect=True, scope="module")


@pytest.fixture(scope="module")
def generation(request: pytest.FixtureRequest) -> str:
    """The engine generation of this module's stack: a parameter, else the environment's."""
    return str(getattr(request, "param", None) or engine_generation()[0])


@pytest.fixture(scope="module")
def stack(soketi: Soketi, generation: str) -> Iterator[Stack]:
    """soketi, the local engine and the service (one process per runner), shared by a test module."""
    with running_stack(soketi, generation=generation) as running:
        yield running


@pytest.fixture
async def app(stack: Stack) -> AsyncIterator[Application]:
    """A MESG application connected to the stack's engine."""
    async with Application.connect(stack.engine.endpoint) as application:
        yield application


@pytest.fixture
async def pusher_instance(app: Application) -> bytes:
    """The instance hash of com.mesg.pusher, resolved as an application does."""
    return await app.resolve("com.mesg.pusher")
