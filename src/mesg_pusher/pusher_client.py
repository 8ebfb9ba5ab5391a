"""The one module that owns the official Pusher SDK: its clients, its signing, its internals.

Everything else (the task handlers, the coalescer) goes through this small interface:

- ``ClientPool.get(options)``: the SDK client of an option set, over our ``Transport``;
- building a signed request: ``events_request`` (one event), ``batch_request`` (a
  ``batch_events`` call), ``signed_request`` (any method and path under the API);
- sending it: ``send`` (decoded JSON answer), ``send_raw`` (any 2xx as it came),
  ``send_signed`` (sign and send); ``transport_of`` for what the coalescer reads of a
  client's transport (how fast Pusher answers, where it is);
- ``encrypted_data``: an event's data as sent on an end-to-end encrypted channel;
- ``sdk_errors``: the SDK's argument checks as our ``InputError``.

Written against ``pusher`` 3.3.4, pinned in pyproject.toml, because it reaches inside it: its
public methods cannot send what we need (``trigger`` refuses data over 30 KB by its own count
whatever the cluster's limit, and cannot send ``info``; ``terminate_user_connections`` drops
the ``/apps/{id}`` prefix the HTTP API documents), so requests are built with its ``Request``
over its REST client (``Pusher._pusher_client``), re-signed (``Request._generate_auth``) when
we add query parameters to a POST, and sent through the backend we gave it (our
``Transport``). Those are private names: a new SDK version is adopted only after checking
them here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any

import pusher
from pusher.crypto import encrypt
from pusher.http import Request

from mesg_pusher.config import PusherOptions
from mesg_pusher.errors import InputError
from mesg_pusher.http1 import ConnectionPool
from mesg_pusher.transport import (
    MAX_CONNECTIONS,
    PoolKey,
    RawAnswer,
    SDKBackend,
    Transport,
    open_pool,
    pool_key,
)

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
    """SDK clients keyed by options, over one connection pool per endpoint (``pool_key``).

    Beyond ``max_clients`` option sets, the least recently used is dropped, and the connection
    pool of its endpoint retired once no remaining option set uses it: it closes its idle
    connections at once and the others when their answer is in (an execution still holding
    the dropped client is served, on connections closed after it). ``close()`` closes every
    connection.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        max_clients: int = MAX_CLIENTS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._clients: OrderedDict[PusherOptions, pusher.Pusher] = OrderedDict()
        self._transports: dict[PusherOptions, Transport] = {}
        self._pools: dict[PoolKey, ConnectionPool] = {}
        self._users: dict[PoolKey, int] = {}  # option sets among the clients, per pool
        self._retired: list[ConnectionPool] = []
        self._ssl_context = ssl_context
        self._max = max_clients
        self._max_connections = max_connections

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, options: PusherOptions) -> pusher.Pusher:
        """The SDK client for these options, built on first use."""
        client = self._clients.get(options)
        if client is not None:
            self._clients.move_to_end(options)
            return client
        key = pool_key(options)
        connections = self._pools.get(key)
        if connections is None:
            connections = self._pools[key] = open_pool(options, self._ssl_context, self._max_connections)
        transport = Transport(options, self._ssl_context, connections)
        with sdk_errors():
            client = pusher.Pusher(
                app_id=options.app_id,
                key=options.key,
                secret=options.secret,
                ssl=options.use_tls,
                host=options.host,
                port=options.port,
                timeout=options.timeout,
                encryption_master_key_base64=options.encryption_master_key_base64,
                backend=SDKBackend,
                transport=transport,
            )
        self._clients[options] = client
        self._transports[options] = transport
        self._users[key] = self._users.get(key, 0) + 1
        if len(self._clients) > self._max:
            old, _ = self._clients.popitem(last=False)
            del self._transports[old]
            old_key = pool_key(old)
            self._users[old_key] -= 1
            if not self._users[old_key]:
                del self._users[old_key]
                retired = self._pools.pop(old_key)
                retired.retire()
                # Kept to be closed at shutdown should a straggler still use it then.
                self._retired = [pool for pool in self._retired if len(pool)] + [retired]
        return client

    def connections(self) -> int:
        """Connections open now, over every pool (retired ones included)."""
        return sum(len(pool) for pool in (*self._pools.values(), *self._retired))

    async def close(self) -> None:
        """Close every connection (at shutdown)."""
        self._clients.clear()
        self._transports.clear()
        self._users.clear()
        pools, self._pools = [*self._pools.values(), *self._retired], {}
        self._retired = []
        await asyncio.gather(*(pool.close() for pool in pools))


def signed_request(
    client: pusher.Pusher, method: str, path: str, params: Any, query: Mapping[str, str] | None = None
) -> Request:
    """A request signed with the SDK's own signing, for what its methods cannot send as we need.

    ``params`` is the query of a GET and the JSON body of a POST (``Request``'s rule); ``query``
    adds query parameters to a POST, signed with it. Used for events (the SDK's ``trigger``
    refuses data over 30 KB by its own count, whatever the cluster's limit, and cannot send
    ``info``), terminate_connections (the SDK 3.3.4 drops the ``/apps/{id}`` prefix the API
    documents) and the raw ``request`` task.
    """
    with sdk_errors():
        request = Request(client._pusher_client, method, path, params)  # the SDK's REST client
        if query and method == "POST":
            # The SDK signs a POST's query (its auth parameters) when the request is built;
            # with ours in it, its own signing runs again over the whole query.
            request.query_params = dict(query)
            request._generate_auth()
    return request


def transport_of(client: pusher.Pusher) -> Transport:
    """The ``Transport`` a client of ``ClientPool`` sends through (its backend)."""
    transport: Transport = client._pusher_client.http.transport
    return transport


def send(
    client: pusher.Pusher, request: Request, deadline: float | None = None, *, retry_refusals: bool = True
) -> Awaitable[Any]:
    """Send a signed request through the client's ``Transport``: its timeout (or ``deadline``,
    event-loop time), proxy, retries and error mapping; the decoded JSON answer.

    ``retry_refusals=False``: a 429 or 503 is raised at once, for a caller that decides itself
    what to send again (``Transport.send``)."""
    return transport_of(client).send(request, deadline, retry_refusals=retry_refusals)


def send_raw(client: pusher.Pusher, request: Request) -> Awaitable[RawAnswer]:
    """Send a signed request through the client's ``Transport`` and take any 2xx as its answer,
    undecoded (the raw ``request`` task); every other outcome is the same error as for a task."""
    result: Awaitable[RawAnswer] = transport_of(client).send(request, raw=True)
    return result


def send_signed(client: pusher.Pusher, method: str, path: str, params: Any) -> Awaitable[Any]:
    """Sign a request with the SDK's own signing (``signed_request``) and send it."""
    return send(client, signed_request(client, method, path, params))


def events_request(client: pusher.Pusher, event: dict[str, Any]) -> Request:
    """``POST /apps/{id}/events`` for one event ``{name, channels, data[, socket_id][, info]}``
    whose inputs are checked and whose data is already a string (encrypted where it must be)."""
    return signed_request(client, "POST", f"/apps/{client._pusher_client.app_id}/events", event)


def batch_request(client: pusher.Pusher, events: Sequence[Mapping[str, Any]]) -> Request:
    """``POST /apps/{id}/batch_events`` for events ``{channel, name, data[, socket_id][, info]}``
    whose inputs are checked and whose data is already a string (encrypted where it must be).

    What the SDK's ``trigger_batch(..., already_encoded=True)`` sends, without its own size
    check: that one counts Python object overhead and would refuse events Pusher accepts.
    """
    path = f"/apps/{client._pusher_client.app_id}/batch_events"
    return signed_request(client, "POST", path, {"batch": list(events)})


def encrypted_data(master_key_base64: str, channel: str, data: str) -> str:
    """``data`` as sent on the end-to-end encrypted ``channel``: the SDK's envelope
    (``{nonce, ciphertext}``, keyed by the channel's shared secret), as JSON text."""
    with sdk_errors():
        envelope = encrypt(channel, data, base64.b64decode(master_key_base64))
    return json.dumps(envelope, ensure_ascii=False)
