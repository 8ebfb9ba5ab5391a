"""A local stand-in for the MESG engine, v0.16 to v0.26 (grpc.aio), to run and test a MESG service.

``start_engine`` deploys a mesg.yml and serves the engine's API; ``Application`` acts as a MESG
application against it (resolve, execute, listen); ``mesg-local-engine`` is the same from a shell.
"""

from mesg_local_engine.app import Application, ExecutionResult, ResolveError
from mesg_local_engine.cli import main
from mesg_local_engine.server import LocalEngine, start_engine
from mesg_local_engine.state import EngineState, LocalEngineError

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
