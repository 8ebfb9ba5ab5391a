"""``mesg-local-engine`` (or ``python -m mesg_local_engine``): run the engine, optionally with
the service it deploys.

It deploys the service of ``--mesg-yml`` (default: ``./mesg.yml``, as ``mesg-cli service:dev``
run in the service's folder) and starts one instance of it.

``--generation g1|g2|g3`` picks the engine it stands in for: v0.16, v0.17-v0.20 or
v0.21-v0.26; ``--runners N`` (g2, g3) runs the instance as N runners, one per emulated engine
node, each with its own runner hash (and, g3, its own Register signature).

It prints one line on stdout once it accepts connections, for scripts to parse (logs and the
service's own output go to stderr); see ``Deployment.ready_line``::

    READY endpoint=127.0.0.1:50052 token=<base58 instance hash> service=<base58 service hash>
          generation=g3 env=<base58 env hash> runners=<runner hash>:<signature>,...

With ``--run-service CMD...`` it starts CMD the way the engine starts the service container,
once per runner: with the instance's env (mesg.yml defaults overridden by ``--env``) plus the
generation's ``MESG_*`` variables. SIGTERM or SIGINT stops the children (SIGTERM, then SIGKILL
after ``--stop-timeout`` seconds, like ``docker stop``) and then the engine. If a child exits on
its own, the others and the engine stop too, with that child's status.

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

from mesg_local_engine.definition import load_service
from mesg_local_engine.deployment import add_generation_option
from mesg_local_engine.hash_text import b58
from mesg_local_engine.server import LocalEngine, start_engine
from mesg_local_engine.state import LocalEngineError

logger = logging.getLogger(__name__)

__all__ = ["ENGINE_VARIABLES", "build_parser", "main", "service_env"]

DEFAULT_PORT = 50052

#: Every variable an engine of some generation sets in a service's container.
ENGINE_VARIABLES = frozenset(
    {
        "MESG_ENDPOINT",
        "MESG_TOKEN",
        "MESG_INSTANCE_HASH",
        "MESG_RUNNER_HASH",
        "MESG_SERVICE_HASH",
        "MESG_ENV_HASH",
        "MESG_REGISTER_SIGNATURE",
    }
)


def build_parser(prog: str = "mesg-local-engine") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local stand-in for a MESG engine (v0.16 to v0.26) with a service deployed.",
    )
    add_generation_option(parser)
    parser.add_argument(
        "--runners",
        type=int,
        default=1,
        metavar="N",
        help="g2/g3: runners of the instance, one per emulated engine node; with --run-service, "
        "one service process each (default 1)",
    )
    parser.add_argument(
        "--key-seed",
        default="",
        metavar="TEXT",
        help="g3: seed of the nodes' signing keys; the same seed after a restart keeps the "
        "runners' MESG_REGISTER_SIGNATURE valid (default: a fixed one)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    parser.add_argument(
        "--mesg-yml", type=Path, default=Path("mesg.yml"), help="service definition (default: ./mesg.yml)"
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
    except (LocalEngineError, ValueError, OSError) as exc:  # DefinitionError is a ValueError
        print(f"local engine: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace) -> int:
    engine = await start_engine(
        args.host,
        args.port,
        load_service(args.mesg_yml),
        args.env,
        max_finished_executions=args.max_finished_executions,
        state_file=args.state_file,
        generation=args.generation,
        runners=args.runners,
        key_seed=args.key_seed.encode(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Fault injection for tests, outside gRPC: SIGUSR1 ends every open stream cleanly.
    loop.add_signal_handler(signal.SIGUSR1, _close_streams, engine)
    try:
        print(engine.deployment.ready_line(), flush=True)
        logger.info(
            "local engine (%s) serving %s (service %s, sid %s) on %s%s",
            args.generation,
            engine.service.name,
            b58(engine.service_hash),
            engine.service.sid,
            engine.endpoint,
            f", {args.runners} runner(s)" if engine.registry is not None else "",
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
    """Run one service child per runner until one exits or ``stop`` is set; the exit status."""
    children = []
    for runner in range(max(1, len(engine.deployment.runners))):
        child = await asyncio.create_subprocess_exec(
            *command,
            env=service_env(engine, os.environ, runner),
            # Our stdout carries only the READY line: a reader may stop reading after it, and a
            # chatty child writing into that full pipe would stall.
            stdout=sys.stderr,
            # Its own session: a terminal's Ctrl-C reaches only us, and the child then gets
            # exactly one SIGTERM, as `docker stop` would send it.
            start_new_session=True,
        )
        logger.info("started service process %d (runner %d): %s", child.pid, runner, " ".join(command))
        children.append(child)
    exits = [asyncio.ensure_future(child.wait()) for child in children]
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((*exits, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    status = 0
    for child, exited in zip(children, exits, strict=True):
        if exited.done() and not status:
            logger.warning("service process %d exited with status %d", child.pid, exited.result())
            status = _exit_status(exited.result())
    await asyncio.gather(*(_stop_child(c, e, stop_timeout) for c, e in zip(children, exits, strict=True)))
    return status


async def _stop_child(
    child: asyncio.subprocess.Process, exited: asyncio.Future[int], stop_timeout: float
) -> None:
    """SIGTERM, then SIGKILL after ``stop_timeout`` seconds, as ``docker stop``."""
    if exited.done():
        return
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


def _close_streams(engine: LocalEngine) -> None:
    count = engine.state.close_streams()
    logger.warning("SIGUSR1: closing %d open streams", count)


def service_env(engine: LocalEngine, base: Mapping[str, str], runner: int = 0) -> dict[str, str]:
    """A service process's environment: ``base``, the instance's env, then the MESG_ variables
    of runner number ``runner`` (see ``Deployment.mesg_env``).

    Instance values win over ``base`` even when empty, as in the engine's container, where
    an empty ``KEY=`` default (e.g. a credential left to the operator) stays empty.
    """
    # What the engine sets replaces, never mixes with, what the caller's shell had: a leftover
    # MESG_TOKEN next to a G3 set would be a contradictory set the service refuses.
    env = {key: value for key, value in base.items() if key not in ENGINE_VARIABLES}
    for item in engine.env:
        key, _, value = item.partition("=")
        env[key] = value
    env.update(engine.deployment.mesg_env(runner))
    return env


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code
