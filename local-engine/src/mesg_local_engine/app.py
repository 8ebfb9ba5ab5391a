"""What a MESG application does, as npm mesg-js's ``application``: resolve, execute, listen.

Many concurrent ``execute_task_and_wait_result`` calls share ONE ``Execution.Stream``
(statuses Completed/Failed, filtered on a tag unique to this Application), opened once and
awaited until the engine says ``status: ready``; results are routed to waiters by execution
hash. A result that arrives before its ``Execution.Create`` call has returned is kept until
the caller asks for it, so the race cannot lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from mesg_local_engine._proto.mesg.api import event_pb2 as api_event_pb2
from mesg_local_engine._proto.mesg.api import (
    event_pb2_grpc,
    execution_pb2_grpc,
    instance_pb2_grpc,
    service_pb2_grpc,
)
from mesg_local_engine._proto.mesg.api import execution_pb2 as api_execution_pb2
from mesg_local_engine._proto.mesg.api import instance_pb2 as api_instance_pb2
from mesg_local_engine._proto.mesg.api import service_pb2 as api_service_pb2
from mesg_local_engine._proto.mesg.types import execution_pb2 as types_execution_pb2
from mesg_local_engine.values import dict_to_struct, struct_to_dict

logger = logging.getLogger(__name__)

__all__ = ["Application", "EventListener", "ExecutionResult", "ResolveError"]

_StreamFilter = api_execution_pb2.StreamExecutionRequest.Filter
_FINISHED = (types_execution_pb2.Completed, types_execution_pb2.Failed)
_MAX_UNCLAIMED = 10_000


class ResolveError(LookupError):
    """No service with that sid, or no instance of it, is running on the engine."""


@dataclass(frozen=True)
class ExecutionResult:
    """A finished execution: ``status`` is "Completed" (with outputs) or "Failed" (with error)."""

    hash: bytes
    status: str
    outputs: dict[str, Any] | None
    error: str | None
    #: The runner the engine chose to run it (G2, G3); empty under G1.
    executor: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == "Completed"

    @classmethod
    def from_message(cls, message: types_execution_pb2.Execution) -> ExecutionResult:
        completed = message.status == types_execution_pb2.Completed
        return cls(
            hash=message.hash,
            status=types_execution_pb2.Status.Name(message.status),
            outputs=struct_to_dict(message.outputs) if completed else None,
            error=None if completed else message.error,
            executor=bytes(message.executorHash),
        )


class Application:
    """A MESG application's view of an engine, over one grpc.aio channel."""

    def __init__(self, channel: grpc.aio.Channel, *, owns_channel: bool = False) -> None:
        self._channel = channel
        self._owns_channel = owns_channel
        self._executions = execution_pb2_grpc.ExecutionStub(channel)
        self._events = event_pb2_grpc.EventStub(channel)
        self._services = service_pb2_grpc.ServiceStub(channel)
        self._instances = instance_pb2_grpc.InstanceStub(channel)
        self._tag = f"application-{uuid.uuid4().hex}"
        self._results: _ResultStream | None = None
        self._results_lock = asyncio.Lock()

    @classmethod
    def connect(cls, endpoint: str) -> Application:
        """An Application on its own insecure channel to ``host:port``, closed by ``close``."""
        return cls(grpc.aio.insecure_channel(endpoint), owns_channel=True)

    @property
    def tag(self) -> str:
        """The tag put on executions whose results this Application waits for."""
        return self._tag

    async def close(self) -> None:
        if self._results is not None:
            await self._results.close()
            self._results = None
        if self._owns_channel:
            await self._channel.close(None)

    async def __aenter__(self) -> Application:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def resolve(self, sid: str) -> bytes:
        """The hash of a running instance of the service whose sid is ``sid``."""
        listed = await self._services.List(api_service_pb2.ListServiceRequest())
        hashes = [service.hash for service in listed.services if service.sid == sid]
        if not hashes:
            raise ResolveError(f'no service with sid "{sid}" on the engine')
        for service_hash in hashes:
            response = await self._instances.List(
                api_instance_pb2.ListInstanceRequest(serviceHash=service_hash)
            )
            if response.instances:
                return bytes(response.instances[0].hash)
        raise ResolveError(f'service "{sid}" has no running instance')

    async def execute_task(
        self,
        instance_hash: bytes,
        task_key: str,
        inputs: Mapping[str, Any],
        tags: Iterable[str] = (),
    ) -> bytes:
        """Create an execution and return its hash, without waiting for its result."""
        response = await self._executions.Create(
            api_execution_pb2.CreateExecutionRequest(
                instanceHash=instance_hash,
                taskKey=task_key,
                inputs=dict_to_struct(inputs),
                tags=list(tags),
            )
        )
        return bytes(response.hash)

    async def get_execution(self, execution_hash: bytes) -> ExecutionResult:
        """``Execution.Get``: the execution as the engine holds it now (status may be InProgress)."""
        message = await self._executions.Get(api_execution_pb2.GetExecutionRequest(hash=execution_hash))
        return ExecutionResult.from_message(message)

    async def update_execution(
        self, execution_hash: bytes, outputs: Mapping[str, Any] | None = None, error: str | None = None
    ) -> None:
        """``Execution.Update`` as anyone may call it: finish an execution with outputs or an error."""
        request = api_execution_pb2.UpdateExecutionRequest(hash=execution_hash)
        if error is not None:
            request.error = error
        else:
            request.outputs.CopyFrom(dict_to_struct(outputs or {}))
        await self._executions.Update(request)

    async def execute_task_and_wait_result(
        self,
        instance_hash: bytes,
        task_key: str,
        inputs: Mapping[str, Any],
        *,
        tags: Iterable[str] = (),
        timeout: float | None = 30.0,
    ) -> ExecutionResult:
        """Execute a task and wait for it to be Completed or Failed.

        Raises ``TimeoutError`` after ``timeout`` seconds (for the whole call), the engine's
        ``grpc.aio.AioRpcError`` if Create is refused, and ``ConnectionError`` if the result
        stream breaks while waiting.
        """
        async with asyncio.timeout(timeout):
            results = await self._result_stream()
            execution_hash = await self.execute_task(instance_hash, task_key, inputs, (*tags, self._tag))
            return await results.wait(execution_hash)

    def listen_events(self, instance_hash: bytes, key: str | None = None) -> EventListener:
        """Events of an instance (of one key if given), as ``(key, data)`` pairs.

        ``await app.listen_events(...)`` returns once the engine said ready, so events
        emitted afterwards cannot be missed; ``async for`` works with or without that await.
        """
        request = api_event_pb2.StreamEventRequest(
            filter=api_event_pb2.StreamEventRequest.Filter(instanceHash=instance_hash, key=key or "")
        )
        return EventListener(self._events, request)

    async def _result_stream(self) -> _ResultStream:
        results = self._results
        if results is not None and results.error is None:
            return results
        async with self._results_lock:
            if self._results is None or self._results.error is not None:
                request = api_execution_pb2.StreamExecutionRequest(
                    filter=_StreamFilter(statuses=_FINISHED, tags=[self._tag])
                )
                call = self._executions.Stream(request)
                await _wait_ready(call)
                self._results = _ResultStream(call)
            return self._results


class _ResultStream:
    """One shared result stream and the waiters for the executions it will finish."""

    def __init__(self, call: grpc.aio.UnaryStreamCall[Any, Any]) -> None:
        self._call = call
        self._waiters: dict[bytes, asyncio.Future[ExecutionResult]] = {}
        self._unclaimed: OrderedDict[bytes, ExecutionResult] = OrderedDict()
        self._abandoned: set[bytes] = set()
        self.error: ConnectionError | None = None
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def wait(self, execution_hash: bytes) -> ExecutionResult:
        result = self._unclaimed.pop(execution_hash, None)
        if result is not None:
            return result
        if self.error is not None:
            raise self.error
        waiter: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
        self._waiters[execution_hash] = waiter
        try:
            return await waiter
        except asyncio.CancelledError:
            # Timed out or cancelled: its result, when it comes, is dropped, not kept.
            if self._waiters.pop(execution_hash, None) is not None:
                self._abandoned.add(execution_hash)
            raise

    async def close(self) -> None:
        self._call.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _consume(self) -> None:
        error = ConnectionError("execution result stream ended")
        try:
            async for message in self._call:
                self._route(message)
        except asyncio.CancelledError:
            error = ConnectionError("execution result stream closed")
            raise
        except grpc.aio.AioRpcError as exc:
            error = ConnectionError(f"execution result stream failed: {exc.code().name}: {exc.details()}")
        finally:
            self._fail(error)

    def _route(self, message: types_execution_pb2.Execution) -> None:
        execution_hash = bytes(message.hash)
        result = ExecutionResult.from_message(message)
        waiter = self._waiters.pop(execution_hash, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(result)
        elif execution_hash in self._abandoned:
            self._abandoned.discard(execution_hash)
        else:
            # Its Create call has not returned yet (or gave up before it could).
            self._unclaimed[execution_hash] = result
            if len(self._unclaimed) > _MAX_UNCLAIMED:
                self._unclaimed.popitem(last=False)

    def _fail(self, error: ConnectionError) -> None:
        self.error = error
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(error)


class EventListener:
    """An ``Event.Stream`` subscription yielding ``(key, data)``; await it to wait for ready."""

    def __init__(self, stub: event_pb2_grpc.EventStub, request: api_event_pb2.StreamEventRequest) -> None:
        self._stub = stub
        self._request = request
        self._call: grpc.aio.UnaryStreamCall[Any, Any] | None = None
        self._messages: AsyncIterator[Any] | None = None

    async def open(self) -> EventListener:
        """Subscribe (once) and return after the engine's ``status: ready`` header."""
        if self._call is None:
            call = self._stub.Stream(self._request)
            await _wait_ready(call)
            self._call = call
            self._messages = aiter(call)
        return self

    def __await__(self) -> Generator[Any, None, EventListener]:
        return self.open().__await__()

    def __aiter__(self) -> EventListener:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        await self.open()
        assert self._messages is not None
        message = await anext(self._messages)  # StopAsyncIteration when the stream ends
        return message.key, struct_to_dict(message.data)

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> EventListener:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


async def _wait_ready(call: grpc.aio.UnaryStreamCall[Any, Any]) -> None:
    """Wait for the ``status: ready`` header; the stream is useless to rely on before it."""
    try:
        metadata = await call.initial_metadata()
    except BaseException:
        call.cancel()
        raise
    if metadata is not None and metadata.get("status") == "ready":
        return
    if not call.done():
        call.cancel()
        raise ConnectionError("stream opened without the engine's status: ready header")
    code = await call.code()
    raise ConnectionError(f"stream refused: {code.name}: {await call.details()}")
