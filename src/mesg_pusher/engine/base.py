"""What every engine generation shares: the channel, the error mapping, the result encoding.

Everything crossing this package is plain Python: ``Execution`` in, dict outputs or an error
string out. gRPC failures become ``EngineError`` (worth retrying: the engine is away) or
``EngineRejected`` (the engine answered no; retrying will not help). The adapters (``g1``,
``g2``, ``g3``) only say which RPC carries each thing and with which credentials.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import grpc.aio

from mesg_pusher._proto.mesg.protobuf.struct_pb2 import Struct
from mesg_pusher.codec import fill_struct, struct_to_dict
from mesg_pusher.errors import INTERNAL_ERROR, OUTPUTS_TOO_LARGE, EngineError, EngineRejected, error_text
from mesg_pusher.hash_text import b58
from mesg_pusher.identity import EngineIdentity, Generation

logger = logging.getLogger(__name__)

# Codes that mean "the engine or the path to it is away", not "the engine said no".
TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
    }
)
CALL_TIMEOUT = 10.0
MAX_UPDATE_BYTES = 4 * 1024 * 1024 - 1024  # gRPC's default receive limit, less headroom


@dataclass(frozen=True, slots=True)
class Execution:
    """One unit of work from the engine."""

    hash: bytes
    task_key: str
    inputs: dict[str, Any]

    @property
    def id(self) -> str:
        """The base58 hash, as the engine and mesg-cli print it."""
        return b58(self.hash)


class ResultRequest(Protocol):
    """G1/G2's ``UpdateExecutionRequest`` and G3's ``ResultRequest``: outputs 2 or error 3."""

    @property
    def outputs(self) -> Struct: ...

    error: str

    def ByteSize(self) -> int: ...


def fill_result(request: ResultRequest, outputs: Mapping[str, Any] | None, error: str | None) -> None:
    """Put one result into ``request``; outputs the engine could not take become an error.

    Outputs that cannot be encoded, or that would exceed gRPC's 4 MB default (the engine would
    refuse the message, and the refusal would read as the engine being away), are turned into
    an error result so the application hears why.
    """
    if error is not None:
        request.error = error
        return
    try:
        fill_struct(request.outputs, outputs or {})
    except (TypeError, ValueError, RecursionError) as exc:
        request.error = error_text(
            INTERNAL_ERROR, f"mesg-pusher could not encode its outputs: {type(exc).__name__}"
        )
        return
    if request.ByteSize() > MAX_UPDATE_BYTES:
        request.error = error_text(
            OUTPUTS_TOO_LARGE,
            f"outputs are {request.ByteSize()} bytes, over the engine's "
            f"{MAX_UPDATE_BYTES // 1024 // 1024} MB message limit",
        )


def error_from(code: grpc.StatusCode, details: str | None, what: str) -> EngineError:
    """``EngineError`` for codes that mean "away", ``EngineRejected`` for an answer."""
    if code in TRANSIENT:
        return EngineError(f"{what}: engine unavailable ({code.name}: {details or code.name})")
    return EngineRejected(f"{what}: engine answered {code.name}: {details or code.name}")


def open_channel(endpoint: str, keepalive_ms: int) -> grpc.aio.Channel:
    """A plain HTTP/2 channel with keepalive pings so idle connections survive Docker networking."""
    # The engine's Go server refuses pings more often than every 5 minutes by default
    # (GOAWAY too_many_pings), which is also what its own test service uses.
    return grpc.aio.insecure_channel(
        endpoint,
        options=[
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_timeout_ms", 20_000),
            # grpcio (1.85 here) times out every ping, keepalive ones included, after this
            # (default 60 s) whatever keepalive_timeout_ms says: without it, a path that
            # went silent took 61 s, not 22 s, to notice (tests/faults, silent path).
            ("grpc.http2.ping_timeout_ms", 20_000),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ],
    )


class EngineClient(abc.ABC):
    """The engine as the worker, outbox and emitter see it, whatever its generation.

    ``subscribe`` yields this process's new work once the engine says ``status: ready``;
    ``update`` reports one result; ``emit`` creates one event of our instance. Adapters
    implement ``_open_stream``, ``_send_result`` and ``_send_event``.
    """

    generation: Generation

    def __init__(self, identity: EngineIdentity, keepalive_ms: int = 300_000) -> None:
        self.identity = identity
        self.endpoint = identity.endpoint
        self._channel = open_channel(identity.endpoint, keepalive_ms)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"

    async def close(self) -> None:
        await self._channel.close(grace=None)

    def _error(self, code: grpc.StatusCode, details: str | None, what: str) -> EngineError:
        """Map a failed call; G3 overrides it to recognise a lost credential token."""
        return error_from(code, details, what)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Execution]]:
        """Subscribe to this process's new work; entered once the engine says ``status: ready``.

        Iterating the stream yields executions until the engine closes it (the iterator ends) or
        it breaks (``EngineError``). Callers reconnect: no generation replays missed work.
        """
        call = await self._open_stream()
        try:
            yield self._read(call)
        finally:
            call.cancel()
            self._stream_closed(call)

    async def _ready(self, call: Any) -> Any:
        """Wait for the stream's header; the call, or its failure as an ``EngineError``."""
        try:
            try:
                metadata = await call.initial_metadata()
            except grpc.aio.AioRpcError as exc:
                raise self._error(exc.code(), exc.details(), "execution stream") from None
            if call.done():
                # The call failed before any header: surface its status.
                raise self._error(await call.code(), await call.details(), "execution stream")
        except BaseException:
            call.cancel()
            raise
        if dict(metadata or ()).get("status") != "ready":
            logger.warning("execution stream opened without the 'status: ready' header")
        return call

    async def _read(self, call: Any) -> AsyncIterator[Execution]:
        while True:
            try:
                message = await call.read()
            except grpc.aio.AioRpcError as exc:
                raise self._error(exc.code(), exc.details(), "execution stream") from None
            if message is grpc.aio.EOF:
                return
            yield Execution(message.hash, message.taskKey, struct_to_dict(message.inputs))

    def _stream_closed(self, call: Any) -> None:  # noqa: B027 - a hook, optional by design
        """Called when a stream from ``_open_stream`` ends, however it ends."""

    async def update(
        self, execution_hash: bytes, outputs: Mapping[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Report one execution's result: outputs, or an error."""
        try:
            await self._send_result(execution_hash, outputs, error)
        except grpc.aio.AioRpcError as exc:
            what = f"result of execution {b58(execution_hash)}"
            raise self._error(exc.code(), exc.details(), what) from None

    async def emit(self, key: str, data: Mapping[str, Any]) -> None:
        """Create one event of this instance."""
        try:
            await self._send_event(key, data)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc.code(), exc.details(), f"event {key!r}") from None

    @abc.abstractmethod
    async def _open_stream(self) -> Any:
        """Start the execution stream and wait for its ready header (``self._ready``)."""

    @abc.abstractmethod
    async def _send_result(
        self, execution_hash: bytes, outputs: Mapping[str, Any] | None, error: str | None
    ) -> None:
        """One result call; gRPC errors propagate."""

    @abc.abstractmethod
    async def _send_event(self, key: str, data: Mapping[str, Any]) -> None:
        """One event call; gRPC errors propagate."""
