"""``mesg-pusher exec``: one task straight to a real Pusher server (soketi), no engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.support.commands import mesg_pusher
from tests.support.e2e import channel
from tests.support.pusher_ws import PusherWS
from tests.support.soketi import Soketi


async def test_trigger_reaches_a_subscriber_and_prints_outputs(soketi: Soketi, tmp_path: Path) -> None:
    room = channel("exec")
    async with PusherWS(soketi.ws_url()) as ws:
        await ws.subscribe(room)
        ran = await asyncio.to_thread(
            mesg_pusher,
            "exec",
            "trigger",
            "--input",
            f"channel={room}",
            "--input",
            "name=greet",
            "--input",
            'data={"text": "hi", "n": 2}',
            env=soketi.pusher_env(),
            cwd=tmp_path,
        )
        assert ran.code == 0, ran.output
        event = await ws.next_event(timeout=10)
    assert event["channel"] == room and event["event"] == "greet"
    assert event["data"] == {"text": "hi", "n": 2}
    assert json.loads(ran.stdout) == {"message": "sent"}


def test_json_inputs_from_stdin_and_settings_from_dotenv(soketi: Soketi, tmp_path: Path) -> None:
    # Settings as the service reads them: here only from .env in the working directory.
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in soketi.pusher_env().items()))
    ran = mesg_pusher(
        "exec", "channels", "--json", "-", cwd=tmp_path, stdin=json.dumps({"filter_by_prefix": "nobody-"})
    )
    assert ran.code == 0, ran.output
    assert json.loads(ran.stdout) == {"channels": []}


def test_a_failed_task_exits_1_with_the_error(soketi: Soketi, tmp_path: Path) -> None:
    env = soketi.pusher_env()
    bad = mesg_pusher(
        "exec",
        "trigger",
        "--input",
        "channel=not a channel!",
        "--input",
        "name=x",
        "--input",
        "data=x",
        env=env,
        cwd=tmp_path,
    )
    assert bad.code == 1 and bad.stdout == ""
    assert "trigger failed" in bad.stderr and "'channel'" in bad.stderr, bad.stderr
    # mesg.yml's own rules, as the engine applies them when the execution is created.
    missing = mesg_pusher(
        "exec", "trigger", "--input", "channel=a", "--input", "data=1", env=env, cwd=tmp_path
    )
    assert missing.code == 1 and 'value of "name" is required' in missing.stderr, missing.stderr
    # A wrong secret: Pusher's 401, and the secret itself never printed.
    wrong = mesg_pusher(
        "exec",
        "trigger",
        "--input",
        "channel=a",
        "--input",
        "name=x",
        "--input",
        "data=x",
        env={**env, "PUSHER_APP_SECRET": "Wr0ng-Secret-For-Exec"},
        cwd=tmp_path,
    )
    assert wrong.code == 1 and "HTTP 401" in wrong.stderr, wrong.output
    assert "Wr0ng-Secret-For-Exec" not in wrong.output


def test_usage_errors_exit_2(soketi: Soketi, tmp_path: Path) -> None:
    env = soketi.pusher_env()
    (tmp_path / "list.json").write_text("[1, 2]")
    for args, says in (
        (["exec"], "required: task"),
        (["exec", "nonsense"], "unknown task 'nonsense'"),
        (["exec", "trigger", "--input", "channel"], "expected KEY=VALUE"),
        (["exec", "trigger", "--json", "missing.json"], "missing.json"),
        (["exec", "trigger", "--json", "list.json"], "JSON object"),
    ):
        ran = mesg_pusher(*args, env=env, cwd=tmp_path)
        assert ran.code == 2 and says in ran.stderr, (args, ran.output)
