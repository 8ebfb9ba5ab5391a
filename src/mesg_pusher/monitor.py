"""The operator's HTTP port (``MESG_PUSHER_METRICS_PORT``): ``/healthz`` and Prometheus ``/metrics``.

``/healthz`` answers 200 while the engine's execution stream is up and results reach the
engine, and 503 with the reason otherwise, so an orchestrator restarts or stops routing to a
service that can no longer do its work. It runs on the service's event loop: a scrape costs
the loop a few milliseconds, and a loop too busy to answer is worth knowing about.

What ``/metrics`` serves is the registry that ``collectors.enable`` fills; ``cli`` wires the
two, so this module knows the recorder's stream state and the outbox, not what they read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mesg_pusher import env
from mesg_pusher.engine import CALL_TIMEOUT
from mesg_pusher.errors import ConfigError

if TYPE_CHECKING:
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from mesg_pusher.collectors import Recorder
    from mesg_pusher.outbox import Outbox

logger = logging.getLogger(__name__)

PORT_VARIABLE = "MESG_PUSHER_METRICS_PORT"
# Results waiting this long with none delivered mean the engine takes no results, even if the
# stream looks up: the length of one Update call's timeout.
STALL_SECONDS = CALL_TIMEOUT


def port_from_environment(environment: Mapping[str, str]) -> int | None:
    """``MESG_PUSHER_METRICS_PORT``: the health and metrics port, or None (off)."""
    port = env.port(environment, PORT_VARIABLE)
    if port is not None and env.text(environment, "PUSHER_WEBHOOK_PORT") == str(port):
        raise ConfigError(
            f"variables {PORT_VARIABLE} and PUSHER_WEBHOOK_PORT are both {port}: give each its own port"
        )
    return port


class Health:
    """The verdict of ``/healthz``: None while healthy, else why not."""

    def __init__(self, recorder: Recorder, outbox: Outbox, stop: asyncio.Event) -> None:
        self._recorder = recorder
        self._outbox = outbox
        self._stop = stop
        self._delivered = -1
        self._progress = time.monotonic()

    def problem(self) -> str | None:
        now = time.monotonic()
        done = self._outbox.delivered + self._outbox.rejected
        if done != self._delivered:
            self._delivered, self._progress = done, now
        waiting = self._outbox.pending
        if self._stop.is_set():
            return f"stopping: finishing in-flight executions, {waiting} results waiting for the engine"
        stream = self._recorder.stream
        if not stream.up:
            held = f"; {waiting} results waiting for the engine" if waiting else ""
            return f"engine execution stream down for {now - stream.since:.0f} s: {stream.reason}{held}"
        if waiting and now - self._progress > STALL_SECONDS:
            return (
                f"{waiting} results waiting for the engine; none delivered for {now - self._progress:.0f} s"
            )
        return None


class Monitor:
    """An aiohttp server for ``/healthz`` and ``/metrics`` on all interfaces (the deployment publishes
    the port). ``Monitor()`` serves nothing: the port is not set, or could not be bound.
    """

    def __init__(self, runner: web.AppRunner | None = None) -> None:
        self._runner = runner

    @property
    def serving(self) -> bool:
        return self._runner is not None

    @classmethod
    async def start(
        cls, port: int, registry: CollectorRegistry, health: Health, host: str = "0.0.0.0"
    ) -> Monitor:
        """Serve ``health`` and ``registry`` on ``port``; a port that cannot be bound is logged, not fatal."""
        # aiohttp.web and prometheus_client only when asked for, as for the webhook endpoint.
        from aiohttp import web
        from prometheus_client.aiohttp import make_aiohttp_handler

        async def healthz(request: web.Request) -> web.Response:
            problem = health.problem()
            body = {"status": "ok"} if problem is None else {"status": "unavailable", "reason": problem}
            return web.Response(
                status=200 if problem is None else 503, text=json.dumps(body), content_type="application/json"
            )

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/metrics", make_aiohttp_handler(registry))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            logger.error("health and metrics are off: cannot listen on port %d: %s", port, exc)
            return cls()
        logger.info("health and metrics on %s:%d (/healthz, /metrics)", host, port)
        return cls(runner)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
