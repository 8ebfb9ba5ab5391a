"""Start a local engine on a port, with the service deployed and one instance running.

The generation decides what the service side sees: G1 as engine v0.16; G2 adds runners and
picks an executor among them for each execution; G3 also adds the runner API with its
Register signature and tokens (see ``runners`` and ``signature``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

import grpc

from mesg_local_engine._proto.mesg.api import service_pb2 as api_service_pb2
from mesg_local_engine._proto.mesg.types import service_pb2 as types_service_pb2
from mesg_local_engine.definition import load_service
from mesg_local_engine.deployment import GENERATIONS, Deployment
from mesg_local_engine.hash_text import b58
from mesg_local_engine.runners import RunnerRegistry
from mesg_local_engine.servicers import generic_handlers, runner_handlers
from mesg_local_engine.state import (
    DEFAULT_MAX_FINISHED_EXECUTIONS,
    DEFAULT_QUEUE_SIZE,
    EngineState,
    ExecutionJournal,
)

logger = logging.getLogger(__name__)

__all__ = ["LocalEngine", "start_engine"]

_SERVER_OPTIONS = (
    # Without this, gRPC on Linux lets a second engine bind the same port silently.
    ("grpc.so_reuseport", 0),
    # Accept client keepalive pings down to every second (the default minimum is 5 minutes,
    # and a client pinging faster gets GOAWAY too_many_pings), so tests can make a service
    # notice a dead path in seconds.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1_000),
    ("grpc.http2.max_ping_strikes", 0),
)


@dataclass(eq=False)
class LocalEngine:
    """A running local engine; ``token`` is what the real engine puts in ``MESG_TOKEN``."""

    endpoint: str
    service_hash: bytes
    instance_hash: bytes
    state: EngineState
    server: grpc.aio.Server
    journal: ExecutionJournal | None = None
    generation: str = "g1"
    registry: RunnerRegistry | None = None

    @property
    def token(self) -> str:
        """Base58 of the instance hash, the service's ``MESG_TOKEN``."""
        return b58(self.instance_hash)

    @property
    def deployment(self) -> Deployment:
        """What its service processes are told (the READY line, their ``MESG_*`` variables)."""
        registry = self.registry
        return Deployment(
            generation=self.generation,
            endpoint=self.endpoint,
            service_hash=self.service_hash,
            instance_hash=self.instance_hash,
            env_hash=registry.env_hash if registry is not None else b"",
            runners=registry.runners if registry is not None else (),
        )

    @property
    def service(self) -> types_service_pb2.Service:
        """The deployed service as the engine stores it (tasks, events, configuration)."""
        return self.state.get_service(self.service_hash)

    @property
    def env(self) -> tuple[str, ...]:
        """The instance's ``K=V`` env: mesg.yml defaults overridden by the given values."""
        return self.state.instance_env(self.instance_hash)

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; open streams end when the grace period is over."""
        await self.server.stop(grace)
        if self.journal is not None:
            self.journal.close()

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()

    async def __aenter__(self) -> LocalEngine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_engine(
    host: str = "127.0.0.1",
    port: int = 0,
    definition: api_service_pb2.CreateServiceRequest | str | os.PathLike[str] = "mesg.yml",
    env: Iterable[str] = (),
    *,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    max_finished_executions: int = DEFAULT_MAX_FINISHED_EXECUTIONS,
    state_file: str | os.PathLike[str] | None = None,
    generation: str = "g1",
    runners: int = 1,
    key_seed: bytes = b"",
) -> LocalEngine:
    """Serve mesg.api on ``host:port`` (0 picks a free port) and deploy ``definition``.

    Like ``mesg-cli service:dev``: the service is created from ``definition`` (a mesg.yml's
    path, by default the one in the working directory, or the request compiled from one) and
    one instance is started with ``env`` (``K=V`` overrides of the mesg.yml defaults). Raises
    ``DefinitionError`` for an invalid mesg.yml and ``OSError`` if the port is taken.

    With ``state_file``, executions survive a restart as in the real engine: the file's
    journal is replayed (executions of this instance come back InProgress, Completed or
    Failed) and every Create and Update is appended to it. Without it, all is in memory.

    ``generation`` g2 or g3 gives the instance ``runners`` runners (one per emulated engine
    node); g3 signs each runner's Register with its node's key, derived from ``key_seed`` so
    that a restarted engine with the same seed accepts the same signatures. Tokens are never
    kept: a restart forgets them, as the real engine does.
    """
    if generation not in GENERATIONS:
        raise ValueError(f"unknown engine generation {generation!r}: use one of {', '.join(GENERATIONS)}")
    if generation == "g1" and runners != 1:
        raise ValueError("engine v0.16 (g1) has no runners: an instance runs as one process")
    if not isinstance(definition, api_service_pb2.CreateServiceRequest):
        definition = load_service(definition)
    state = EngineState(queue_size=queue_size, max_finished_executions=max_finished_executions)
    service_hash = state.create_service(definition)
    instance_hash = state.create_instance(service_hash, env)
    registry = None
    if generation != "g1":
        registry = RunnerRegistry(
            service_hash,
            instance_hash,
            state.instance_env(instance_hash),
            runners,
            key_seed=key_seed,
            signed=generation == "g3",
        )
        state.set_runners(instance_hash, registry.hashes)
    journal = None
    if state_file is not None:
        journal = ExecutionJournal(state_file)
        restored = state.persist_to(journal)
        logger.info("state file %s: %d executions restored", journal.path, restored)

    host = host.strip("[]")
    server = grpc.aio.server(options=_SERVER_OPTIONS)
    server.add_generic_rpc_handlers(generic_handlers(state, runner_api=generation == "g3"))
    if generation == "g3" and registry is not None:
        server.add_generic_rpc_handlers(runner_handlers(state, registry))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        if journal is not None:
            journal.close()
        raise OSError(f"local engine cannot listen on {address}: {exc}") from exc
    if not bound:
        if journal is not None:
            journal.close()
        raise OSError(f"local engine cannot listen on {address}")
    await server.start()
    endpoint = f"{_client_host(host)}:{bound}"
    logger.debug("local engine listening on %s", endpoint)
    return LocalEngine(
        endpoint=endpoint,
        service_hash=service_hash,
        instance_hash=instance_hash,
        state=state,
        server=server,
        journal=journal,
        generation=generation,
        registry=registry,
    )


def _client_host(host: str) -> str:
    """The host a client on this machine dials for a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
