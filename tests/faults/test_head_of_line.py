"""One Pusher host that never answers must not hold back executions for another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mesg_pusher.local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.stack import Stack


@pytest.fixture
async def silent_host() -> AsyncIterator[int]:
    """Accepts connections, reads, never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.transport.abort()
    server.close()
    await server.wait_closed()


async def test_a_silent_host_does_not_hold_back_other_credentials(
    stack: Stack, app: Application, pusher_instance: bytes, silent_host: int
) -> None:
    stuck_inputs = {"channel": channel(), "name": "e", "data": "x", "port": silent_host, "timeout": 4000}
    stuck = asyncio.gather(*(run(app, pusher_instance, "trigger", dict(stuck_inputs)) for _ in range(20)))
    await asyncio.sleep(0.3)  # the 20 are now waiting on the silent host
    fine = await asyncio.gather(
        *(
            run(app, pusher_instance, "trigger", {"channel": channel(), "name": "e", "data": "x"})
            for _ in range(20)
        )
    )
    assert all(r.ok for r in fine), [r.error for r in fine]
    assert not stuck.done()  # the healthy ones finished while the silent host still held its 20
    stalled = await stuck
    assert all(r.status == "Failed" and "no answer from Pusher" in (r.error or "") for r in stalled)
