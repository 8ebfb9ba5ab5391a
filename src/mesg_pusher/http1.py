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

- ``PoolTimeout`` (no connection came free before the deadline), ``InvalidRequest`` (a
  value that cannot go on the wire), ``PoolClosed``: nothing was sent either;
- ``UnusableAnswer`` (a ``ConnectionLost``): an answer came that we refuse to read on (too
  large, a protocol switch); asking again would bring the same.

A connection is reused only after a complete answer that allows it, and only if it was idle
for less than ``keepalive`` seconds (shorter than common servers' idle timeout, so we do not
write to a connection the server is closing). A proxy is spoken to as HTTP/1.1 proxies
expect: absolute-form targets for ``http://``, a ``CONNECT`` tunnel then TLS for ``https://``.

What a peer can make us hold is bounded: ``MAX_HEAD`` bytes of answer head (interim answers
included), ``MAX_BODY`` bytes of body, one answer per request (interim 1xx answers are
skipped, a 101 refused, bytes nobody asked for end the connection), and at most ``limit``
connections per pool, waited for within the request's deadline.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from mesg_pusher.redact import basic_token, redact_url

# An answer's head, interim answers included: Pusher's are a few hundred bytes; 64 KiB is what
# common servers accept as a request head at most (nginx 32 KiB, Node.js 16 KiB), so no
# legitimate peer comes near it.
MAX_HEAD = 64 * 1024
# An answer's body: the engine carries at most 4 MB of outputs per execution, so a larger
# answer could never become a result; Pusher's are a few hundred bytes (a trigger) to the
# channel list of a busy app (about 170 bytes a channel).
MAX_BODY = 4 * 1024 * 1024
_MAX_BODY_DIGITS = len(str(MAX_BODY))  # a shorter Content-Length is under it
# A Retry-After value is kept only up to this: an HTTP-date is 29 characters, seconds a few.
MAX_RETRY_AFTER = 64
# Where a request is written: the target may hold visible ASCII only (no CR, LF, space,
# control or non-ASCII character); header names are tokens; values visible ASCII and spaces.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"})


class HTTPClientError(Exception):
    """Base of this module's errors; ``str()`` never holds a credential."""


class ConnectFailed(HTTPClientError):
    """No connection to the server (or the proxy): nothing was sent."""


class CertificateFailed(HTTPClientError):
    """A certificate was refused; ``error`` is the ``ssl`` verification error.

    ``proxy``: it was the ``https://`` proxy's certificate, not the server's.
    """

    def __init__(self, error: ssl.SSLCertVerificationError, proxy: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.proxy = proxy


class HandshakeFailed(HTTPClientError):
    """The TLS handshake failed for another reason than the certificate: nothing was sent."""

    def __init__(self, reason: str, proxy: bool = False) -> None:
        super().__init__(reason)
        self.proxy = proxy


class PoolTimeout(HTTPClientError):
    """Every connection stayed busy until the deadline: nothing was sent."""


class PoolClosed(HTTPClientError):
    """The pool was closed (the service is stopping): nothing was sent."""


class InvalidRequest(HTTPClientError):
    """A value cannot go on the wire as it is (CR, LF, space, non-ASCII...): nothing was sent."""


class ProxyRefused(HTTPClientError):
    """The proxy answered ``CONNECT`` with an error status: nothing reached the server.

    ``reason`` is the proxy's reason phrase cut to ``MAX_REASON`` characters, printable only.
    """

    MAX_REASON = 200

    def __init__(self, status: int, reason: str) -> None:
        reason = "".join(c if c.isprintable() else "?" for c in reason[: self.MAX_REASON + 1])
        if len(reason) > self.MAX_REASON:
            reason = reason[: self.MAX_REASON] + "…"
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason


class ConnectionLost(HTTPClientError):
    """The request was sent; the connection ended (or the answer was malformed) before its end."""


class UnusableAnswer(ConnectionLost):
    """The request was sent; the answer is refused (too large, a protocol switch), the connection
    closed. Asking again would bring the same answer, so reads are not retried either."""


class NoAnswer(HTTPClientError):
    """The request was sent; no complete answer came before the deadline."""


@dataclass(frozen=True, slots=True)
class Response:
    """A final answer: its status, its body, and its ``Retry-After`` value as it came (at most
    ``MAX_RETRY_AFTER`` bytes, else ``None``): the one header the transport acts on."""

    status: int
    body: bytes
    retry_after: bytes | None = None


class _Stop(Exception):
    """Raised from a parser callback to stop parsing; the reason is kept on the connection."""


class _Connection(asyncio.Protocol):
    """One connection: at most one request at a time, its answer parsed as it arrives."""

    def __init__(self, forget: Callable[[_Connection], None]) -> None:
        self._forget = forget  # called once the socket is closed
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._answer: asyncio.Future[Response] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._chunks: list[bytes] = []
        self._body_size = 0
        # Bytes fed to the parser before the final answer's head was complete (interim answers too).
        self._head_size = 0
        self._headers_seen = False
        self._retry_after: bytes | None = None
        # The answer's length is known (Content-Length or chunked); if not, it ends with the connection.
        self._delimited = False
        # Why the answer was refused from inside a parser callback (see ``_refuse``).
        self._refusal: HTTPClientError | None = None
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
        parser = self._parser
        if parser is None:  # nothing was asked: never let these bytes answer a later request
            self.abort()
            return
        try:
            size = self._head_size + len(data)
            if self._headers_seen or size <= MAX_HEAD:  # the head's cap is not in reach
                self._head_size = size
                parser.feed_data(data)
            else:
                self._feed_head(parser, data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, _Stop) as exc:
            refusal, self._refusal = self._refusal, None
            if refusal is None and isinstance(exc, httptools.HttpParserUpgrade):
                refusal = UnusableAnswer("the server switched protocols instead of answering")
            if refusal is None:
                refusal = ConnectionLost(f"malformed answer ({type(exc).__name__})")
            self._fail(refusal)
            self.abort()
        except Exception as exc:  # a peer's bytes must never escape into the event loop
            self._fail(ConnectionLost(f"answer not readable ({type(exc).__name__})"))
            self.abort()

    def _feed_head(self, parser: httptools.HttpResponseParser, data: bytes) -> None:
        """Feed ``data`` while the head is incomplete: no more than ``MAX_HEAD`` bytes of it."""
        while data:
            if self._headers_seen:
                parser.feed_data(data)
                return
            room = MAX_HEAD - self._head_size
            if room <= 0:
                self._refuse(UnusableAnswer(f"answer cut short: its head exceeds {MAX_HEAD // 1024} KiB"))
            part, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
            self._head_size += len(part)
            parser.feed_data(part)

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
    def _refuse(self, reason: HTTPClientError) -> None:
        """Stop parsing this answer for ``reason`` (raised out of ``feed_data``)."""
        self._refusal = reason
        raise _Stop(str(reason))

    def on_message_begin(self) -> None:
        if self._answer is None:  # a second answer to one request
            self._refuse(ConnectionLost("answer followed by bytes nobody asked for"))

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._delimited = True
            if len(value) >= _MAX_BODY_DIGITS and value.strip().isdigit() and int(value) > MAX_BODY:
                self._refuse(
                    UnusableAnswer(f"answer cut short: its body exceeds {MAX_BODY // (1024 * 1024)} MiB")
                )
        elif name == b"transfer-encoding":
            # Chunked as the last coding delimits the body. Any other coding would run to the
            # close, in a form we never asked for (no TE header is sent): said so, not read.
            coding = value.rsplit(b",", 1)[-1].strip().lower()
            if coding != b"chunked":
                shown = "".join(c if c.isprintable() else "?" for c in coding[:40].decode("latin-1"))
                self._refuse(UnusableAnswer(f"answer in a transfer coding we did not ask for ({shown})"))
            self._delimited = True
        elif name == b"retry-after" and self._retry_after is None and len(value) <= MAX_RETRY_AFTER:
            self._retry_after = value

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status < 200:
            if status == 101:
                self._refuse(UnusableAnswer("the server switched protocols (HTTP 101) instead of answering"))
            self._delimited = False  # interim: the answer is still to come
            self._retry_after = None  # an interim answer's headers are not the answer's
            return
        self._headers_seen = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            self._refuse(
                UnusableAnswer(f"answer cut short: its body exceeds {MAX_BODY // (1024 * 1024)} MiB")
            )
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        parser, answer = self._parser, self._answer
        if parser is None or answer is None or not self._headers_seen:
            return  # an interim (1xx) answer ended: wait for the final one
        status = parser.get_status_code()
        if not parser.should_keep_alive():
            self.close()
        self._parser = self._answer = None
        body, self._chunks = b"".join(self._chunks), []
        retry_after, self._retry_after = self._retry_after, None
        if not answer.done():
            answer.set_result(Response(status, body, retry_after))

    # -- use ----------------------------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[Response]:
        """Write one whole request; the future is its answer (or ``ConnectionLost``)."""
        assert self.transport is not None and self._answer is None
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._answer = answer
        self._chunks = []
        self._body_size = self._head_size = 0
        self._headers_seen = self._delimited = False
        self._retry_after = None
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
        if self._tunnel.done():
            return
        self._tunnel_head += data
        end = self._tunnel_head.find(b"\r\n\r\n")
        if end >= 0:
            # A proxy says nothing after its answer to CONNECT until the client speaks (TLS).
            head, self._tunnel_head = self._tunnel_head[: end + 4], b""
            self._tunnel.set_result(head)
        elif len(self._tunnel_head) > MAX_HEAD:
            self._tunnel_head = b""
            self._tunnel.set_exception(ConnectFailed("proxy answered CONNECT with no end of headers"))

    def _end_of_answer(self) -> None:
        """The connection ended: that completes an answer that had no length (HTTP/1.0 style)."""
        if self._answer is not None and self._headers_seen and not self._delimited:
            self.close()
            self.on_message_complete()

    def _fail(self, exc: HTTPClientError) -> None:
        answer, self._answer, self._parser = self._answer, None, None
        self._chunks = []
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping anything unsent (a peer that does not read cannot hold it)."""
        if self.transport is not None:
            self.transport.abort()


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: the server, and the proxy to reach it through (if any).

    ``host`` is a name or an address as ``getaddrinfo`` takes it (an IPv6 address without
    brackets); ``proxy_tls`` is the trust used for an ``https://`` proxy (default: the system's).
    """

    host: str
    port: int
    tls: ssl.SSLContext | None  # None: plain HTTP
    proxy: str | None = None  # http(s)://[user:password@]host:port
    proxy_tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        proxy = redact_url(self.proxy) if self.proxy else None
        return f"Endpoint({self.host}:{self.port}, tls={self.tls is not None}, proxy={proxy!r})"


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _proxy_authorization(proxy_url: str) -> bytes:
    """``Proxy-Authorization`` header line for credentials in the proxy URL, else nothing."""
    token = basic_token(proxy_url)
    return f"Proxy-Authorization: Basic {token}\r\n".encode() if token else b""


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


def _visible_ascii(text: str) -> bool:
    """Only visible ASCII and spaces (no CR, LF, tab, other control or non-ASCII character)."""
    return text.isascii() and text.isprintable()


def _check_request(method: str, target: str, headers: dict[str, str]) -> None:
    """Refuse what would change the request's meaning on the wire (``InvalidRequest``)."""
    if method not in _METHODS:
        raise InvalidRequest(f"request not sent: method {method[:20]!r} is not one we send")
    if not (target.startswith("/") and _visible_ascii(target)) or " " in target:
        raise InvalidRequest(
            "request not sent: its path or query holds a character HTTP does not allow there "
            "(CR, LF, space, a control or non-ASCII character)"
        )
    for name, value in headers.items():
        if name not in _CHECKED_NAMES:
            if not _TOKEN.fullmatch(name):
                raise InvalidRequest(f"request not sent: header name {name[:40]!r} is not an HTTP token")
            _CHECKED_NAMES.add(name)
        if not _visible_ascii(value):
            raise InvalidRequest(
                f"request not sent: header {name!r} holds a character HTTP does not allow there"
            )


# Header names already found to be tokens: the SDK sends the same two on every request.
_CHECKED_NAMES: set[str] = set()


class ConnectionPool:
    """Connections to one ``Endpoint``, reused while kept alive; at most ``limit`` at once.

    ``retire()`` keeps it serving but closes every connection as soon as it is idle;
    ``close()`` closes every connection now and refuses later requests.
    """

    def __init__(self, endpoint: Endpoint, *, keep_alive: bool, keepalive: float, limit: int) -> None:
        self.endpoint = endpoint
        self.limit = limit
        self._keep_alive = keep_alive
        self._keepalive = keepalive
        self._slots = asyncio.Semaphore(limit)
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        proxy, tls = endpoint.proxy, endpoint.tls
        authority = _authority(endpoint.host, endpoint.port)
        # Through a plain-http proxy the request names the whole URL; otherwise only the path.
        self._prefix = f"http://{authority}" if proxy and tls is None else ""
        head = f"Host: {authority}\r\n".encode("ascii")
        if proxy and tls is None:
            head += _proxy_authorization(proxy)
        if not keep_alive:
            head += b"Connection: close\r\n"
        self._head = head

    def __len__(self) -> int:
        """Connections open now (in use or idle)."""
        return len(self._open)

    def __bool__(self) -> bool:
        """A pool is a pool, open connections or not (``len()`` counts connections)."""
        return True

    def request_bytes(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        """The request as written; ``InvalidRequest`` if a value cannot go on the wire as it is."""
        # One pass over what varies (target and header values) for the usual, valid request;
        # the precise check (and its error) only when that pass finds something.
        values = target + "".join(headers.values())
        if (
            method not in _METHODS
            or target[:1] != "/"
            or " " in target
            or not (values.isascii() and values.isprintable())
            or not _CHECKED_NAMES.issuperset(headers)
        ):
            _check_request(method, target, headers)
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
        if self._closed:
            raise PoolClosed("connections closed")
        slots = self._slots
        if slots.locked():  # every connection busy: wait for one, within the deadline
            try:
                async with asyncio.timeout_at(deadline):
                    await slots.acquire()
            except TimeoutError:
                raise PoolTimeout(f"all {self.limit} connections stayed busy") from None
        else:
            await slots.acquire()
        try:
            if self._closed:
                raise PoolClosed("connections closed")
            connection = self._reuse()
            if connection is None:
                connection = await self._connect(deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    response = await connection.send(data)
            except TimeoutError:
                connection.abort()
                raise NoAnswer("no answer in time") from None
            except BaseException:  # lost, malformed or cancelled: the connection is not reusable
                connection.abort()
                raise
            self._release(connection)
            return response
        finally:
            slots.release()

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
        if connection.closed or not self._keep_alive or self._closed:
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
                        to_proxy = (endpoint.proxy_tls or default_tls()) if proxy.scheme == "https" else None
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
                    raise CertificateFailed(exc, proxy=proxy is not None) from None
                except ssl.SSLError as exc:
                    raise HandshakeFailed(str(exc.reason or exc), proxy=proxy is not None) from None
                except OSError as exc:
                    if proxy is not None:
                        where = redact_url(endpoint.proxy or "")
                        raise ConnectFailed(f"proxy {where} unreachable ({_describe(exc)})") from None
                    raise ConnectFailed(_describe(exc)) from None
                self._open.add(connection)
                if proxy is not None and endpoint.tls is not None:
                    await self._tunnel(connection, endpoint.tls)
        except TimeoutError:
            connection.abort()
            self._open.discard(connection)
            raise ConnectFailed("timed out") from None
        except BaseException:
            connection.abort()
            self._open.discard(connection)
            raise
        if self._closed:  # closed while connecting
            connection.abort()
            raise PoolClosed("connections closed")
        return connection

    async def _tunnel(self, connection: _Connection, tls: ssl.SSLContext) -> None:
        """``CONNECT`` through the proxy, then TLS with the server over the tunnel."""
        endpoint = self.endpoint
        authority = _authority(endpoint.host, endpoint.port)
        request = (
            f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
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

    def retire(self) -> None:
        """Keep serving, but hold nothing: idle connections close now, busy ones once answered."""
        self._keep_alive = False
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._idle:
            self._idle.pop().close()

    async def close(self) -> None:
        """Close every connection, idle or in use, now; later requests fail as ``PoolClosed``."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._idle.clear()
        for connection in list(self._open):
            connection.abort()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports finish closing their sockets
