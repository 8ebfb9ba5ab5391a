"""gRPC method handlers for mesg.api.{Execution,Event,Service,Instance} over an EngineState,
and for G3's mesg.grpc.orchestrator.Runner/Register and mesg.grpc.runner.Runner over a
``RunnerRegistry``.

The handlers are registered by full method name (``/mesg.api.Execution/Stream``...) rather
than through the generated ``add_*Servicer_to_server`` helpers, so that streams and
``Execution.Get`` can send bytes serialised once at publish time. Every ``LocalEngineError`` is
answered with its status code and the engine's message; see ``state`` for the codes.
A stream sends header metadata ``status: ready`` once its subscription is registered, and a
stream that falls ``queue_size`` messages behind is ended with RESOURCE_EXHAUSTED.

Under G3 the engine has no ``mesg.api.Execution/Update`` nor ``mesg.api.Event/Create``: a
service can only answer through the runner API, so they are left out (UNIMPLEMENTED). The
application side (Create, Get, Stream, Service, Instance) stays as in G1: the local engine's
``Application`` is the one way tests and the demo act as an application, whatever the generation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from mesg_local_engine._proto.mesg.api import event_pb2 as api_event_pb2
from mesg_local_engine._proto.mesg.api import execution_pb2 as api_execution_pb2
from mesg_local_engine._proto.mesg.api import instance_pb2 as api_instance_pb2
from mesg_local_engine._proto.mesg.api import service_pb2 as api_service_pb2
from mesg_local_engine._proto.mesg.grpc.orchestrator import runner_pb2 as orchestrator_pb2
from mesg_local_engine._proto.mesg.grpc.runner import runner_pb2
from mesg_local_engine.runners import REQUEST_SIGNATURE, RunnerRegistry
from mesg_local_engine.state import (
    IN_PROGRESS,
    EngineState,
    EventFilter,
    ExecutionFilter,
    LocalEngineError,
    Subscription,
)

logger = logging.getLogger(__name__)

__all__ = ["READY_METADATA", "generic_handlers", "runner_handlers"]

#: Header metadata a stream sends once it is subscribed; clients wait for it.
READY_METADATA = (("status", "ready"),)

_Request = TypeVar("_Request")
_F = TypeVar("_F", ExecutionFilter, EventFilter)


def generic_handlers(state: EngineState, *, runner_api: bool = False) -> tuple[grpc.GenericRpcHandler, ...]:
    """The four mesg.api services, ready for ``server.add_generic_rpc_handlers``.

    ``runner_api`` (G3): without the two methods only a service would call.
    """

    def update_execution(
        request: api_execution_pb2.UpdateExecutionRequest,
    ) -> api_execution_pb2.UpdateExecutionResponse:
        state.update_execution(request)
        return api_execution_pb2.UpdateExecutionResponse()

    def delete_instance(
        request: api_instance_pb2.DeleteInstanceRequest,
    ) -> api_instance_pb2.DeleteInstanceResponse:
        state.delete_instance(request.hash)
        return api_instance_pb2.DeleteInstanceResponse()

    execution = {
        "Create": _unary(
            api_execution_pb2.CreateExecutionRequest,
            lambda r: api_execution_pb2.CreateExecutionResponse(hash=state.create_execution(r)),
        ),
        "Get": _unary(
            api_execution_pb2.GetExecutionRequest,
            lambda r: state.get_execution(r.hash),
            serialized=True,
        ),
        "Stream": _stream(
            api_execution_pb2.StreamExecutionRequest,
            lambda r: state.subscribe_executions(ExecutionFilter.from_proto(r.filter)),
            state.unsubscribe_executions,
        ),
        "Update": _unary(api_execution_pb2.UpdateExecutionRequest, update_execution),
    }
    event = {
        "Create": _unary(
            api_event_pb2.CreateEventRequest,
            lambda r: api_event_pb2.CreateEventResponse(hash=state.create_event(r)),
        ),
        "Stream": _stream(
            api_event_pb2.StreamEventRequest,
            lambda r: state.subscribe_events(EventFilter.from_proto(r.filter)),
            state.unsubscribe_events,
        ),
    }
    service = {
        "Create": _unary(
            api_service_pb2.CreateServiceRequest,
            lambda r: api_service_pb2.CreateServiceResponse(hash=state.create_service(r)),
        ),
        "Get": _unary(api_service_pb2.GetServiceRequest, lambda r: state.get_service(r.hash)),
        "List": _unary(
            api_service_pb2.ListServiceRequest,
            lambda r: api_service_pb2.ListServiceResponse(services=state.list_services()),
        ),
        "Exists": _unary(
            api_service_pb2.ExistsServiceRequest,
            lambda r: api_service_pb2.ExistsServiceResponse(exists=state.service_exists(r.hash)),
        ),
        "Hash": _unary(
            api_service_pb2.CreateServiceRequest,
            lambda r: api_service_pb2.HashServiceResponse(hash=state.service_hash(r)),
        ),
    }
    instance = {
        "Get": _unary(api_instance_pb2.GetInstanceRequest, lambda r: state.get_instance(r.hash)),
        "List": _unary(
            api_instance_pb2.ListInstanceRequest,
            lambda r: api_instance_pb2.ListInstanceResponse(instances=state.list_instances(r.serviceHash)),
        ),
        "Create": _unary(
            api_instance_pb2.CreateInstanceRequest,
            lambda r: api_instance_pb2.CreateInstanceResponse(
                hash=state.create_instance(r.serviceHash, r.env)
            ),
        ),
        "Delete": _unary(api_instance_pb2.DeleteInstanceRequest, delete_instance),
    }
    if runner_api:
        del execution["Update"], event["Create"]
    return (
        grpc.method_handlers_generic_handler("mesg.api.Execution", execution),
        grpc.method_handlers_generic_handler("mesg.api.Event", event),
        grpc.method_handlers_generic_handler("mesg.api.Service", service),
        grpc.method_handlers_generic_handler("mesg.api.Instance", instance),
    )


def runner_handlers(state: EngineState, registry: RunnerRegistry) -> tuple[grpc.GenericRpcHandler, ...]:
    """G3: ``mesg.grpc.orchestrator.Runner/Register`` and the token-checked ``mesg.grpc.runner.Runner``.

    Every refusal is answered with code UNKNOWN, as the engine does (a Go error through gRPC).
    """

    def register(
        request: orchestrator_pb2.RunnerRegisterRequest, metadata: _Metadata
    ) -> orchestrator_pb2.RunnerRegisterResponse:
        signature = next((v for k, v in metadata if k == REQUEST_SIGNATURE), None)
        token = registry.register(
            signature if isinstance(signature, str) else None, request.serviceHash, request.envHash
        )
        return orchestrator_pb2.RunnerRegisterResponse(token=token)

    def result(request: runner_pb2.ResultRequest, metadata: _Metadata) -> runner_pb2.ResultResponse:
        state.submit_result(registry.authorize(metadata), request)
        return runner_pb2.ResultResponse()

    def event(request: runner_pb2.EventRequest, metadata: _Metadata) -> runner_pb2.EventResponse:
        registry.authorize(metadata)
        state.create_event(
            api_event_pb2.CreateEventRequest(
                instanceHash=registry.instance_hash, key=request.key, data=request.data
            )
        )
        return runner_pb2.EventResponse()

    def subscribe(request: runner_pb2.ExecutionRequest, metadata: _Metadata) -> Subscription[ExecutionFilter]:
        # Checked once, when the stream opens: like the engine, a token deleted later (by a
        # restart or another Register) does not end a stream already open.
        runner = registry.authorize(metadata)
        return state.subscribe_executions(
            ExecutionFilter(statuses=frozenset({IN_PROGRESS}), executor_hash=runner)
        )

    return (
        grpc.method_handlers_generic_handler(
            "mesg.grpc.orchestrator.Runner",
            {"Register": _unary(orchestrator_pb2.RunnerRegisterRequest, register, metadata=True)},
        ),
        grpc.method_handlers_generic_handler(
            "mesg.grpc.runner.Runner",
            {
                "Execution": _stream(
                    runner_pb2.ExecutionRequest, subscribe, state.unsubscribe_executions, metadata=True
                ),
                "Result": _unary(runner_pb2.ResultRequest, result, metadata=True),
                "Event": _unary(runner_pb2.EventRequest, event, metadata=True),
            },
        ),
    )


_Metadata = tuple[tuple[str, str | bytes], ...]


def _raw(payload: bytes) -> bytes:
    return payload


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()  # type: ignore[no-any-return]


def _unary(
    request_type: type[_Request],
    behaviour: Callable[..., Any],
    *,
    serialized: bool = False,
    metadata: bool = False,
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary handler answering ``behaviour(request)``; ``serialized`` if it returns bytes.

    ``metadata`` (the G3 API): ``behaviour(request, metadata)``, and refusals are UNKNOWN.
    """

    async def handle(request: _Request, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            if metadata:
                return behaviour(request, tuple(context.invocation_metadata() or ()))
            return behaviour(request)
        except LocalEngineError as exc:
            await context.abort(grpc.StatusCode.UNKNOWN if metadata else exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_type.FromString,  # type: ignore[attr-defined]
        response_serializer=_raw if serialized else _serialize,
    )


def _stream(
    request_type: type[_Request],
    subscribe: Callable[..., Subscription[_F]],
    unsubscribe: Callable[[Subscription[_F]], None],
    *,
    metadata: bool = False,
) -> grpc.RpcMethodHandler[Any, Any]:
    """A server-stream handler: subscribe, say ready, then relay the queue until cancelled."""

    async def handle(request: _Request, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
        if metadata:
            try:
                subscription = subscribe(request, tuple(context.invocation_metadata() or ()))
            except LocalEngineError as exc:
                await context.abort(grpc.StatusCode.UNKNOWN, exc.message)
        else:
            subscription = subscribe(request)
        try:
            await context.send_initial_metadata(READY_METADATA)
            queue = subscription.queue
            while True:
                payload = await queue.get()
                if not payload and subscription.closed:
                    return  # EngineState.close_streams: end with status OK
                if subscription.dropped:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"stream subscriber too slow: {queue.qsize() + 1} messages not read",
                    )
                yield payload
        finally:
            unsubscribe(subscription)

    return grpc.unary_stream_rpc_method_handler(
        handle,
        request_deserializer=request_type.FromString,  # type: ignore[attr-defined]
        response_serializer=_raw,
    )
