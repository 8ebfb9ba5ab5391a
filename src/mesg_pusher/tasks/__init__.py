"""The task registry: mesg.yml task key -> handler. Checked against mesg.yml at start-up."""

from __future__ import annotations

from collections.abc import Mapping

from mesg_pusher.definition import ServiceDefinition
from mesg_pusher.errors import ConfigError
from mesg_pusher.tasks import auth, listening, publish, query, raw
from mesg_pusher.tasks.context import Handler, Outputs, TaskContext

TASKS: Mapping[str, Handler] = {
    "trigger": publish.trigger,
    "triggerBatch": publish.trigger_batch,
    "channels": query.channels,
    "channel": query.channel,
    "users": query.users,
    "terminateUserConnections": auth.terminate_user_connections,
    "sendToUser": publish.send_to_user,
    "authorizeChannel": auth.authorize_channel,
    "authenticateUser": auth.authenticate_user,
    "subscribe": listening.subscribe,
    "unsubscribe": listening.unsubscribe,
    "request": raw.request,
}


def check_registry(definition: ServiceDefinition, handlers: Mapping[str, Handler] = TASKS) -> None:
    """Fail at start-up, not at the first execution, if mesg.yml and the handlers disagree."""
    declared, known = set(definition.tasks), set(handlers)
    if declared != known:
        problems = []
        if declared - known:
            problems.append(f"no handler for {', '.join(sorted(declared - known))}")
        if known - declared:
            problems.append(f"not declared in mesg.yml: {', '.join(sorted(known - declared))}")
        raise ConfigError(f"mesg.yml and the task handlers disagree: {'; '.join(problems)}")


__all__ = ["TASKS", "Handler", "Outputs", "TaskContext", "check_registry"]
