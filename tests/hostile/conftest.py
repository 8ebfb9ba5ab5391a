"""Fixtures of the hostile-peer suite: raw peers started and stopped per test, tasks run as an
execution runs them (``commands.direct.run_task``: the engine's input checks, the handler, the
real transport; its error text masked as the worker masks it)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mesg_pusher.commands.direct import TaskFailed, run_task
from mesg_pusher.config import PusherSettings
from tests.hostile.peer import Peer, Script

StartPeer = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def peer() -> AsyncIterator[StartPeer]:
    """``await peer(script, host=..., tls=...)``: a started ``Peer``, closed at teardown."""
    started: list[Peer] = []

    async def start(script: Script, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Peer:
        server = await Peer(script, host=host, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


@dataclass
class Outcome:
    """What an execution reports: its outputs, or its error text and the error's class."""

    outputs: dict[str, Any] | None
    error: str | None
    kind: type[BaseException] | None

    @property
    def ok(self) -> bool:
        return self.error is None


async def execute(task: str, inputs: dict[str, Any], settings: PusherSettings) -> Outcome:
    try:
        outputs = await run_task(task, inputs, settings)
    except TaskFailed as failed:
        cause = failed.__cause__
        return Outcome(None, str(failed), type(cause) if cause is not None else None)
    return Outcome(outputs, None, None)


TRIGGER = {"channel": "hostile", "name": "ev", "data": {"n": 1}}
