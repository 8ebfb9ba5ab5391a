"""Helpers of the end-to-end tests: unique channel names, and running a task as an application."""

from __future__ import annotations

import uuid
from typing import Any

from mesg_pusher.definition import check_task_outputs, load_definition
from mesg_pusher.local_engine.app import Application, ExecutionResult

DEFINITION = load_definition()


def channel(prefix: str = "test") -> str:
    """A channel name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def run(app: Application, instance: bytes, task: str, inputs: dict[str, Any]) -> ExecutionResult:
    """Execute and wait; a completed execution's outputs must satisfy mesg.yml."""
    result = await app.execute_task_and_wait_result(instance, task, inputs, timeout=20)
    if result.ok:
        # The engine would silently turn outputs that do not match mesg.yml into a failure.
        assert check_task_outputs(DEFINITION.name, DEFINITION.tasks[task], result.outputs or {}) is None
    return result
