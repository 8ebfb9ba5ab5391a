"""``python -m mesg_pusher.local_engine``: run the local engine, optionally with the service.

It prints one line on stdout once it accepts connections, for scripts to parse (logs and the
service's own output go to stderr)::

    READY endpoint=127.0.0.1:50052 token=<base58 instance hash> service=<base58 service hash>

With ``--run-service CMD...`` it starts CMD the way the engine starts the service container:
with the instance's env (mesg.yml defaults overridden by ``--env``) plus ``MESG_ENDPOINT`` and
``MESG_TOKEN``. SIGTERM or SIGINT stops the child (SIGTERM, then SIGKILL after
``--stop-timeout`` seconds, like ``docker stop``) and then the engine. If the child exits on
its own, the engine stops too and exits with the child's status.

``--state-file PATH`` keeps executions across restarts (see ``start_engine``). SIGUSR1 ends
every open execution and event stream cleanly (status OK), for fault tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mesg_pusher.base58 import b58encode
from mesg_pusher.definition import load_definition, locate_definition
from mesg_pusher.local_engine.server import LocalEngine, start_engine
from mesg_pusher.local_engine.state import LocalEngineError

logger = logging.getLogger(__name__)

__all__ = ["build_parser", "main", "service_env"]

DEFAULT_PORT = 50052


def build_parser(prog: str = "python -m mesg_pusher.local_engine") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local stand-in for MESG engine v0.16 with this service deployed.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    parser.add_argument(
        "--mesg-yml", type=Path, default=None, help="service definition (default: ./mesg.yml)"
    )
    parser.add_argument(
        "--env",
        action="extend",
        nargs="+",
        default=[],
        metavar="K=V",
        help="override a mesg.yml env default for the instance (repeatable)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        help="seconds the service gets after SIGTERM before SIGKILL (default 10)",
    )
    parser.add_argument(
        "--max-finished-executions",
        type=int,
        default=100_000,
        help="finished executions kept for Execution.Get (default 100000)",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="keep executions in this append-only file and replay it at start, so they survive "
        "a restart as in the real engine (default: in memory only)",
    )
    parser.add_argument("--log-level", default="INFO", help="log level (default INFO)")
    parser.add_argument(
        "--run-service",
        nargs=argparse.REMAINDER,
        default=[],
        metavar="CMD",
        help="start CMD as the service process; everything after it is the command",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or until the ``--run-service`` child exits)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(_run(args))
    except (LocalEngineError, ValueError, OSError) as exc:
        print(f"local engine: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    definition = load_definition(args.mesg_yml or locate_definition())
    engine = await start_engine(
        args.host,
        args.port,
        definition,
        args.env,
        max_finished_executions=args.max_finished_executions,
        state_file=args.state_file,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Fault injection for tests, outside gRPC: SIGUSR1 ends every open stream cleanly.
    loop.add_signal_handler(signal.SIGUSR1, _close_streams, engine)
    try:
        print(
            f"READY endpoint={engine.endpoint} token={engine.token} service={b58encode(engine.service_hash)}",
            flush=True,
        )
        logger.info(
            "local engine serving %s (service %s, sid %s) on %s",
            definition.name,
            b58encode(engine.service_hash),
            definition.sid,
            engine.endpoint,
        )
        if not args.run_service:
            await stop.wait()
            return 0
        return await _supervise(engine, args.run_service, stop, args.stop_timeout)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            loop.remove_signal_handler(signum)
        await engine.stop(grace=1.0)
        logger.info("local engine stopped")


async def _supervise(
    engine: LocalEngine, command: Sequence[str], stop: asyncio.Event, stop_timeout: float
) -> int:
    """Run the service child until it exits or ``stop`` is set; return the exit status."""
    child = await asyncio.create_subprocess_exec(
        *command,
        env=service_env(engine, os.environ),
        # Our stdout carries only the READY line: a reader may stop reading after it, and a
        # chatty child writing into that full pipe would stall.
        stdout=sys.stderr,
        # Its own session: a terminal's Ctrl-C reaches only us, and the child then gets
        # exactly one SIGTERM, as `docker stop` would send it.
        start_new_session=True,
    )
    logger.info("started service process %d: %s", child.pid, " ".join(command))
    exited = asyncio.ensure_future(child.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((exited, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if exited.done():
        code = exited.result()
        logger.warning("service process %d exited with status %d", child.pid, code)
        return _exit_status(code)
    logger.info("stopping service process %d", child.pid)
    with contextlib.suppress(ProcessLookupError):
        child.terminate()
    try:
        await asyncio.wait_for(asyncio.shield(exited), stop_timeout)
    except TimeoutError:
        logger.warning("service process %d ignored SIGTERM for %.0fs; killing", child.pid, stop_timeout)
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await exited
    logger.info("service process %d exited with status %s", child.pid, child.returncode)
    return 0


def _close_streams(engine: LocalEngine) -> None:
    count = engine.state.close_streams()
    logger.warning("SIGUSR1: closing %d open streams", count)


def service_env(engine: LocalEngine, base: Mapping[str, str]) -> dict[str, str]:
    """The service's environment: ``base``, then the instance's env, then the MESG_ variables.

    Instance values win over ``base`` even when empty, as in the engine's container, where
    an empty ``PUSHER_APP_ID=`` means "not configured".
    """
    env = dict(base)
    for item in engine.env:
        key, _, value = item.partition("=")
        env[key] = value
    env["MESG_ENDPOINT"] = engine.endpoint
    env["MESG_TOKEN"] = engine.token
    return env


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code
