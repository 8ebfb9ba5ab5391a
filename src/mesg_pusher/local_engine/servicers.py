"""gRPC method handlers for mesg.api.{Execution,Event,Service,Instance} over an EngineState.

The handlers are registered by full method name (``/mesg.api.Execution/Stream``...) rather
than through the generated ``add_*Servicer_to_server`` helpers, so that streams and
``Execution.Get`` can send bytes serialised once at publish time. Every ``LocalEngineError`` is
answered with its status code and the engine's message; see ``state`` for the codes.
A stream sends header metadata ``status: ready`` once its subscription is registered, and a
stream that falls ``queue_size`` messages behind is ended with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from mesg_pusher._proto.mesg.api import event_pb2 as api_event_pb2
from mesg_pusher._proto.mesg.api import execution_pb2 as api_execution_pb2
from mesg_pusher._proto.mesg.api import instance_pb2 as api_instance_pb2
from mesg_pusher._proto.mesg.api import service_pb2 as api_service_pb2
from mesg_pusher.local_engine.state import (
    EngineState,
    EventFilter,
    ExecutionFilter,
    LocalEngineError,
    Subscription,
)

logger = logging.getLogger(__name__)

__all__ = ["READY_METADATA", "generic_handlers"]

#: Header metadata a stream sends once it is subscribed; clients wait for it.
READY_METADATA = (("status", "ready"),)

_Request = TypeVar("_Request")
_F = TypeVar("_F", ExecutionFilter, EventFilter)


def generic_handlers(state: EngineState) -> tuple[grpc.GenericRpcHandler, ...]:
    """The four mesg.api services, ready for ``server.add_generic_rpc_handlers``."""

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
    return (
        grpc.method_handlers_generic_handler("mesg.api.Execution", execution),
        grpc.method_handlers_generic_handler("mesg.api.Event", event),
        grpc.method_handlers_generic_handler("mesg.api.Service", service),
        grpc.method_handlers_generic_handler("mesg.api.Instance", instance),
    )


def _raw(payload: bytes) -> bytes:
    return payload


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()  # type: ignore[no-any-return]


def _unary(
    request_type: type[_Request],
    behaviour: Callable[[_Request], Any],
    *,
    serialized: bool = False,
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary handler answering ``behaviour(request)``; ``serialized`` if it returns bytes."""

    async def handle(request: _Request, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return behaviour(request)
        except LocalEngineError as exc:
            await context.abort(exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_type.FromString,  # type: ignore[attr-defined]
        response_serializer=_raw if serialized else _serialize,
    )


def _stream(
    request_type: type[_Request],
    subscribe: Callable[[_Request], Subscription[_F]],
    unsubscribe: Callable[[Subscription[_F]], None],
) -> grpc.RpcMethodHandler[Any, Any]:
    """A server-stream handler: subscribe, say ready, then relay the queue until cancelled."""

    async def handle(request: _Request, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
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
