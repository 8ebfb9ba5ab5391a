"""Official Pusher SDK clients, one per distinct ``PusherOptions``, reused across executions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import OrderedDict
from collections.abc import Iterator

import pusher

from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import InputError
from mesg_pusher.transport import SDKBackend, Transport

logger = logging.getLogger(__name__)
MAX_CLIENTS = 64


@contextlib.contextmanager
def sdk_errors() -> Iterator[None]:
    """Translate the SDK's argument checks (ValueError/TypeError) into ``InputError``."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc) or type(exc).__name__) from None


class ClientPool:
    """SDK clients keyed by options; the least recently used beyond ``MAX_CLIENTS`` is closed."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, max_clients: int = MAX_CLIENTS) -> None:
        self._clients: OrderedDict[PusherOptions, pusher.Pusher] = OrderedDict()
        self._transports: dict[PusherOptions, Transport] = {}
        self._ssl_context = ssl_context
        self._max = max_clients
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, options: PusherOptions) -> pusher.Pusher:
        """The SDK client for these options, built on first use."""
        client = self._clients.get(options)
        if client is not None:
            self._clients.move_to_end(options)
            return client
        transport = Transport(options, self._ssl_context)
        with sdk_errors():
            client = pusher.Pusher(
                app_id=options.app_id,
                key=options.key,
                secret=options.secret,
                ssl=options.use_tls,
                host=options.host,
                port=options.port,
                timeout=options.timeout,
                backend=SDKBackend,
                transport=transport,
            )
        self._clients[options] = client
        self._transports[options] = transport
        if len(self._clients) > self._max:
            old, _ = self._clients.popitem(last=False)
            task = asyncio.get_running_loop().create_task(self._transports.pop(old).close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return client

    async def close(self) -> None:
        """Close every HTTP session (at shutdown)."""
        self._clients.clear()
        transports, self._transports = list(self._transports.values()), {}
        await asyncio.gather(*(t.close() for t in transports), *self._closing)
