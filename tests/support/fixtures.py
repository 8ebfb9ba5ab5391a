"""pytest fixtures running real soketi servers.

Enabled from tests/conftest.py with `pytest_plugins = ["tests.support.fixtures"]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from mesg_pusher.harness.soketi import Soketi
from mesg_pusher.local_engine.app import Application
from tests.support.stack import Stack, running_stack

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


@pytest.fixture(scope="module")
def stack(soketi: Soketi) -> Iterator[Stack]:
    """soketi, the local engine and the service, shared by a test module."""
    with running_stack(soketi) as running:
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
