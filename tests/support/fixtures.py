"""pytest fixtures running real soketi servers.

Enabled from tests/conftest.py with `pytest_plugins = ["tests.support.fixtures"]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mesg_pusher.harness.soketi import Soketi

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
