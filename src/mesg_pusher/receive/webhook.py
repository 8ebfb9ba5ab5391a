"""Pusher webhooks over HTTP: each event in a signed batch becomes one ``webhook`` MESG event.

What is checked (signature, freshness) and how events become MESG data is ``webhook_body``'s;
this module is the HTTP side.

Pusher retries a webhook that is not answered 2xx, so the answer is 200 only once the engine
accepted every event of the batch; when the event queue is full or the engine does not
accept in time, the events are withdrawn and the answer is 503, and Pusher's retry covers
the outage (delivery is at least once: a retry after a late acceptance can repeat events).

The endpoint faces the internet, so anyone can call it: connections are capped and each
request has a deadline (``receive.gate``), and what clients do wrong (hanging up mid-body,
malformed HTTP) is logged at DEBUG only, never as an error with a traceback per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import aiohttp.http_exceptions
from aiohttp import web

from mesg_pusher.receive.emitter import Emitter, Outcome
from mesg_pusher.receive.gate import BACKLOG, MAX_CONNECTIONS, REQUEST_TIMEOUT, Gate, Tally
from mesg_pusher.receive.webhook_body import Malformed, WebhookToken, events_of, signed_by

logger = logging.getLogger(__name__)
# aiohttp's own server log: every record on it is about a client (malformed HTTP, a connection
# lost while answering), since the handler logs its own failures itself.
http_logger = logging.getLogger(f"{__name__}.http")

MAX_BODY = 256 * 1024
ACCEPT_TIMEOUT = 5.0
PATHS = ("/", "/webhook")


class WebhookServer:
    """An aiohttp server on ``port``, answering POST ``/`` and ``/webhook`` signed by one of ``tokens``."""

    def __init__(
        self,
        emitter: Emitter,
        tokens: Iterable[WebhookToken],
        port: int,
        *,
        host: str = "0.0.0.0",
        accept_timeout: float = ACCEPT_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._emitter = emitter
        self._tokens = tuple(tokens)
        self._host = host
        self.port = port
        self._accept_timeout = accept_timeout
        self._max_connections = max_connections
        self._request_timeout = request_timeout
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.gate: Gate | None = None
        # Anyone can POST here: forged requests are counted, not logged one line each.
        self._forged = Tally(
            lambda counts: (
                f"webhook endpoint: refused {counts['forged']} requests with an unknown key "
                "or a bad signature (HTTP 401)"
            )
        )

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._rearm])
        for path in PATHS:
            app.router.add_post(path, self._guarded)
        self._runner = web.AppRunner(app, access_log=None, logger=http_logger)
        await self._runner.setup()
        assert self._runner.server is not None
        self.gate = Gate(
            self._runner.server, max_connections=self._max_connections, request_timeout=self._request_timeout
        )
        # Our own listening socket (not aiohttp's TCPSite), so that every connection meets the gate.
        self._listener = await asyncio.get_running_loop().create_server(
            self.gate, self._host, self.port, backlog=BACKLOG
        )
        logger.info(
            "webhook endpoint listening on %s:%d (at most %d connections, %g s per request; "
            "signatures of key %s accepted)",
            self._host,
            self.port,
            self._max_connections,
            self._request_timeout,
            ", ".join(dict.fromkeys(token.key for token in self._tokens)),
        )

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.gate is not None:
            self.gate.close()
        self._forged.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _rearm(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every answer (404s and 405s included) restarts the connection's request deadline."""
        try:
            return await handler(request)
        finally:
            if self.gate is not None:
                self.gate.answered(request.transport)

    async def _guarded(self, request: web.Request) -> web.Response:
        """The handler, whose own failures are logged here (aiohttp's log is only about clients)."""
        try:
            return await self._handle(request)
        except (
            ConnectionError,
            aiohttp.ClientPayloadError,
            aiohttp.http_exceptions.HttpProcessingError,
        ) as exc:
            logger.debug("webhook client hung up or sent a broken body: %s", exc or type(exc).__name__)
            return _answer(400, "incomplete request")  # not sent if the client is gone
        except Exception:
            logger.exception("webhook request failed")
            return _answer(500, "internal error in mesg-pusher; see its log")

    async def _handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _answer(413, f"body over {MAX_BODY} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, f"body over {MAX_BODY} bytes")
        if self.gate is not None:
            self.gate.request_read(request.transport)
        key = request.headers.get("X-Pusher-Key", "")
        signature = request.headers.get("X-Pusher-Signature", "")
        if not signed_by(self._tokens, key, signature, raw):
            self._forged.note("forged")
            return _answer(401, "unknown key or bad signature")
        try:
            events = events_of(raw)
        except Malformed as exc:
            logger.warning("webhook refused (HTTP 400): %s", exc)
            return _answer(400, f"malformed webhook body: {exc}")
        return await self._emit(events)

    async def _emit(self, events: list[dict[str, Any]]) -> web.Response:
        if self._emitter.room() < len(events):
            logger.warning("webhook answered 503: the event queue is full")
            return _answer(503, "event queue full; retry later")
        pending = [self._emitter.emit("webhook", event) for event in events]
        done, late = await asyncio.wait(pending, timeout=self._accept_timeout) if pending else (set(), set())
        if late:
            for future in pending:
                future.cancel()  # withdrawn: Pusher's retry will bring them again
            logger.warning("webhook answered 503: the engine did not accept its events in time")
            return _answer(503, "engine unavailable; retry later")
        outcomes: list[Outcome] = [f.result() for f in done]
        if "dropped" in outcomes:
            return _answer(503, "events dropped; retry later")
        # A rejection is our own bug (data not matching mesg.yml): logged by the emitter,
        # and a retry cannot help, so it does not hold the other events back.
        return _answer(200, "ok")


def _answer(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"status": text}), content_type="application/json")


class _ClientFaults(logging.Filter):
    """Shows aiohttp's server records at DEBUG: each is one client's fault, not the service's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return http_logger.isEnabledFor(logging.DEBUG)


http_logger.addFilter(_ClientFaults())
