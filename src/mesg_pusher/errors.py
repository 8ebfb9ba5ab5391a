"""The errors mesg-pusher raises; each ends one execution with a message a user can act on.

    MesgPusherError              internal_error (a bug of ours)
    ├── ConfigError              invalid_config: settings missing or invalid (names the variable)
    ├── InputError               invalid_input: an execution's inputs are wrong (names the input)
    ├── PusherError              a call to Pusher did not succeed
    │   ├── PusherHTTPError          Pusher answered with a status it refuses with (status and body):
    │   │                            pusher_rejected, pusher_over_quota, pusher_rate_limited,
    │   │                            pusher_server_error or pusher_bad_answer, and the status
    │   ├── PusherBadAnswer          pusher_bad_answer: an answer we refuse to read (no status)
    │   ├── PusherUnreachable        pusher_unreachable: nothing reached Pusher (refused, DNS, TLS, proxy)
    │   ├── PusherTimeout            pusher_timeout: a read was sent, no answer came in time
    │   ├── PusherUnknownOutcome     pusher_unknown_outcome: a publish was sent, no answer came
    │   └── PusherSubscriptionRefused  pusher_subscription_refused: the listener's subscription refused
    ├── EngineError              the engine could not be reached or rejected a call
    │   └── EngineRejected           the engine answered with an error that retrying won't fix
    └── ShuttingDown             stopping: the service stopped before the execution could run

An execution's error text is ``<code>: <message>`` (``error_text``): the code is stable and
documented (docs/errors.md), so an application can branch on it; the message is for people.
An HTTP status belongs to the code (``pusher_rejected 413``): it is what says which refusal.

Messages never contain secrets: anything built from user configuration goes through
``mesg_pusher.redact`` first.
"""

from __future__ import annotations

from typing import Final

INVALID_INPUT: Final = "invalid_input"
INVALID_CONFIG: Final = "invalid_config"
PUSHER_REJECTED: Final = "pusher_rejected"
PUSHER_OVER_QUOTA: Final = "pusher_over_quota"
PUSHER_RATE_LIMITED: Final = "pusher_rate_limited"
PUSHER_SERVER_ERROR: Final = "pusher_server_error"
PUSHER_BAD_ANSWER: Final = "pusher_bad_answer"
PUSHER_UNREACHABLE: Final = "pusher_unreachable"
PUSHER_TIMEOUT: Final = "pusher_timeout"
PUSHER_UNKNOWN_OUTCOME: Final = "pusher_unknown_outcome"
PUSHER_SUBSCRIPTION_REFUSED: Final = "pusher_subscription_refused"
UNKNOWN_TASK: Final = "unknown_task"
STOPPING: Final = "stopping"
INTERRUPTED: Final = "interrupted"
INTERNAL_ERROR: Final = "internal_error"
OUTPUTS_TOO_LARGE: Final = "outputs_too_large"

# Every code an execution's error can start with (without the status some carry).
CODES: Final = (
    INVALID_INPUT,
    INVALID_CONFIG,
    PUSHER_REJECTED,
    PUSHER_OVER_QUOTA,
    PUSHER_RATE_LIMITED,
    PUSHER_SERVER_ERROR,
    PUSHER_BAD_ANSWER,
    PUSHER_UNREACHABLE,
    PUSHER_TIMEOUT,
    PUSHER_UNKNOWN_OUTCOME,
    PUSHER_SUBSCRIPTION_REFUSED,
    UNKNOWN_TASK,
    STOPPING,
    INTERRUPTED,
    INTERNAL_ERROR,
    OUTPUTS_TOO_LARGE,
)


def error_text(code: str, message: str) -> str:
    """An execution's error as the application gets it: the stable code, then the human text.

    The one place the form is decided: the worker, ``mesg-pusher exec`` and the result
    encoding all report errors through it.
    """
    return f"{code}: {message}"


def http_code(status: int) -> str:
    """The code of a call Pusher answered with ``status`` and that did not succeed.

    403 is Pusher's answer for an app over its message quota or disabled, 429 for too many
    requests: each asks for something else than a 400 or a 413 (wait, or see the account),
    so each has its own code. A 2xx (or any status that is neither a success, a refusal nor
    a server error) that reaches here is an answer we could not use.
    """
    if status == 403:
        kind = PUSHER_OVER_QUOTA
    elif status == 429:
        kind = PUSHER_RATE_LIMITED
    elif 400 <= status < 500:
        kind = PUSHER_REJECTED
    elif 500 <= status < 600:
        kind = PUSHER_SERVER_ERROR
    else:
        kind = PUSHER_BAD_ANSWER
    return f"{kind} {status}"


class MesgPusherError(Exception):
    """Base of every error this package raises on purpose."""

    #: What an application branches on (docs/errors.md); subclasses name their own.
    code: str = INTERNAL_ERROR


class ConfigError(MesgPusherError):
    """A setting is missing or invalid."""

    code = INVALID_CONFIG


class InputError(MesgPusherError):
    """An execution input is missing, of the wrong type or out of Pusher's limits."""

    code = INVALID_INPUT


class PusherError(MesgPusherError):
    """A call to Pusher did not succeed."""


class PusherHTTPError(PusherError):
    """Pusher answered with a status we do not take as success; ``code`` follows from it.

    ``note`` says what was done about it (tried again, and how long; or why not);
    ``retry_after`` is the wait Pusher asked for (``Retry-After``, in seconds), if any.
    """

    def __init__(
        self, status: int, body: str, note: str | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.code = http_code(status)
        text = body.strip()
        if len(text) > 500:
            text = text[:500] + "…"
        message = f"Pusher answered HTTP {status}: {text or '(empty body)'}"
        super().__init__(f"{message}; {note}" if note else message)


class PusherBadAnswer(PusherError):
    """An answer came that we refuse to read (too large, a protocol switch): asking again would
    bring the same answer."""

    code = PUSHER_BAD_ANSWER


class PusherUnreachable(PusherError):
    """The request never reached Pusher, so retrying it is safe."""

    code = PUSHER_UNREACHABLE


class PusherTimeout(PusherError):
    """A read was sent and no answer came in time; reads change nothing, so retrying is safe."""

    code = PUSHER_TIMEOUT


class PusherUnknownOutcome(PusherError):
    """The request was sent but no answer came; it may or may not have taken effect."""

    code = PUSHER_UNKNOWN_OUTCOME


class PusherSubscriptionRefused(PusherError):
    """Pusher refused the channel listener's subscription to one or more channels."""

    code = PUSHER_SUBSCRIPTION_REFUSED


class EngineError(MesgPusherError):
    """The MESG engine could not be reached, or a call to it failed."""


class EngineRejected(EngineError):
    """The engine rejected a call (e.g. a status error); retrying will not help."""


class ShuttingDown(MesgPusherError):
    """The service is stopping and did not run the execution (or did not send its request)."""

    code = STOPPING
