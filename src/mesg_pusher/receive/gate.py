"""Admission and deadlines for an HTTP endpoint that faces the internet (the webhook endpoint).

aiohttp's server waits for a slow client as long as the client likes and keeps a file
descriptor for each one, so a few thousand slow or abandoned connections could take the
descriptors the engine stream and the Pusher HTTP pools need. ``Gate`` sits between the
listening socket and aiohttp's protocol:

- at most ``max_connections`` are open at once; one over the cap gets a canned 503 and is
  closed at once, before aiohttp sees it (Pusher retries a webhook that is not answered 2xx),
  so the endpoint never holds more than ``max_connections + 3 * BACKLOG`` descriptors;
- each request must arrive in full within ``request_timeout`` of the connection opening, or of
  the previous answer on a kept-alive connection; a client that is slower is disconnected.

What it did is summed up by a ``Tally``: one warning at most every ``REPORT_EVERY`` seconds, as
a flood must not turn into a flood of log lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
# The listen backlog, which is also how many connections asyncio accepts in one go. A refused
# connection holds its descriptor for the two loop turns asyncio takes to hand it to the gate
# and to close it, while the next batches are accepted: the endpoint holds at most
# MAX_CONNECTIONS + 3 * BACKLOG descriptors (448), well under the usual 1024 soft limit.
BACKLOG = 64
REQUEST_TIMEOUT = 10.0
REPORT_EVERY = 60.0
_BUSY = b'{"status": "too many connections; retry later"}'
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


class Gate:
    """The protocol factory given to ``loop.create_server``, wrapping aiohttp's own."""

    def __init__(
        self,
        inner: Callable[[], asyncio.Protocol],
        *,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._inner = inner
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self.tally = Tally(self._describe)  # "refused", "timed out"

    def __call__(self) -> asyncio.Protocol:
        return _Connection(self)

    @property
    def open(self) -> int:
        """Connections admitted and not yet closed."""
        return len(self._open)

    def request_read(self, transport: asyncio.BaseTransport | None) -> None:
        """The handler has the whole request: the client is no longer on the clock."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.disarm()

    def answered(self, transport: asyncio.BaseTransport | None) -> None:
        """An answer went out: the next request on this connection gets a fresh deadline."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.arm()

    def close(self) -> None:
        """Stop reporting (the server is stopping); aiohttp closes the connections."""
        self.tally.close()

    # -- called by the connections ----------------------------------------------------------
    def _admit(self, connection: _Connection, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.max_connections:
            self.tally.note("refused")
            return False
        self._open[transport] = connection
        return True

    def _left(self, transport: asyncio.BaseTransport) -> None:
        self._open.pop(transport, None)

    def _describe(self, counts: Counter[str]) -> str:
        return (
            f"webhook endpoint: refused {counts['refused']} connections over the cap of "
            f"{self.max_connections} and closed {counts['timed out']} that did not send a whole "
            f"request within {self.request_timeout:g} s"
        )


class Tally:
    """What clients did wrong, as one warning at once and then at most one every ``every`` s.

    A flood must not become a flood of log lines: each kind of fault is counted, and the
    counts since the last warning are logged (by ``describe``) when there are any.
    """

    def __init__(
        self,
        describe: Callable[[Counter[str]], str],
        *,
        every: float = REPORT_EVERY,
        log: logging.Logger = logger,
    ) -> None:
        self._describe = describe
        self.every = every
        self._log = log
        self.totals: Counter[str] = Counter()  # since start
        self._pending: Counter[str] = Counter()  # since the last warning
        self._report: asyncio.TimerHandle | None = None

    def note(self, what: str) -> None:
        self.totals[what] += 1
        self._pending[what] += 1
        if self._report is None:
            self._flush()

    def close(self) -> None:
        if self._report is not None:
            self._report.cancel()
            self._report = None

    def _flush(self) -> None:
        if not self._pending:
            self._report = None
            return
        self._log.warning("%s (reported at most every %g s)", self._describe(self._pending), self.every)
        self._pending.clear()
        self._report = asyncio.get_running_loop().call_later(self.every, self._flush)


class _Connection(asyncio.Protocol):
    """One accepted connection: refused at once, or handed to aiohttp under a deadline."""

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._gate._admit(self, transport):
            transport.write(REFUSAL)
            transport.close()  # the descriptor goes as soon as the 503 is out
            return
        self._transport = transport
        self._inner = self._gate._inner()
        self._inner.connection_made(transport)
        self.arm()

    def arm(self) -> None:
        self.disarm()
        if self._transport is not None:
            self._deadline = asyncio.get_running_loop().call_later(self._gate.request_timeout, self._too_slow)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self._transport is not None:  # closing too: a client that reads no answer holds it
            logger.debug("webhook client too slow: disconnected after %g s", self._gate.request_timeout)
            self._gate.tally.note("timed out")
            self._transport.abort()  # no flush: a slow reader must not keep it open either

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self._inner is not None and self._transport is not None:
            self._gate._left(self._transport)
            self._transport = None
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
