"""Error codes end to end: application -> local engine -> real service process -> soketi.

soketi's error statuses are real status lines (patches/), and it answers 403 for a disabled
app; the raw task's 404, the 401 of a wrong secret, the 413 and the input errors are asserted
with their codes in test_raw_request_e2e.py and test_limits_e2e.py.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from mesg_local_engine.app import Application
from tests.support.commands import mesg_pusher
from tests.support.e2e import channel, run
from tests.support.fixtures import SoketiFactory
from tests.support.soketi import Soketi
from tests.support.stack import Stack


async def failed(app: Application, instance: bytes, task: str, inputs: dict[str, Any]) -> str:
    result = await run(app, instance, task, inputs)
    assert result.status == "Failed", result.outputs
    return result.error or ""


@pytest.mark.parametrize(
    ("task", "inputs"),
    [("trigger", {"channel": "codes-c", "name": "e", "data": {"a": 1}}), ("channels", {})],
)
async def test_a_disabled_app_is_over_quota_403(
    stack: Stack,
    app: Application,
    pusher_instance: bytes,
    soketi_factory: SoketiFactory,
    task: str,
    inputs: dict[str, Any],
) -> None:
    disabled = soketi_factory(env={"SOKETI_DEFAULT_APP_ENABLED": "false"})
    error = await failed(app, pusher_instance, task, {**inputs, "port": disabled.port})
    assert error.startswith("pusher_over_quota 403: Pusher answered HTTP 403: "), error
    assert "is disabled" in error, error


async def test_nothing_listening_is_unreachable(app: Application, pusher_instance: bytes) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inputs = {"channel": channel(), "name": "e", "data": "x", "port": port, "timeout": 1000}
    error = await failed(app, pusher_instance, "trigger", inputs)
    assert error.startswith(f"pusher_unreachable: could not connect to Pusher at 127.0.0.1:{port}: "), error


async def test_an_input_pusher_would_refuse_is_invalid_input_and_nothing_is_sent(
    app: Application, pusher_instance: bytes
) -> None:
    error = await failed(
        app, pusher_instance, "trigger", {"channel": "not a channel!", "name": "e", "data": "x"}
    )
    assert error.startswith("invalid_input: input 'channel' 'not a channel!' contains"), error


async def test_invalid_connection_inputs_are_invalid_config(app: Application, pusher_instance: bytes) -> None:
    inputs = {"channel": channel(), "name": "e", "data": "x", "appId": "not-digits"}
    error = await failed(app, pusher_instance, "trigger", inputs)
    assert error.startswith("invalid_config: input 'appId' or variable PUSHER_APP_ID must be digits"), error


def test_exec_prints_the_code_of_a_failed_task(soketi: Soketi, tmp_path: Path) -> None:
    env = {**soketi.pusher_env(), "PUSHER_APP_SECRET": "Wr0ng-Secret-Codes"}
    ran = mesg_pusher("exec", "channels", env=env, cwd=tmp_path)
    assert ran.code == 1 and ran.stdout == "", ran.output
    assert "mesg-pusher exec: channels failed: pusher_rejected 401: Pusher answered HTTP 401: " in ran.stderr
    assert "Wr0ng-Secret-Codes" not in ran.output
