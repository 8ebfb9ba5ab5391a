"""``mesg-pusher demo``: every task executed as a MESG application would, with a live subscriber.

Starts the local engine (v0.16 stand-in) with the service attached, and a local soketi unless
``.env`` holds real Pusher credentials; then resolves ``com.mesg.pusher``, runs each task and
prints what it returned next to what a WebSocket subscriber received.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

from mesg_pusher.config import PusherSettings, merged_environment
from mesg_pusher.errors import ConfigError
from mesg_pusher.harness.processes import EngineProcess, ServiceProcess
from mesg_pusher.harness.progress import Progress
from mesg_pusher.harness.soketi import Soketi
from mesg_pusher.harness.ws_client import PusherWS, sign_private
from mesg_pusher.local_engine.app import Application


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


async def demo() -> int:
    with pusher_target() as (env, ws_url, key, secret):
        engine = EngineProcess(env=env).start()
        service = ServiceProcess(engine)
        try:
            service.start_ready()
            print(
                f"engine: local v0.16 stand-in on {engine.endpoint}; service attached (token {engine.token[:8]}…)\n"
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
            code = service.stop()
            engine.stop()
        print(f"service stopped (exit {code}); everything the demo started is stopped")
        return 0 if code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="mesg-pusher demo", description=__doc__).parse_args(argv)
    return asyncio.run(demo())
