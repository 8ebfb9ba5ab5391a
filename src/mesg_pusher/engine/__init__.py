"""The MESG engine as the service sees it, for every engine generation; the only user of generated code.

``connect(identity)`` picks the adapter for the generation the engine's variables point to
(``EngineIdentity.from_env``); the worker, outbox, emitter and receiving side use the
``EngineClient`` interface only and never learn which generation runs.
"""

from __future__ import annotations

from mesg_pusher.engine.base import CALL_TIMEOUT, MAX_UPDATE_BYTES, TRANSIENT, EngineClient, Execution
from mesg_pusher.engine.g1 import G1Client
from mesg_pusher.engine.g2 import G2Client
from mesg_pusher.engine.g3 import G3Client
from mesg_pusher.identity import EngineIdentity, Generation

__all__ = [
    "CALL_TIMEOUT",
    "MAX_UPDATE_BYTES",
    "TRANSIENT",
    "EngineClient",
    "EngineIdentity",
    "Execution",
    "Generation",
    "connect",
]

ADAPTERS: dict[Generation, type[EngineClient]] = {"g1": G1Client, "g2": G2Client, "g3": G3Client}


def connect(identity: EngineIdentity, keepalive_ms: int = 300_000) -> EngineClient:
    """The client for ``identity``'s generation; the channel connects lazily, on first call."""
    return ADAPTERS[identity.generation](identity, keepalive_ms=keepalive_ms)
