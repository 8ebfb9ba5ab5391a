"""The MESG engine as the service sees it (G1, engine v0.16); the only user of generated code.

Everything crossing this module is plain Python: ``Execution`` in, dict outputs or an error
string out. gRPC failures become ``EngineError`` (worth retrying: the engine is away) or
``EngineRejected`` (the engine answered no; retrying will not help).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from mesg_pusher._proto.mesg.api import event_pb2, event_pb2_grpc, execution_pb2, execution_pb2_grpc
from mesg_pusher._proto.mesg.types import execution_pb2 as types_pb2
from mesg_pusher.base58 import b58encode
from mesg_pusher.codec import dict_to_struct, fill_struct, struct_to_dict
from mesg_pusher.errors import EngineError, EngineRejected

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
        return b58encode(self.hash)


def _error_from(code: grpc.StatusCode, details: str | None, what: str) -> EngineError:
    if code in TRANSIENT:
        return EngineError(f"{what}: engine unavailable ({code.name}: {details or code.name})")
    return EngineRejected(f"{what}: engine answered {code.name}: {details or code.name}")


def _error(exc: grpc.aio.AioRpcError, what: str) -> EngineError:
    return _error_from(exc.code(), exc.details(), what)


class EngineClient:
    """A gRPC channel to the engine, with keepalive pings so idle connections survive."""

    def __init__(self, endpoint: str, instance_hash: bytes, keepalive_ms: int = 300_000) -> None:
        self.endpoint = endpoint
        self.instance_hash = instance_hash
        # The engine's Go server refuses pings more often than every 5 minutes by default
        # (GOAWAY too_many_pings), which is also what its own test service uses.
        self._channel = grpc.aio.insecure_channel(
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
        self._executions = execution_pb2_grpc.ExecutionStub(self._channel)
        self._events = event_pb2_grpc.EventStub(self._channel)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Execution]]:
        """Subscribe to this instance's new work; entered once the engine says ``status: ready``.

        Iterating the stream yields executions until the engine closes it (the iterator ends) or
        it breaks (``EngineError``). Callers reconnect: v0.16 does not replay missed work.
        """
        request = execution_pb2.StreamExecutionRequest(
            filter=execution_pb2.StreamExecutionRequest.Filter(
                statuses=[types_pb2.InProgress], instanceHash=self.instance_hash
            )
        )
        call = self._executions.Stream(request)
        try:
            try:
                metadata = await call.initial_metadata()
            except grpc.aio.AioRpcError as exc:
                raise _error(exc, "execution stream") from None
            if call.done():
                # The call failed before any header: surface its status.
                code = await call.code()
                raise _error_from(code, await call.details(), "execution stream")
            if dict(metadata or ()).get("status") != "ready":
                logger.warning("execution stream opened without the 'status: ready' header")
            yield self._read(call)
        finally:
            call.cancel()

    @staticmethod
    async def _read(call: Any) -> AsyncIterator[Execution]:
        while True:
            try:
                message = await call.read()
            except grpc.aio.AioRpcError as exc:
                raise _error(exc, "execution stream") from None
            if message is grpc.aio.EOF:
                return
            yield Execution(message.hash, message.taskKey, struct_to_dict(message.inputs))

    async def update(
        self, execution_hash: bytes, outputs: Mapping[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Report one execution's result: outputs, or an error."""
        request = execution_pb2.UpdateExecutionRequest(hash=execution_hash)
        if error is not None:
            request.error = error
        else:
            try:
                fill_struct(request.outputs, outputs or {})
            except (TypeError, ValueError, RecursionError) as exc:
                request.error = f"mesg-pusher could not encode its outputs: {type(exc).__name__}"
            else:
                # The engine refuses messages over gRPC's 4 MB default, and a refusal would be
                # taken for the engine being away: turn such a result into an error instead.
                if request.ByteSize() > MAX_UPDATE_BYTES:
                    request.error = (
                        f"outputs are {request.ByteSize()} bytes, over the engine's "
                        f"{MAX_UPDATE_BYTES // 1024 // 1024} MB message limit"
                    )
        try:
            await self._executions.Update(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, f"update of execution {b58encode(execution_hash)}") from None

    async def emit(self, key: str, data: Mapping[str, Any]) -> bytes:
        """Create an event of this instance; returns its hash."""
        request = event_pb2.CreateEventRequest(
            instanceHash=self.instance_hash, key=key, data=dict_to_struct(data)
        )
        try:
            response = await self._events.Create(request, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, f"event {key!r}") from None
        return bytes(response.hash)
