"""A lean HTTP/1.1 client for Pusher's REST API: kept-alive connections, one write per request.

Why not aiohttp's client (the service still serves its webhook and ``/metrics`` with
aiohttp): on the trigger path its request machinery cost about 250 µs of CPU per call,
more than the rest of the call together, while every call here has the same shape (a small
signed POST or GET to one host, a small JSON answer). This module does only that: requests
are written as one buffer, answers are parsed by ``httptools`` (llhttp, the parser of
Node.js, as used by uvicorn), so chunked and close-delimited answers, keep-alive rules and
malformed input are handled by a well-tested parser, not by code of ours.

What the transport needs to tell outcomes apart is kept exact:

- ``ConnectFailed``, ``CertificateFailed``, ``HandshakeFailed``, ``ProxyRefused``: nothing
  was sent, a retry is safe (where it can help);
- ``ConnectionLost`` and ``NoAnswer``: the request was written and no complete answer came,
  so Pusher may have acted on it.

A connection is reused only after a complete answer that allows it, and only if it was idle
for less than ``keepalive`` seconds (shorter than common servers' idle timeout, so we do not
write to a connection the server is closing). A proxy is spoken to as HTTP/1.1 proxies
expect: absolute-form targets for ``http://``, a ``CONNECT`` tunnel then TLS for ``https://``.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httptools

from mesg_pusher.redact import redact_url


class HTTPClientError(Exception):
    """Base of this module's errors; ``str()`` never holds a credential."""


class ConnectFailed(HTTPClientError):
    """No connection to the server (or the proxy): nothing was sent."""


class CertificateFailed(HTTPClientError):
    """The server's certificate was refused; ``error`` is the ``ssl`` verification error."""

    def __init__(self, error: ssl.SSLCertVerificationError) -> None:
        super().__init__(str(error))
        self.error = error


class HandshakeFailed(HTTPClientError):
    """The TLS handshake failed for another reason than the certificate: nothing was sent."""


class ProxyRefused(HTTPClientError):
    """The proxy answered ``CONNECT`` with an error status: nothing reached the server."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason


class ConnectionLost(HTTPClientError):
    """The request was sent; the connection ended (or the answer was malformed) before its end."""


class NoAnswer(HTTPClientError):
    """The request was sent; no complete answer came before the deadline."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection: at most one request at a time, its answer parsed as it arrives."""

    def __init__(self, forget: Callable[[_Connection], None]) -> None:
        self._forget = forget  # called once the socket is closed
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._answer: asyncio.Future[Response] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._chunks: list[bytes] = []
        self._headers_seen = False
        # The answer's length is known (Content-Length or chunked); if not, it ends with the connection.
        self._delimited = False
        # Only while a CONNECT tunnel is being opened: its answer's head, up to the blank line.
        self._tunnel: asyncio.Future[bytes] | None = None
        self._tunnel_head = b""

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel_received(data)
            return
        if self._parser is None:  # nothing was asked: the server is not speaking HTTP to us
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"malformed answer ({type(exc).__name__})"))
            self.close()

    def eof_received(self) -> bool | None:
        self._end_of_answer()
        return None  # close the transport

    @property
    def closed(self) -> bool:
        """Closed or closing: by us, after an answer that ends it, or by the server (its end arrived)."""
        return self.transport is None or self.transport.is_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget(self)
        self._end_of_answer()
        self._fail(ConnectionLost("answer cut short" if self._headers_seen else "closed by the server"))
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(ConnectFailed("proxy closed the connection"))

    # -- httptools callbacks ------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._headers_seen = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        parser, answer = self._parser, self._answer
        if parser is None or answer is None:
            return
        status = parser.get_status_code()
        if not parser.should_keep_alive():
            self.close()
        self._parser = self._answer = None
        body, self._chunks = b"".join(self._chunks), []
        if not answer.done():
            answer.set_result(Response(status, body))

    # -- use ----------------------------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[Response]:
        """Write one whole request; the future is its answer (or ``ConnectionLost``)."""
        assert self.transport is not None and self._answer is None
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._answer = answer
        self._chunks = []
        self._headers_seen = self._delimited = False
        self._parser = httptools.HttpResponseParser(self)
        self.transport.write(data)
        return answer

    async def open_tunnel(self, data: bytes) -> bytes:
        """Send a ``CONNECT`` request; its answer's head (through the blank line)."""
        assert self.transport is not None
        self._tunnel = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self._tunnel
        finally:
            self._tunnel = None

    def _tunnel_received(self, data: bytes) -> None:
        assert self._tunnel is not None
        self._tunnel_head += data
        end = self._tunnel_head.find(b"\r\n\r\n")
        if end >= 0 and not self._tunnel.done():
            # A proxy says nothing after its answer to CONNECT until the client speaks (TLS).
            self._tunnel.set_result(self._tunnel_head[: end + 4])
        elif len(self._tunnel_head) > 65536 and not self._tunnel.done():
            self._tunnel.set_exception(ConnectFailed("proxy answered CONNECT with no end of headers"))

    def _end_of_answer(self) -> None:
        """The connection ended: that completes an answer that had no length (HTTP/1.0 style)."""
        if self._answer is not None and self._headers_seen and not self._delimited:
            self.close()
            self.on_message_complete()

    def _fail(self, exc: HTTPClientError) -> None:
        answer, self._answer, self._parser = self._answer, None, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: the server, and the proxy to reach it through (if any)."""

    host: str
    port: int
    tls: ssl.SSLContext | None  # None: plain HTTP
    proxy: str | None = None  # http(s)://[user:password@]host:port

    def __repr__(self) -> str:
        proxy = redact_url(self.proxy) if self.proxy else None
        return f"Endpoint({self.host}:{self.port}, tls={self.tls is not None}, proxy={proxy!r})"


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _proxy_authorization(proxy_url: str) -> bytes:
    """``Proxy-Authorization`` header line for credentials in the proxy URL, else nothing."""
    parts = urlsplit(proxy_url)
    if parts.username is None:
        return b""
    user, password = unquote(parts.username), unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Proxy-Authorization: Basic {token}\r\n".encode()


_SYSTEM_TLS: ssl.SSLContext | None = None


def default_tls() -> ssl.SSLContext:
    """The system's trust store, loaded once per process (loading it costs milliseconds)."""
    global _SYSTEM_TLS
    if _SYSTEM_TLS is None:
        _SYSTEM_TLS = ssl.create_default_context()
    return _SYSTEM_TLS


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc.strerror or exc) or type(exc).__name__


class ConnectionPool:
    """Connections to one ``Endpoint``, reused while kept alive; at most ``limit`` at once."""

    def __init__(self, endpoint: Endpoint, *, keep_alive: bool, keepalive: float, limit: int) -> None:
        self.endpoint = endpoint
        self._keep_alive = keep_alive
        self._keepalive = keepalive
        self._slots = asyncio.Semaphore(limit)
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        proxy, tls = endpoint.proxy, endpoint.tls
        authority = _authority(endpoint.host, endpoint.port)
        # Through a plain-http proxy the request names the whole URL; otherwise only the path.
        self._prefix = f"http://{authority}" if proxy and tls is None else ""
        head = f"Host: {authority}\r\n".encode()
        if proxy and tls is None:
            head += _proxy_authorization(proxy)
        if not keep_alive:
            head += b"Connection: close\r\n"
        self._head = head

    def __len__(self) -> int:
        """Connections open now (in use or idle)."""
        return len(self._open)

    def request_bytes(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {self._prefix}{target} HTTP/1.1\r\n".encode(), self._head]
        lines.extend(f"{name}: {value}\r\n".encode() for name, value in headers.items())
        if body or method != "GET":
            lines.append(f"Content-Length: {len(body)}\r\n".encode())
        lines.append(b"\r\n")
        lines.append(body)
        return b"".join(lines)

    async def exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes, deadline: float
    ) -> Response:
        """Send one request and read its answer, all before ``deadline`` (event-loop time)."""
        data = self.request_bytes(method, target, headers, body)
        async with self._slots:
            connection = self._reuse()
            if connection is None:
                connection = await self._connect(deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    response = await connection.send(data)
            except TimeoutError:
                connection.close()
                raise NoAnswer("no answer in time") from None
            except BaseException:  # lost, malformed or cancelled: the connection is not reusable
                connection.close()
                raise
            self._release(connection)
            return response

    def _reuse(self) -> _Connection | None:
        """The most recently used idle connection still fit to use, if any."""
        now = asyncio.get_running_loop().time()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection
            connection.close()
        return None

    def _release(self, connection: _Connection) -> None:
        if connection.closed or not self._keep_alive:
            connection.close()
            return
        loop = asyncio.get_running_loop()
        connection.idle_since = loop.time()
        self._idle.append(connection)
        if self._sweep is None:
            self._sweep = loop.call_later(self._keepalive, self._close_expired)

    def _close_expired(self) -> None:
        """Close connections idle for ``keepalive`` (and forget closed ones); again while any idle."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle and (self._idle[0].closed or now - self._idle[0].idle_since >= self._keepalive):
            self._idle.popleft().close()
        if self._idle:
            self._sweep = loop.call_later(self._keepalive, self._close_expired)

    async def _connect(self, deadline: float) -> _Connection:
        endpoint = self.endpoint
        loop = asyncio.get_running_loop()
        connection = _Connection(self._open.discard)
        host, port = endpoint.host, endpoint.port
        proxy = urlsplit(endpoint.proxy) if endpoint.proxy else None
        tls_now = endpoint.tls if proxy is None else None
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    if proxy is not None:
                        # An https:// proxy is spoken to over TLS itself (then TLS again, tunnelled).
                        to_proxy = default_tls() if proxy.scheme == "https" else None
                        await loop.create_connection(
                            lambda: connection,
                            proxy.hostname or "",
                            proxy.port or (443 if to_proxy else 80),
                            ssl=to_proxy,
                        )
                    else:
                        await loop.create_connection(
                            lambda: connection,
                            host,
                            port,
                            ssl=tls_now,
                            server_hostname=host if tls_now else None,
                        )
                except ssl.SSLCertVerificationError as exc:
                    raise CertificateFailed(exc) from None
                except ssl.SSLError as exc:
                    raise HandshakeFailed(str(exc.reason or exc)) from None
                except OSError as exc:
                    if proxy is not None:
                        where = redact_url(endpoint.proxy or "")
                        raise ConnectFailed(f"proxy {where} unreachable ({_describe(exc)})") from None
                    raise ConnectFailed(_describe(exc)) from None
                self._open.add(connection)
                if proxy is not None and endpoint.tls is not None:
                    await self._tunnel(connection, endpoint.tls)
        except TimeoutError:
            connection.close()
            self._open.discard(connection)
            raise ConnectFailed("timed out") from None
        except BaseException:
            connection.close()
            self._open.discard(connection)
            raise
        return connection

    async def _tunnel(self, connection: _Connection, tls: ssl.SSLContext) -> None:
        """``CONNECT`` through the proxy, then TLS with the server over the tunnel."""
        endpoint = self.endpoint
        authority = _authority(endpoint.host, endpoint.port)
        request = (
            f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode()
            + _proxy_authorization(endpoint.proxy or "")
            + b"\r\n"
        )
        head = await connection.open_tunnel(request)
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise ConnectFailed("proxy answered CONNECT with something that is not HTTP") from None
        if status != 200:
            raise ProxyRefused(status, parts[2] if len(parts) > 2 else "")
        assert connection.transport is not None
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                connection.transport, connection, tls, server_hostname=endpoint.host
            )
        except ssl.SSLCertVerificationError as exc:
            raise CertificateFailed(exc) from None
        except ssl.SSLError as exc:
            raise HandshakeFailed(str(exc.reason or exc)) from None
        except OSError as exc:
            raise ConnectFailed(_describe(exc)) from None
        if transport is None:
            raise ConnectFailed("proxy closed the tunnel")
        connection.transport = transport

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports finish closing their sockets
