"""The HTTP transport under the official Pusher SDK: pooled, asynchronous, with safe retries.

The SDK builds and signs each request (``pusher.http.Request``); its ``backend`` hook hands
the request to us. We send it over the ``http1.ConnectionPool`` of its app's endpoint (see
``pool_key``: one per host, port, TLS, proxy and keep-alive, shared by every option set that
reaches the same place, so its connection limit holds for them together) and turn every
outcome into a value or one of our errors (each with its code, ``errors.py``):

- the request never reached Pusher (refused, DNS, proxy unreachable): retried while the
  execution's timeout allows — safe, as Pusher saw nothing (``PusherUnreachable``);
- sent but no complete answer (timeout, connection reset): a write is *not* retried (it may
  have been applied, and a retry could publish twice) and the error says so
  (``PusherUnknownOutcome``); a read is retried, and ends as ``PusherTimeout``;
- 429 Too Many Requests and 503 Service Unavailable: the request was not taken, so it is
  retried, a write too, after the ``Retry-After`` Pusher gave or the backoff (``retry.py``),
  while the timeout allows; a ``Retry-After`` past the deadline fails it at once, saying when
  Pusher wanted it back. Reads are also retried on any other 5xx. Any other error status is
  raised with the status and Pusher's body (``PusherHTTPError``);
- an answer we refuse (too large, a protocol switch, JSON we cannot decode): a write's outcome
  is unknown, a read is not retried (the same answer would come: ``PusherBadAnswer``);
- a request that could not be written as it is (a CR/LF, space or non-ASCII character that
  got past the configuration's checks): ``InputError``, nothing sent.

Text quoted from the peer (bodies, reason phrases) is masked of this option set's secrets,
the proxy's Basic token included, before it goes into an error.

``send(..., raw=True)`` (the raw ``request`` task) takes any 2xx as success and returns it as
a ``RawAnswer`` (status and undecoded text): what that answer means is the caller's to say.
``send(..., retry_refusals=False)`` raises a 429 or 503 at once, for a caller that retries
otherwise (the coalescer, which may split a refused batch).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pusher.http import Request

from mesg_pusher import metrics, retry
from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import (
    InputError,
    PusherBadAnswer,
    PusherHTTPError,
    PusherTimeout,
    PusherUnknownOutcome,
    PusherUnreachable,
    ShuttingDown,
)
from mesg_pusher.http1 import (
    CertificateFailed,
    ConnectFailed,
    ConnectionLost,
    ConnectionPool,
    Endpoint,
    HandshakeFailed,
    InvalidRequest,
    NoAnswer,
    PoolClosed,
    PoolTimeout,
    ProxyRefused,
    UnusableAnswer,
    default_tls,
)
from mesg_pusher.redact import redact_url, scrub, url_password

logger = logging.getLogger(__name__)

# Shorter than the idle timeout of common servers (uWebSockets: 10 s), so we never write to a
# connection the server is closing — that would turn a harmless reconnect into an unknown outcome.
KEEPALIVE_SECONDS = 4.0
MAX_CONNECTIONS = 256


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = (62, 64)


PoolKey = tuple[str, int, bool, str | None, bool]


def pool_key(options: PusherOptions) -> PoolKey:
    """What makes two option sets' connections interchangeable: host, port, TLS, proxy (with its
    credentials: they open the tunnel) and keep-alive (it is in every request's head). The app
    id, key and secret are not in it: they travel in each request, signed, not in the connection;
    the timeout is per request."""
    return (options.host, options.port_or_default, options.use_tls, options.proxy, options.keep_alive)


def open_pool(
    options: PusherOptions, ssl_context: ssl.SSLContext | None = None, limit: int | None = None
) -> ConnectionPool:
    """A connection pool for ``options``' endpoint; ``ssl_context`` (``PUSHER_CA_BUNDLE``, else the
    system store) is trusted for Pusher and for an ``https://`` proxy alike."""
    trust = ssl_context or default_tls()
    endpoint = Endpoint(
        host=options.host.removeprefix("[").removesuffix("]"),  # an IPv6 literal, bracketed in settings
        port=options.port_or_default,
        tls=trust if options.use_tls else None,
        proxy=options.proxy,
        proxy_tls=trust,
    )
    return ConnectionPool(
        endpoint,
        keep_alive=options.keep_alive,
        keepalive=KEEPALIVE_SECONDS,
        limit=MAX_CONNECTIONS if limit is None else limit,
    )


def _has_user(url: str) -> bool:
    try:
        return urlsplit(url).username is not None
    except ValueError:
        return False


async def _pause_fits(deadline: float, attempt: int) -> bool:
    """Sleep before a retry if the pause and a little time to retry fit before the deadline."""
    return await retry.wait_within(deadline, retry.pause(attempt))


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """A 2xx answer as it came: its status and body text (``send(..., raw=True)``)."""

    status: int
    text: str


class Transport:
    """Requests of one set of ``PusherOptions`` over a connection pool.

    ``pool``: a pool shared with other option sets of the same endpoint, owned (and closed)
    by whoever made it (``ClientPool``); without one, the transport opens its own on first
    use and closes it in ``close()``.
    """

    def __init__(
        self,
        options: PusherOptions,
        ssl_context: ssl.SSLContext | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.options = options
        self._ssl_context = ssl_context
        self._pool = pool
        self._owns_pool = pool is None
        self._where = f"{options.host}:{options.port_or_default}"
        self._secrets = options.secrets
        # How long Pusher took to answer lately (moving average, seconds), once it has answered.
        self.answer_time: float | None = None

    def _open(self) -> ConnectionPool:
        self._pool = open_pool(self.options, self._ssl_context)
        return self._pool

    async def close(self) -> None:
        """Close the pool if this transport opened it (a shared one is closed by its owner)."""
        if self._pool is not None and self._owns_pool:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def where(self) -> str:
        """``host:port`` of Pusher, for error messages."""
        return self._where

    async def send(
        self,
        request: Request,
        deadline: float | None = None,
        *,
        raw: bool = False,
        retry_refusals: bool = True,
    ) -> Any:
        """Send a signed SDK request; the decoded JSON answer or one of our errors.

        ``deadline`` (event-loop time) replaces ``PUSHER_TIMEOUT`` from now when the execution
        began waiting for Pusher earlier, e.g. queued behind other calls. ``raw``: any 2xx is
        an answer, returned undecoded as a ``RawAnswer``; retries and errors are the same.
        ``retry_refusals=False``: a 429 or 503 is raised at once, carrying the wait Pusher
        asked for (``PusherHTTPError.retry_after``); the caller decides what to send again.
        """
        # Not `self._pool or ...`: a pool with no open connection has len() 0.
        pool = self._pool if self._pool is not None else self._open()
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.options.timeout
        is_write = request.method != "GET"
        target = request.signed_path
        body = request.body or b""
        headers = request.headers
        attempt = 0
        refused = 0  # answers that asked us to try again (429, 503; for a read, any 5xx)
        unreachable = f"could not reach Pusher at {self._where} within {self.options.timeout:g} s"
        while True:
            if deadline - loop.time() <= 0:
                raise PusherUnreachable(unreachable)
            began = loop.time()
            try:
                response = await pool.exchange(request.method, target, headers, body, deadline)
            except CertificateFailed as exc:
                # Not retried: the same certificate would be refused again.
                raise PusherUnreachable(self._describe_certificate_error(exc.error, exc.proxy)) from None
            except HandshakeFailed as exc:
                peer = f"proxy {redact_url(self.options.proxy or '')}" if exc.proxy else self._where
                raise PusherUnreachable(f"TLS handshake with {peer} failed: {exc}") from None
            except PoolTimeout as exc:
                raise PusherUnreachable(
                    f"could not reach Pusher at {self._where} within {self.options.timeout:g} s: "
                    f"{exc}, so the request was not sent"
                ) from None
            except PoolClosed:
                raise ShuttingDown(
                    f"request to Pusher at {self._where} not sent: its connections were closed "
                    "(the service is stopping)"
                ) from None
            except InvalidRequest as exc:
                raise InputError(str(exc)) from None
            except ConnectFailed as exc:
                # Nothing reached Pusher: safe to try again while time remains.
                attempt += 1
                # Should time run out before the next attempt, say why it failed, not just "no time".
                unreachable = f"could not connect to Pusher at {self._where}: {exc}" + (
                    f" (after {attempt} attempts)" if attempt > 1 else ""
                )
                if await _pause_fits(deadline, attempt - 1):
                    logger.debug("connect to %s failed (%s); retrying", self._where, exc)
                    continue
                raise PusherUnreachable(unreachable) from None
            except NoAnswer:
                no_answer = f"no answer from Pusher at {self._where} within {self.options.timeout:g} s"
                if not is_write:
                    raise PusherTimeout(no_answer) from None
                raise PusherUnknownOutcome(
                    no_answer + "; the event may or may not have been published, so it was not retried"
                ) from None
            except ConnectionLost as exc:
                attempt += 1
                # A refused answer would be the same again: a read is not asked twice for it.
                again = not is_write and not isinstance(exc, UnusableAnswer)
                if again and await _pause_fits(deadline, attempt):
                    continue
                if not is_write and isinstance(exc, UnusableAnswer):
                    raise PusherBadAnswer(
                        f"answer from Pusher at {self._where} refused ({exc}); not asked again, "
                        "as the same answer would come"
                    ) from None
                if not is_write:
                    # Asked until the time ran out, and never answered whole.
                    raise PusherTimeout(
                        f"connection to Pusher at {self._where} lost before the answer "
                        f"({exc}), {attempt} times within {self.options.timeout:g} s"
                    ) from None
                raise PusherUnknownOutcome(
                    f"connection to Pusher at {self._where} lost before the answer "
                    f"({exc}); the event may or may not have been published, "
                    "so it was not retried"
                ) from None
            except ProxyRefused as exc:
                # The proxy refused to open a tunnel (CONNECT, for https): Pusher saw nothing.
                raise self._proxy_refused(exc.status, scrub(exc.reason, self._secrets)) from None
            status = response.status
            metrics.hooks.pusher_response(status)
            took = loop.time() - began
            self.answer_time = took if self.answer_time is None else 0.8 * self.answer_time + 0.2 * took
            if status == 407 and self.options.proxy:
                # A plain-http request through a proxy that wants (other) credentials.
                raise self._proxy_refused(status, "Proxy Authentication Required")
            text = response.body.decode("utf-8", errors="replace")
            if raw and 200 <= status < 300:
                return RawAnswer(status, text)
            if status == 200 or status == 202:
                try:
                    return json.loads(text) if text else {}
                except ValueError:
                    raise PusherHTTPError(status, self._quoted("answer is not JSON: " + text)) from None
                except RecursionError:
                    raise PusherHTTPError(status, "answer is not usable JSON: nested too deeply") from None
            if status in retry.NOT_TAKEN or (status >= 500 and not is_write):
                # Not taken (or a read, which changes nothing): safe to send again.
                asked = retry.retry_after(response.retry_after)
                if not retry_refusals:
                    raise PusherHTTPError(status, self._quoted(text), retry_after=asked)
                attempt += 1
                refused += 1
                wait = retry.pause(attempt, asked)
                if await retry.wait_within(deadline, wait):
                    logger.debug(
                        "Pusher at %s answered %d; trying again in %.2f s", self._where, status, wait
                    )
                    continue
                note = retry.not_retried(refused, asked, deadline - loop.time(), self.options.timeout)
                raise PusherHTTPError(status, self._quoted(text), note, asked)
            raise PusherHTTPError(status, self._quoted(text))

    def _quoted(self, text: str) -> str:
        """A peer's text as an error may carry it: without this option set's secrets (a proxy
        may echo the request, its Basic token with it)."""
        return scrub(text, self._secrets) if self._secrets else text

    def _describe_certificate_error(self, error: Exception, proxy: bool = False) -> str:
        """Which check failed: the host name (wrong certificate) or the chain (untrusted CA), and
        whose certificate it was: Pusher's or the ``https://`` proxy's."""
        code = getattr(error, "verify_code", None)
        reason = getattr(error, "verify_message", None) or str(error)
        whose = f"proxy {redact_url(self.options.proxy or '')}" if proxy else self._where
        if code in _NAME_MISMATCH:
            return (
                f"TLS certificate of {whose} does not match the host name "
                f"({reason}): connect with a host name the certificate lists"
            )
        return (
            f"TLS certificate of {whose} not trusted ({reason}): add its CA certificate "
            "to the system store or give it in PUSHER_CA_BUNDLE (a PEM file)"
        )

    def _proxy_refused(self, status: int, message: str) -> PusherUnreachable:
        proxy_url = self.options.proxy or ""
        proxy = redact_url(proxy_url)
        if status != 407:
            return PusherUnreachable(
                f"proxy {proxy} refused the connection to {self._where}: HTTP {status} {message}"
            )
        if url_password(proxy_url) is not None or _has_user(proxy_url):
            hint = "it refused the credentials in the proxy URL"
        else:
            hint = "give them in the proxy URL, http://user:password@host:port"
        return PusherUnreachable(
            f"proxy {proxy} requires authentication (HTTP 407 Proxy Authentication Required): {hint}"
        )


class SDKBackend:
    """The SDK's ``backend`` hook: hands each signed request to a shared ``Transport``."""

    def __init__(self, client: Any, transport: Transport) -> None:
        self.client = client
        self.transport = transport

    def send_request(self, request: Request) -> Any:
        return self.transport.send(request)
