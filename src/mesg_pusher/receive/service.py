"""Wiring for ``cli.serve``: the emitter, the listener and the webhook server, started and stopped together."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mesg_pusher.config import PusherOptions, PusherSettings
from mesg_pusher.engine import EngineClient
from mesg_pusher.errors import ConfigError, InputError
from mesg_pusher.receive.emitter import Emitter
from mesg_pusher.receive.listener import Listener
from mesg_pusher.receive.settings import ReceiveSettings

if TYPE_CHECKING:
    from mesg_pusher.receive.webhook import WebhookServer

logger = logging.getLogger(__name__)


class Receiving:
    """Owns the emitter; the listener always exists (the subscribe task may start it later)."""

    def __init__(
        self, engine: EngineClient, pusher_settings: PusherSettings, settings: ReceiveSettings
    ) -> None:
        self.settings = settings
        self._engine = engine
        self.emitter = Emitter(engine)
        self.listener = Listener(self.emitter, settings, ssl_context=pusher_settings.ssl_context)
        self.webhook: WebhookServer | None = None
        self._pusher_settings = pusher_settings

    def _options(self, what: str) -> PusherOptions | None:
        try:
            return self._pusher_settings.resolve({})
        except (ConfigError, InputError) as exc:
            logger.error("%s is off: %s", what, exc)
            return None

    async def start(self) -> None:
        """Start what the environment asks for; a failure is logged, not fatal to the tasks."""
        self.emitter.start()
        if self.settings.subscribe and (options := self._options("PUSHER_SUBSCRIBE")) is not None:
            if self._engine.generation != "g1":
                # Each runner is its own process with the instance's env: each one listens.
                logger.info(
                    "PUSHER_SUBSCRIBE: this runner listens; with several runners of this instance "
                    "(several engine nodes), each listens, so each Pusher event becomes one "
                    "'received' event per runner"
                )
            self.listener.start(options, self.settings.subscribe)
        port = self.settings.webhook_port
        if port is not None and (options := self._options("the webhook endpoint")) is not None:
            from mesg_pusher.receive.webhook import WebhookServer  # aiohttp.web only when asked for

            server = WebhookServer(self.emitter, options, port)
            try:
                await server.start()
            except OSError as exc:
                logger.error("webhook endpoint is off: cannot listen on port %d: %s", port, exc)
            else:
                self.webhook = server

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking events in, then give the queued ones ``timeout`` to reach the engine."""
        if self.webhook is not None:
            await self.webhook.stop()
        await self.listener.stop()
        await self.emitter.close(timeout)
