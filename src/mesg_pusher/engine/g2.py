"""G2, engine v0.17 to v0.20: G1's services, with the stream narrowed to this runner's work."""

from __future__ import annotations

from mesg_pusher._proto.mesg.api import execution_pb2
from mesg_pusher.engine.g1 import G1Client
from mesg_pusher.identity import EngineIdentity, Generation


class G2Client(G1Client):
    """Same calls as G1; the stream filter adds ``executorHash`` = our runner hash.

    Several runners may serve one instance; without the executor filter every runner would
    receive (and race to answer) every execution of the instance. Events still name the
    instance (``MESG_INSTANCE_HASH``), results the execution.
    """

    generation: Generation = "g2"

    def __init__(self, identity: EngineIdentity, keepalive_ms: int = 300_000) -> None:
        super().__init__(identity, keepalive_ms)
        if identity.runner_hash is None:
            raise ValueError("g2 needs the runner hash")
        self.runner_hash = identity.runner_hash

    def _filter(self) -> execution_pb2.StreamExecutionRequest.Filter:
        narrowed = super()._filter()
        narrowed.executorHash = self.runner_hash
        return narrowed
