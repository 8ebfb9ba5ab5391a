"""``received`` events under G2 (``Event.Create``) and G3 (``Runner.Event``), two runners.

Each runner is a process with its own listener, and ``PUSHER_SUBSCRIBE`` is the instance's
env, so every runner listens: one Pusher event becomes one ``received`` event per runner
(README, "G2 and G3: several runners"). The engine publishes each for the instance.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.soketi import Soketi
from tests.support.stack import running_stack

RUNNERS = 2


@pytest.mark.parametrize("generation", ["g2", "g3"])
async def test_received_event_from_every_runner_reaches_the_engine(soketi: Soketi, generation: str) -> None:
    name = channel("recv")
    with running_stack(soketi, env={"PUSHER_SUBSCRIBE": name}, generation=generation, runners=RUNNERS) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            # Every runner has confirmed its subscription once a subscribe on each returns; the
            # executions are spread at random, so ask until each runner has answered one.
            answered: set[bytes] = set()
            async with asyncio.timeout(30):
                while len(answered) < RUNNERS:
                    result = await run(app, instance, "subscribe", {"channel": name})
                    assert result.ok, result.error
                    answered.add(result.executor)
            events = await app.listen_events(instance, key="received")
            try:
                result = await run(app, instance, "trigger", {"channel": name, "name": "hi", "data": {"n": 1}})
                assert result.ok, result.error
                got = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(3):
                        async for _, data in events:
                            got.append(data)
            finally:
                events.close()
    assert got == [{"channel": name, "event": "hi", "data": {"n": 1}}] * RUNNERS
    assert "Traceback" not in stack.log()
