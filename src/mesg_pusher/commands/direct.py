"""One task run the way the service runs it, without the engine (for ``exec`` and ``check``).

The inputs go through what the engine and the service do to an execution's inputs: the
``Struct`` round trip (every number a double, integral ones back to int), the engine's
validation against ``mesg.yml``, then the task's own handler with the settings the service
would read (environment, ``.env``, ``PUSHER_URL``). The outputs are checked against
``mesg.yml`` as the engine would check them, so a result here is the result there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesg_pusher.codec import dict_to_struct, struct_to_dict
from mesg_pusher.config import PusherSettings, secrets_in
from mesg_pusher.definition import (
    ServiceDefinition,
    check_task_inputs,
    check_task_outputs,
    load_definition,
)
from mesg_pusher.errors import INTERNAL_ERROR, UNKNOWN_TASK, InputError, MesgPusherError, error_text
from mesg_pusher.pusher_client import ClientPool
from mesg_pusher.redact import scrub
from mesg_pusher.tasks import TASKS, Outputs, TaskContext


class TaskFailed(MesgPusherError):
    """The task ended with an error; ``str()`` is the error an execution would carry: its
    ``code``, then the message, fit to show (secrets masked)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(error_text(code, message))
        self.code = code
        self.message = message


def engine_inputs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as the service receives them from the engine (through a protobuf ``Struct``)."""
    try:
        return struct_to_dict(dict_to_struct(values))
    except (TypeError, ValueError) as exc:
        raise InputError(f"inputs cannot be sent as a MESG execution: {exc}") from None


async def run_task(
    task_key: str,
    values: Mapping[str, Any],
    settings: PusherSettings,
    service: ServiceDefinition | None = None,
) -> Outputs:
    """The task's outputs, or ``TaskFailed`` with the message an application would get.

    ``service``: the definition the caller already loaded (else ``./mesg.yml`` or the shipped copy).
    """
    service = service or load_definition()
    secrets = settings.secrets + secrets_in(values)
    task = service.tasks.get(task_key)
    if task is None or task_key not in TASKS:
        raise TaskFailed(
            UNKNOWN_TASK, f"unknown task {task_key!r}; this service has: {', '.join(service.tasks)}"
        )
    try:
        inputs = engine_inputs(values)
        problem = check_task_inputs(service.name, task, inputs)
        if problem is not None:
            raise InputError(problem)
        pool = ClientPool(settings.ssl_context)
        try:
            outputs = await TASKS[task_key](TaskContext(settings, pool), inputs)
        finally:
            await pool.close()
    except MesgPusherError as exc:
        raise TaskFailed(exc.code, scrub(str(exc), secrets)) from exc
    except Exception as exc:  # a bug of ours: no traceback, which could show a secret
        raise TaskFailed(
            INTERNAL_ERROR,
            f"internal error in mesg-pusher ({type(exc).__name__}: {scrub(str(exc), secrets)})",
        ) from exc
    problem = check_task_outputs(service.name, task, outputs)
    if problem is not None:  # what the engine would make of them: outputs of ours that break mesg.yml
        raise TaskFailed(INTERNAL_ERROR, scrub(problem, secrets))
    return outputs
