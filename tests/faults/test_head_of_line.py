"""One Pusher host that never answers must not hold back executions for another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mesg_local_engine.app import Application, ExecutionResult
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
    stuck_inputs = {"channel": channel(), "name": "e", "data": "x", "port": silent_host, "timeout": 8000}
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
    # Whether the silent host held them before or after the request was written (connect or TLS
    # not completed, or no answer) depends on the moment each reached it: either is the truth, and
    # each names that host, never the healthy one.
    silent = f"127.0.0.1:{silent_host}"
    assert all(
        r.status == "Failed"
        and (r.error or "").startswith(("pusher_unreachable:", "pusher_unknown_outcome:", "pusher_timeout:"))
        and silent in (r.error or "")
        for r in stalled
    ), [(r.status, r.error) for r in stalled]


async def test_every_trigger_to_a_stalled_pusher_ends_within_its_timeout(
    stack: Stack, app: Application, pusher_instance: bytes, silent_host: int
) -> None:
    """PUSHER_TIMEOUT (here the execution's 3 s) bounds each one, those queued behind stalled calls too.

    Time is the point here: one queued behind a stalled call and then given a whole timeout of
    its own would end after 6 s or more; the bound leaves a loaded machine 2.5 s on top of the 3.
    """
    inputs = {"channel": channel(), "name": "e", "data": "x", "port": silent_host, "timeout": 3000}
    loop = asyncio.get_running_loop()

    async def timed_trigger(delay: float) -> tuple[float, ExecutionResult]:
        await asyncio.sleep(delay)
        began = loop.time()
        result = await run(app, pusher_instance, "trigger", dict(inputs))
        return loop.time() - began, result

    # One after another, 15 ms apart: more calls to that host than the service lets run at
    # once, so the later ones wait behind calls that will never be answered.
    ends = await asyncio.gather(*(timed_trigger(0.015 * i) for i in range(40)))
    for elapsed, result in ends:
        assert result.status == "Failed", result
        assert "no answer from Pusher" in (result.error or "") and "3 s" in (result.error or ""), (
            result.error
        )
        assert elapsed < 3 + 2.5, sorted(round(e, 2) for e, _ in ends)
