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
from mesg_pusher.receive.webhook_body import WebhookToken

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

    def _webhook_tokens(self) -> tuple[WebhookToken, ...]:
        """The app's own key and secret, when the environment gives them, then PUSHER_WEBHOOK_SECRETS."""
        extra = self.settings.webhook_tokens
        if not extra:
            options = self._options("the webhook endpoint")
            return () if options is None else (WebhookToken(options.key, options.secret),)
        try:
            options = self._pusher_settings.resolve({})
        except (ConfigError, InputError) as exc:
            logger.warning(
                "webhook endpoint: only the keys of PUSHER_WEBHOOK_SECRETS are accepted, not the app's (%s)",
                exc,
            )
            return extra
        own = WebhookToken(options.key, options.secret)
        return (own, *(token for token in extra if token != own))

    async def start(self) -> None:
        """Start what the environment asks for; a failure is logged, not fatal to the tasks."""
        self.emitter.start()
        what = "PUSHER_SUBSCRIBE" if self.settings.subscribe else "PUSHER_LISTENER_SIGNIN"
        if self.settings.listens and (options := self._options(what)) is not None:
            if self._engine.generation != "g1":
                # Each runner is its own process with the instance's env: each one listens.
                logger.info(
                    "%s: this runner listens; with several runners of this instance (several "
                    "engine nodes), each listens, so each Pusher event becomes one 'received' "
                    "(or 'online', 'offline') event per runner",
                    what,
                )
            self.listener.start(options, self.settings.subscribe)
        port = self.settings.webhook_port
        if port is not None and (tokens := self._webhook_tokens()):
            from mesg_pusher.receive.webhook import WebhookServer  # aiohttp.web only when asked for

            server = WebhookServer(self.emitter, tokens, port)
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
