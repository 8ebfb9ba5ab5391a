"""The G2 and G3 adapters against the local engine over real gRPC on loopback.

What the worker, outbox and emitter rely on whatever the generation: each runner sees its own
executions only, results and events reach the engine, and under G3 a lost token (engine
restart, another Register of the runner) is recovered by registering again, while a wrong
signature or a refused result is reported without crashing or retrying forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mesg_local_engine import LocalEngine, start_engine
from mesg_local_engine.app import Application
from mesg_local_engine.signature import SigningKey, register_payload
from mesg_pusher.engine import EngineClient, EngineIdentity, Execution, connect
from mesg_pusher.engine.g3 import G3Client
from mesg_pusher.errors import EngineError, EngineRejected
from mesg_pusher.outbox import Outbox, Result

TRIGGER = {"name": "my-event", "data": {"x": 1}, "channel": "c"}
SENT = {"message": "sent"}
RECEIVED = {"channel": "c", "event": "e", "data": {"n": 1}}


def identity(engine: LocalEngine, runner: int = 0, **override: str) -> EngineIdentity:
    """What the engine would put in runner ``runner``'s environment, with ``override``."""
    return EngineIdentity.from_env({**engine.deployment.mesg_env(runner), **override})


Engines = Callable[..., Awaitable[LocalEngine]]
Clients = Callable[[EngineIdentity], EngineClient]


@pytest.fixture
async def engines() -> AsyncIterator[Engines]:
    """``start_engine``, with every engine stopped at teardown."""
    started: list[LocalEngine] = []

    async def start(**options: Any) -> LocalEngine:
        started.append(await start_engine(**options))
        return started[-1]

    yield start
    for engine in started:
        await engine.stop(0)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """``connect``, with every client closed at teardown."""
    made: list[EngineClient] = []

    def make(who: EngineIdentity) -> EngineClient:
        made.append(connect(who, keepalive_ms=60_000))
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def collect(client: EngineClient, into: list[Execution], ready: asyncio.Event) -> None:
    async with client.subscribe() as stream:
        ready.set()
        async for execution in stream:
            into.append(execution)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def share(
    engine: LocalEngine, clients: list[EngineClient], count: int
) -> tuple[list[bytes], list[list[Execution]], list[asyncio.Task[None]]]:
    """Subscribe every client, create ``count`` executions, wait until all are received."""
    seen: list[list[Execution]] = [[] for _ in clients]
    readies = [asyncio.Event() for _ in clients]
    tasks = [asyncio.create_task(collect(c, s, r)) for c, s, r in zip(clients, seen, readies, strict=True)]
    async with asyncio.timeout(10):
        await asyncio.gather(*(ready.wait() for ready in readies))
    async with Application.connect(engine.endpoint) as app:
        created = [await app.execute_task(engine.instance_hash, "trigger", TRIGGER) for _ in range(count)]
    await until(lambda: sum(map(len, seen)) >= count)
    return created, seen, tasks


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def status(engine: LocalEngine, execution_hash: bytes) -> tuple[str, str]:
    async with Application.connect(engine.endpoint) as app:
        result = await app.get_execution(execution_hash)
    return result.status, result.error or ""


# --- G2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", ["g2", "g3"])
async def test_runners_share_the_instances_work_each_seeing_its_own(
    engines: Engines, generation: str, clients: Clients
) -> None:
    engine = await engines(generation=generation, runners=2)
    first, second = clients(identity(engine, 0)), clients(identity(engine, 1))
    assert (first.generation, second.generation) == (generation, generation)
    created, seen, tasks = await share(engine, [first, second], 40)
    await asyncio.sleep(0.1)  # nothing more arrives: no execution went to both
    mine, theirs = ({e.hash for e in s} for s in seen)
    assert mine and theirs, "40 random draws among 2 runners left one idle"
    assert mine | theirs == set(created) and not mine & theirs
    assert sum(map(len, seen)) == len(created)
    assert seen[0][0].task_key == "trigger" and seen[0][0].inputs == TRIGGER
    for client, executions in ((first, seen[0]), (second, seen[1])):
        for execution in executions:
            await client.update(execution.hash, SENT)
    assert {await status(engine, h) for h in created} == {("Completed", "")}
    await stop(tasks)


@pytest.mark.parametrize("generation", ["g2", "g3"])
async def test_events_are_the_instances(engines: Engines, generation: str, clients: Clients) -> None:
    engine = await engines(generation=generation, runners=2)
    client = clients(identity(engine, 1))
    async with Application.connect(engine.endpoint) as app:
        listener = await app.listen_events(engine.instance_hash, "received")
        await client.emit("received", RECEIVED)
        async with asyncio.timeout(10):
            assert await anext(listener) == ("received", RECEIVED)
        listener.close()
        # Data that does not match mesg.yml: the engine's refusal, final.
        with pytest.raises(EngineRejected, match='data of event "received" are invalid'):
            await client.emit("received", {"channel": 1})


async def test_g2_error_results_and_refusals(engines: Engines, clients: Clients) -> None:
    engine = await engines(generation="g2", runners=1)
    client = clients(identity(engine))
    created, _, tasks = await share(engine, [client], 1)
    await client.update(created[0], error="no Pusher credentials")
    assert await status(engine, created[0]) == ("Failed", "no Pusher credentials")
    with pytest.raises(EngineRejected, match='instead of "InProgress"'):
        await client.update(created[0], SENT)
    await stop(tasks)


# --- G3 ---------------------------------------------------------------------------------------


async def test_g3_result_of_another_runners_execution_is_refused_for_good(
    engines: Engines, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await engines(generation="g3", runners=2)
    first, second = clients(identity(engine, 0)), clients(identity(engine, 1))
    _, seen, tasks = await share(engine, [first, second], 20)
    theirs = seen[1][0].hash
    with pytest.raises(EngineRejected, match="is not authorized to submit the result"):
        await first.update(theirs, SENT)
    # Through the outbox: logged once, dropped, not retried.
    outbox = Outbox(first)
    with caplog.at_level(logging.ERROR, logger="mesg_pusher.outbox"):
        outbox.submit(Result(theirs, outputs=SENT))
        assert await outbox.drain(5) == 0
    assert (outbox.rejected, outbox.delivered) == (1, 0)
    assert len([r for r in caplog.records if "result dropped" in r.getMessage()]) == 1
    assert await status(engine, theirs) == ("InProgress", "")
    with pytest.raises(EngineRejected, match="not found"):
        await first.update(b"\x05" * 32, SENT)
    await stop(tasks)


async def test_g3_registers_again_when_another_process_takes_the_runner(
    engines: Engines, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await engines(generation="g3", runners=1)
    client = clients(identity(engine))
    assert isinstance(client, G3Client)
    created, _, tasks = await share(engine, [client], 2)
    assert client.registration.registrations == 1
    # Another process started with the same runner's signature registers: our token goes.
    intruder = clients(identity(engine))
    await intruder.emit("received", RECEIVED)
    with caplog.at_level(logging.INFO, logger="mesg_pusher.engine.g3"):
        await client.update(created[0], SENT)
    assert await status(engine, created[0]) == ("Completed", "")
    assert client.registration.registrations == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("another process registered as runner" in m for m in messages), messages
    assert any("registered again as runner" in m for m in messages), messages
    await stop(tasks)


async def test_g3_after_an_engine_restart_registers_again_and_delivers_held_results(
    engines: Engines,
    tmp_path: Path,
    clients: Clients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = tmp_path / "engine.state"
    engine = await engines(generation="g3", runners=1, state_file=state)
    port = int(engine.endpoint.rpartition(":")[2])
    client = clients(identity(engine))
    assert isinstance(client, G3Client)
    created, seen, tasks = await share(engine, [client], 3)
    await client.update(created[0], SENT)
    await engine.stop(0)
    await stop(tasks)
    # The engine is away: results wait in the outbox.
    outbox = Outbox(client)
    for execution in seen[0][1:]:
        outbox.submit(Result(execution.hash, outputs=SENT))
    await until(lambda: outbox.pending == 2 and not outbox.delivered)
    with caplog.at_level(logging.INFO, logger="mesg_pusher.engine.g3"):
        # Same port, same keys, same journal: the executions survive, the tokens do not.
        engine = await engines(generation="g3", runners=1, state_file=state, port=port)
        assert await outbox.drain(20) == 0
    assert (outbox.delivered, outbox.rejected) == (2, 0)
    assert {await status(engine, h) for h in created} == {("Completed", "")}
    assert client.registration.registrations == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("no longer knows our credential token" in m for m in messages), messages
    # And the stream comes back with the new token.
    _, _, tasks = await share(engine, [client], 1)
    assert client.registration.registrations == 2
    await stop(tasks)


async def test_g3_wrong_signature_is_a_clear_retryable_error(
    engines: Engines, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await engines(generation="g3", runners=1)
    forged = SigningKey(b"not one of this engine's nodes").sign(
        register_payload(engine.service_hash, engine.deployment.env_hash)
    )
    client = clients(identity(engine, MESG_REGISTER_SIGNATURE=forged))
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.emit("received", RECEIVED),
        lambda: client.update(b"\x05" * 32, SENT),
    ]
    with caplog.at_level(logging.INFO, logger="mesg_pusher.engine.g3"):
        for call in calls:
            with pytest.raises(EngineError) as caught:
                await call()
            # Retryable (the outbox and emitter hold, the worker reconnects), never final.
            assert not isinstance(caught.value, EngineRejected)
            message = str(caught.value)
            assert "verification of the signature failed" in message
            assert "MESG_REGISTER_SIGNATURE" in message
            assert forged not in message
        with pytest.raises(EngineError, match="signature"):
            async with client.subscribe():
                pass
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # logged once, not per attempt
    assert forged not in errors[0].getMessage() and errors[0].exc_info is None
