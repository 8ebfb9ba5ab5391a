"""The benchmark's floor: read an execution, answer it with one ``Update``, nothing else.

No worker, no in-flight limit, no duplicate check, no outbox: only ``EngineClient``'s stream
read and ``Update`` on grpcio's asyncio API. Its CPU per execution is what any Python service
built on grpcio pays on this machine before doing any work, so the bench prints it next to the
ceiling and the service to show how much of their cost is the engine round trip itself.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from mesg_pusher.config import ServiceSettings, merged_environment
from mesg_pusher.engine import EngineClient, connect
from mesg_pusher.logs import configure_logging

logger = logging.getLogger(__name__)

SENT = {"message": "sent"}


async def answer_all(engine: EngineClient, stop: asyncio.Event) -> None:
    """Answer every execution at once until ``stop``; then wait for the answers in flight."""
    sending: set[asyncio.Task[None]] = set()

    async def read() -> None:
        async with engine.subscribe() as stream:
            logger.info("ready: subscribed to executions (floor)")
            async for execution in stream:
                task = asyncio.create_task(engine.update(execution.hash, SENT))
                sending.add(task)
                task.add_done_callback(sending.discard)

    reading = asyncio.create_task(read())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    reading.cancel()
    stopping.cancel()
    await asyncio.gather(reading, stopping, *sending, return_exceptions=True)


async def serve_floor(settings: ServiceSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    engine = connect(settings.identity, keepalive_ms=settings.keepalive_ms)
    try:
        await answer_all(engine, stop)
    finally:
        await engine.close()


def main() -> int:
    settings = ServiceSettings.from_environment(merged_environment())
    configure_logging(settings.log_level, settings.secrets)
    asyncio.run(serve_floor(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
