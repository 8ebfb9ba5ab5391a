"""Wrong secret, unknown app, disabled app: the status and Pusher's own message
reach the execution's error, so an operator can tell the three apart.

Against soketi, whose error statuses are real status lines (patches/). application -> local
engine -> real service process -> soketi.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mesg_local_engine.app import Application
from tests.support.e2e import channel, run
from tests.support.fixtures import SoketiFactory
from tests.support.pusher_api import PusherAPIServer
from tests.support.pusher_ws import PusherError, PusherWS
from tests.support.stack import Stack

WRONG_SECRET = "wr0ng-Secret-4e2c9"

# Every API task that answers only after Pusher did, with the inputs it needs.
TASKS: list[tuple[str, dict[str, Any]]] = [
    ("trigger", {"channel": "status-c", "name": "e", "data": {"a": 1}}),
    ("triggerBatch", {"batch": [{"channel": "status-c", "name": "e", "data": "x"}]}),
    ("channels", {}),
    ("channel", {"channel": "status-c"}),
    ("users", {"channel": "presence-status"}),
]


async def _failed(app: Application, instance: bytes, task: str, inputs: dict[str, Any]) -> str:
    result = await run(app, instance, task, inputs)
    assert result.status == "Failed", result.outputs
    return result.error or ""


@pytest.mark.parametrize(("task", "inputs"), TASKS, ids=[t for t, _ in TASKS])
async def test_wrong_secret_is_401_with_pushers_message(
    stack: Stack, app: Application, pusher_instance: bytes, task: str, inputs: dict[str, Any]
) -> None:
    error = await _failed(app, pusher_instance, task, {**inputs, "secret": WRONG_SECRET})
    assert "Pusher answered HTTP 401" in error, error
    assert "The secret authentication failed" in error, error
    assert WRONG_SECRET not in error
    assert WRONG_SECRET not in stack.service.log()


@pytest.mark.parametrize(("task", "inputs"), TASKS, ids=[t for t, _ in TASKS])
async def test_unknown_app_is_404_with_pushers_message(
    stack: Stack, app: Application, pusher_instance: bytes, task: str, inputs: dict[str, Any]
) -> None:
    error = await _failed(app, pusher_instance, task, {**inputs, "appId": "999999"})
    assert "Pusher answered HTTP 404" in error, error
    assert "The app 999999 could not be found." in error, error


async def test_disabled_app_refuses_subscribers(soketi_factory: SoketiFactory) -> None:
    """soketi enforces ``enabled: false`` on WebSocket connections (code 4003)."""
    disabled = soketi_factory(env={"SOKETI_DEFAULT_APP_ENABLED": "false"})
    with pytest.raises(PusherError) as refused:
        async with PusherWS(disabled.ws_url()):
            pass
    assert refused.value.data["code"] == 4003, refused.value.frame


async def test_disabled_app_trigger_is_403_against_soketi(
    stack: Stack, app: Application, pusher_instance: bytes, soketi_factory: SoketiFactory
) -> None:
    disabled = soketi_factory(env={"SOKETI_DEFAULT_APP_ENABLED": "false"})
    inputs = {"channel": channel(), "name": "e", "data": {"a": 1}, "port": disabled.port}
    error = await _failed(app, pusher_instance, "trigger", inputs)
    assert "HTTP 403" in error


class ForbiddingServer(PusherAPIServer):
    """Pusher's answer for a disabled app (or one over its message quota): 403 and a text."""

    MESSAGE = "Forbidden: app 100001 is disabled"

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        return 403, {"error": self.MESSAGE}


@pytest.fixture
async def forbidding(stack: Stack) -> AsyncIterator[ForbiddingServer]:
    app = stack.soketi.app
    async with ForbiddingServer(app.app_id, app.key, app.secret) as server:
        yield server


@pytest.mark.parametrize(("task", "inputs"), TASKS, ids=[t for t, _ in TASKS])
async def test_forbidden_is_403_with_the_servers_message(
    app: Application,
    pusher_instance: bytes,
    forbidding: ForbiddingServer,
    task: str,
    inputs: dict[str, Any],
) -> None:
    error = await _failed(app, pusher_instance, task, {**inputs, **forbidding.connection_inputs()})
    assert "Pusher answered HTTP 403" in error, error
    assert ForbiddingServer.MESSAGE in error, error
    # A 403 is not retried: the signed request reached the server once.
    assert len(forbidding.requests) == 1
    assert forbidding.requests[0].signed
