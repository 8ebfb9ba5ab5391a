"""Entry point: ``mesg-pusher`` runs the service; ``exec`` and ``check`` are the operator's commands.

The one module that wires the service together: it reads the settings, builds the engine
client, the Pusher clients, the receiving side, the coalescer and the worker, hands each what
it needs, and registers the collectors that read them when metrics are on. Every other
module knows only the layers below its own (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping

from mesg_pusher import collectors, metrics
from mesg_pusher.coalesce import Coalescer
from mesg_pusher.config import PusherSettings, ServiceSettings, merged_environment
from mesg_pusher.definition import load_definition, locate_definition
from mesg_pusher.engine import connect
from mesg_pusher.errors import ConfigError, InputError
from mesg_pusher.logs import configure_logging, log_format
from mesg_pusher.monitor import Health, Monitor, port_from_environment
from mesg_pusher.pusher_client import ClientPool
from mesg_pusher.receive import Emitter, ReceiveSettings, Receiving
from mesg_pusher.tasks import TASKS, Handler, TaskContext, check_registry
from mesg_pusher.worker import Worker

logger = logging.getLogger("mesg_pusher")

USAGE = """usage: mesg-pusher [COMMAND] [ARGS...]

With no command, run the service (the engine starts it with MESG_ENDPOINT and, depending on
its version, MESG_TOKEN, MESG_RUNNER_HASH or MESG_REGISTER_SIGNATURE set).

commands:
  exec     run one task directly against Pusher, without the engine; prints its outputs as JSON
  check    show the settings (secrets masked) and try Pusher, and the engine if MESG_ENDPOINT is set

Each command takes --help.
"""


async def start_monitor(
    port: int | None, worker: Worker, emitter: Emitter, coalescer: Coalescer | None, stop: asyncio.Event
) -> Monitor:
    """Metrics recorded and served with health on ``port``; without it (or if it cannot be
    bound), nothing recorded or served."""
    if port is None:
        return Monitor()
    recorder, registry = collectors.enable(worker, emitter, coalescer)
    monitor = await Monitor.start(port, registry, Health(recorder, worker.outbox, stop))
    if not monitor.serving:
        metrics.disable()
    return monitor


async def serve(
    settings: ServiceSettings,
    pusher_settings: PusherSettings,
    handlers: Mapping[str, Handler] = TASKS,
    receive_settings: ReceiveSettings | None = None,
    metrics_port: int | None = None,
) -> None:
    """Run the worker until SIGTERM/SIGINT; a second signal exits at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(128 + signum)
        logger.info(
            "%s: finishing in-flight executions (grace %g s)",
            signal.Signals(signum).name,
            settings.grace_period,
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    engine = connect(settings.identity, keepalive_ms=settings.keepalive_ms)
    # One SSL context per process: the system store plus PUSHER_CA_BUNDLE, if set.
    pool = ClientPool(pusher_settings.ssl_context)
    # The receiving side: listener and webhook endpoint, when configured.
    receiving = Receiving(engine, pusher_settings, receive_settings or ReceiveSettings())
    coalescer = Coalescer() if settings.coalesce else None
    worker = Worker(
        engine,
        handlers,
        TaskContext(pusher_settings, pool, receiving.listener, coalescer),
        concurrency=settings.concurrency,
        grace_period=settings.grace_period,
    )
    monitor = await start_monitor(metrics_port, worker, receiving.emitter, coalescer, stop)
    try:
        await receiving.start()
        await worker.run(stop)
    finally:
        if coalescer is not None and coalescer.calls:
            logger.info(
                "coalescing: %d triggers sent in %d calls to Pusher", coalescer.events, coalescer.calls
            )
        await receiving.stop()
        await pool.close()
        await engine.close()
        await monitor.stop()
        metrics.disable()


def run_service() -> int:
    """Start the service as the engine does: configuration from the environment and .env."""
    environment = merged_environment()
    fmt = "text"  # until LOG_FORMAT is read, so that its own error can be shown
    try:
        fmt = log_format(environment)
        settings = ServiceSettings.from_environment(environment)
        pusher_settings = PusherSettings(environment)
        receive_settings = ReceiveSettings.from_environment(environment)
        metrics_port = port_from_environment(environment)
        path = locate_definition()
        check_registry(load_definition(path))
    except (ConfigError, InputError, ValueError) as exc:
        configure_logging("INFO", (), fmt)
        logger.error("cannot start: %s", exc)
        return 2
    secrets = pusher_settings.secrets + settings.secrets + receive_settings.secrets
    configure_logging(settings.log_level, secrets, fmt)
    identity = settings.identity
    logger.info(
        "mesg-pusher starting: engine %s (%s, %s%s), definition %s, concurrency %d",
        settings.endpoint,
        identity.generation,
        identity.engine,
        f", runner {identity.runner}" if identity.generation != "g1" else "",
        path,
        settings.concurrency,
    )
    if pusher_settings.ca_bundle is not None:
        logger.info("trusting the CA certificates in PUSHER_CA_BUNDLE %s", pusher_settings.ca_bundle)
    try:
        pusher_settings.resolve({})
    except (ConfigError, InputError) as exc:
        logger.warning("no usable default Pusher settings (%s); executions must give them", exc)
    asyncio.run(
        serve(settings, pusher_settings, receive_settings=receive_settings, metrics_port=metrics_port)
    )
    return 0


# Subcommand -> module whose main(argv) runs it; imported only when asked for.
COMMANDS = {
    "exec": "mesg_pusher.commands.exec_task",
    "check": "mesg_pusher.commands.check",
}


def _command(name: str) -> Callable[[list[str]], int]:
    import importlib

    command: Callable[[list[str]], int] = importlib.import_module(COMMANDS[name]).main
    return command


def main(argv: list[str] | None = None) -> int:
    """``mesg-pusher`` and ``python -m mesg_pusher``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return run_service()
    if args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args[0] not in COMMANDS:
        print(f"unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return _command(args[0])(args[1:])
