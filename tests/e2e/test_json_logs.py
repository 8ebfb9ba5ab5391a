"""``LOG_FORMAT=json``: the real service's log parsed line by line; the secret filter on both formats."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesg_local_engine.app import Application
from mesg_pusher.hash_text import b58
from mesg_pusher.logs import configure_logging
from tests.support.commands import mesg_pusher
from tests.support.e2e import channel, run
from tests.support.soketi import Soketi
from tests.support.stack import running_stack

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECRET = "Kn0wn-Secret-In-Logs"


async def test_service_log_is_one_json_object_per_line(soketi: Soketi) -> None:
    with running_stack(soketi, env={"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}) as stack:
        async with Application.connect(stack.engine.endpoint) as app:
            instance = await app.resolve("com.mesg.pusher")
            good = await run(app, instance, "trigger", {"channel": channel("json"), "name": "e", "data": "x"})
            bad = await run(app, instance, "trigger", {"channel": "not a channel!", "name": "e", "data": "x"})
        assert good.ok and not bad.ok
    lines = [json.loads(line) for line in stack.service.log().splitlines() if line.strip()]
    for line in lines:
        assert isinstance(line, dict) and {"time", "level", "logger", "message"} <= line.keys(), line
        assert TIME.match(line["time"]) and line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR"), line
    messages = [line["message"] for line in lines]
    assert any(m.startswith("ready: subscribed") for m in messages), messages
    assert any(m.startswith("stopped: 1 completed, 1 failed") for m in messages), messages

    def concerning(execution_hash: bytes) -> list[dict[str, str]]:
        return [line for line in lines if line.get("execution") == b58(execution_hash)]

    [failed] = concerning(bad.hash)
    assert failed["task"] == "trigger" and failed["level"] == "INFO", failed
    assert failed["message"].startswith(f"execution {b58(bad.hash)} (trigger) failed: ")
    assert any("completed in" in line["message"] for line in concerning(good.hash)), concerning(good.hash)
    # Lines about no one execution carry neither field.
    started = next(line for line in lines if line["message"].startswith("mesg-pusher starting"))
    assert "execution" not in started and "task" not in started
    assert soketi.app.secret not in stack.service.log()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secret_filter_applies_to_both_formats(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", (SECRET,), fmt, stream)
    log = logging.getLogger("mesg_pusher.test")
    log.info("calling with secret %s", SECRET)
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        log.exception("unexpected")
    text = stream.getvalue()
    assert SECRET not in text and "***" in text, text
    if fmt == "json":
        first, second = (json.loads(line) for line in text.splitlines())
        assert first["message"] == "calling with secret ***"
        assert second["message"] == "unexpected" and "RuntimeError: failed with ***" in second["exception"]
    else:  # the text format stays as it was
        first_line = text.splitlines()[0]
        assert re.match(
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO mesg_pusher\.test: calling with secret \*\*\*$",
            first_line,
        )


def test_unknown_log_format_stops_the_service(tmp_path: Path) -> None:
    ran = mesg_pusher(env={"LOG_FORMAT": "xml"}, cwd=tmp_path)
    assert ran.code == 2 and "variable LOG_FORMAT must be text or json, not 'xml'" in ran.stderr, ran.output
