"""A local stand-in for the MESG engine, v0.16 to v0.26 (grpc.aio), for tests, the demo and benchmarks."""

from mesg_pusher.local_engine.app import Application, ExecutionResult, ResolveError
from mesg_pusher.local_engine.cli import main
from mesg_pusher.local_engine.server import LocalEngine, start_engine
from mesg_pusher.local_engine.state import EngineState, LocalEngineError

__all__ = [
    "Application",
    "EngineState",
    "ExecutionResult",
    "LocalEngine",
    "LocalEngineError",
    "ResolveError",
    "main",
    "start_engine",
]
