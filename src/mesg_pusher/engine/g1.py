"""G1, engine v0.16: the instance's stream, ``Execution.Update``, ``Event.Create``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_pusher._proto.mesg.api import event_pb2, event_pb2_grpc, execution_pb2, execution_pb2_grpc
from mesg_pusher._proto.mesg.types import execution_pb2 as types_pb2
from mesg_pusher.codec import dict_to_struct
from mesg_pusher.engine.base import CALL_TIMEOUT, EngineClient, fill_result
from mesg_pusher.identity import EngineIdentity, Generation


class G1Client(EngineClient):
    """The ``mesg.api`` services, addressed by instance hash; no credentials."""

    generation: Generation = "g1"

    def __init__(self, identity: EngineIdentity, keepalive_ms: int = 300_000) -> None:
        super().__init__(identity, keepalive_ms)
        if identity.instance_hash is None:
            raise ValueError(f"{self.generation} needs the instance hash")
        self.instance_hash = identity.instance_hash
        self._executions = execution_pb2_grpc.ExecutionStub(self._channel)
        self._events = event_pb2_grpc.EventStub(self._channel)

    def _filter(self) -> execution_pb2.StreamExecutionRequest.Filter:
        """New work of our instance: the engine publishes creations and updates alike."""
        return execution_pb2.StreamExecutionRequest.Filter(
            statuses=[types_pb2.InProgress], instanceHash=self.instance_hash
        )

    async def _open_stream(self) -> Any:
        request = execution_pb2.StreamExecutionRequest(filter=self._filter())
        return await self._ready(self._executions.Stream(request))

    async def _send_result(
        self, execution_hash: bytes, outputs: Mapping[str, Any] | None, error: str | None
    ) -> None:
        request = execution_pb2.UpdateExecutionRequest(hash=execution_hash)
        fill_result(request, outputs, error)
        await self._executions.Update(request, timeout=CALL_TIMEOUT)

    async def _send_event(self, key: str, data: Mapping[str, Any]) -> None:
        request = event_pb2.CreateEventRequest(
            instanceHash=self.instance_hash, key=key, data=dict_to_struct(data)
        )
        await self._events.Create(request, timeout=CALL_TIMEOUT)
