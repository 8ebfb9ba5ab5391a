"""The errors mesg-pusher raises; each ends one execution with a message a user can act on.

    MesgPusherError
    ├── ConfigError          settings missing or invalid (names the variable that sets it)
    ├── InputError           an execution's inputs are wrong (names the input)
    ├── PusherError          a call to Pusher did not succeed
    │   ├── PusherHTTPError      Pusher answered with an error status (status and body)
    │   ├── PusherUnreachable    the request never reached Pusher (refused, DNS, TLS, proxy)
    │   └── PusherUnknownOutcome the request was sent but no answer came (timeout, reset)
    ├── EngineError          the engine could not be reached or rejected a call
    │   └── EngineRejected       the engine answered with an error that retrying won't fix
    └── ShuttingDown         the service stopped before the execution could run

Messages never contain secrets: anything built from user configuration goes through
``mesg_pusher.redact`` first.
"""

from __future__ import annotations


class MesgPusherError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(MesgPusherError):
    """A setting is missing or invalid."""


class InputError(MesgPusherError):
    """An execution input is missing, of the wrong type or out of Pusher's limits."""


class PusherError(MesgPusherError):
    """A call to Pusher did not succeed."""


class PusherHTTPError(PusherError):
    """Pusher answered with a non-2xx status."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        text = body.strip()
        if len(text) > 500:
            text = text[:500] + "…"
        super().__init__(f"Pusher answered HTTP {status}: {text or '(empty body)'}")


class PusherUnreachable(PusherError):
    """The request never reached Pusher, so retrying it is safe."""


class PusherUnknownOutcome(PusherError):
    """The request was sent but no answer came; it may or may not have taken effect."""


class EngineError(MesgPusherError):
    """The MESG engine could not be reached, or a call to it failed."""


class EngineRejected(EngineError):
    """The engine rejected a call (e.g. a status error); retrying will not help."""


class ShuttingDown(MesgPusherError):
    """The service is stopping and did not run the execution."""
