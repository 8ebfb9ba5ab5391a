"""The demo (``bash scripts/demo``, or ``python -m tools.demo`` from the repository root): every
task executed as a MESG application would, with a live subscriber.

A developer's tool, so it lives with the repository's other ones and ships in no distribution:
it needs the checkout (its mesg.yml, soketi in node_modules) and the local engine. Starts the
local engine (``--generation``: v0.16, v0.17-v0.20 or v0.21-v0.26 stand-in) with the
service attached as ``--runners`` runners, and a local soketi unless ``.env`` holds real Pusher
credentials; then resolves ``com.mesg.pusher``, runs each task and prints what it returned next
to what a WebSocket subscriber received, and which runner ran it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from mesg_local_engine import Application
from mesg_local_engine.deployment import add_generation_option
from mesg_local_engine.hash_text import b58
from mesg_pusher.config import PusherSettings, merged_environment
from mesg_pusher.errors import ConfigError
from tests.support.processes import EngineProcess, ServiceProcess, start_services, terminate_all
from tests.support.progress import Progress
from tests.support.pusher_ws import PusherWS, sign_private
from tests.support.soketi import Soketi


def _show(label: str, value: Any) -> None:
    print(f"  {label:10} {json.dumps(value, ensure_ascii=False)}")


@contextlib.contextmanager
def pusher_target() -> Iterator[tuple[dict[str, str], str, str, str]]:
    """(PUSHER_* env, WebSocket URL, key, secret): real Pusher from .env, else a local soketi."""
    environment = merged_environment()
    settings = PusherSettings(environment)
    try:
        options = settings.resolve({})
    except ConfigError:
        with Soketi() as soketi:
            print(f"Pusher: local soketi on {soketi.http_url} (put PUSHER_* in .env to use real Pusher)")
            yield soketi.pusher_env(), soketi.ws_url(), soketi.app.key, soketi.app.secret
        return
    env = {k: v for k, v in environment.items() if k.startswith("PUSHER_") and v}
    cluster = environment.get("PUSHER_CLUSTER") or "mt1"
    ws = f"wss://ws-{cluster}.pusher.com/app/{options.key}?protocol=7&client=mesg-pusher-demo&version=1"
    print(f"Pusher: {options.host} (from .env)")
    yield env, ws, options.key, options.secret


_ENGINES = {"g1": "v0.16", "g2": "v0.17-v0.20", "g3": "v0.21-v0.26"}


async def demo(generation: str = "g1", runners: int = 1) -> int:
    with pusher_target() as (env, ws_url, key, secret):
        engine = EngineProcess(env=env, generation=generation, runners=runners).start()
        services: tuple[ServiceProcess, ...] = ()
        try:
            services = start_services(engine)
            names = (
                {
                    runner.hash: f"runner {runner.node} ({b58(runner.hash)[:8]}…)"
                    for runner in engine.deployment.runners
                }
                if engine.deployment is not None
                else {}
            )
            attached = f"{len(services)} service processes, one per runner" if names else "service attached"
            print(
                f"engine: local {_ENGINES[generation]} stand-in ({generation}) on {engine.endpoint}; "
                f"{attached} (instance {engine.token[:8]}…)\n"
            )
            async with Application.connect(engine.endpoint) as app, PusherWS(ws_url) as ws:
                instance = await app.resolve("com.mesg.pusher")
                room = f"demo-{uuid.uuid4().hex[:6]}"
                presence = f"presence-{room}"
                await ws.subscribe(room)
                data = '{"user_id":"alice"}'
                await ws.subscribe(
                    presence, auth=sign_private(key, secret, ws.socket_id, presence, data), channel_data=data
                )
                print(f"subscriber: connected (socket {ws.socket_id}), subscribed to {room} and {presence}\n")

                progress, ran = Progress(), list[str]()  # a counter on a terminal, nothing otherwise

                async def task(name: str, inputs: dict[str, Any], expect: int = 0) -> None:
                    print(f"executeTask {name}")
                    _show("inputs", inputs)
                    progress.show(f"task {len(ran) + 1} of 8: waiting for {name}…")
                    result = await app.execute_task_and_wait_result(instance, name, inputs, timeout=30)
                    progress.clear()
                    ran.append(name)
                    _show("outputs" if result.ok else "error", result.outputs if result.ok else result.error)
                    if names:
                        print(f"  {'ran on':10} {names.get(result.executor, '?')}")
                    for _ in range(expect):
                        event = await ws.next_event(timeout=10)
                        _show("received", {k: event[k] for k in ("channel", "event", "data")})
                    print()

                await task(
                    "trigger", {"channel": room, "name": "greeting", "data": {"text": "hello from MESG"}}, 1
                )
                await task(
                    "triggerBatch",
                    {
                        "batch": [
                            {"channel": room, "name": "first", "data": {"n": 1}},
                            {"channel": room, "name": "second", "data": "plain text"},
                        ]
                    },
                    2,
                )
                await task("channels", {"filter_by_prefix": "demo-"})
                await task("channel", {"channel": room, "info": "subscription_count"})
                await task("users", {"channel": presence})
                await task("authorizeChannel", {"socket_id": ws.socket_id, "channel": f"private-{room}"})
                await task("authenticateUser", {"socket_id": ws.socket_id, "user_data": {"id": "alice"}})
                await task("trigger", {"channel": "not a channel!", "name": "x", "data": "x"})
        finally:
            codes = [service.stop() for service in services]
            terminate_all([engine])
        print(f"service stopped (exit {', '.join(map(str, codes))}); everything the demo started is stopped")
        return 0 if codes and all(code == 0 for code in codes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__)
    add_generation_option(parser)
    parser.add_argument(
        "--runners", type=int, default=None, metavar="N", help="g2/g3: runners of the instance (default 2)"
    )
    args = parser.parse_args(argv)
    if args.generation == "g1" and args.runners not in (None, 1):
        parser.error("g1 (engine v0.16) has no runners: an instance runs as one process")
    runners = args.runners or (1 if args.generation == "g1" else 2)
    return asyncio.run(demo(args.generation, runners))


if __name__ == "__main__":
    sys.exit(main())
