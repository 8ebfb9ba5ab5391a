"""The service's distribution holds the service only, and everything its CLI lists works from it.

The wheel is built from the repository root and installed alone in a fresh venv (see
``tests/support/installed.py``); every command ``mesg-pusher --help`` lists is then run from an
empty folder, with only the variables an operator or the engine would set. Select these checks
with ``pytest -m packaging``.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from mesg_local_engine import Application
from tests.support.e2e import channel
from tests.support.installed import Installation, InstalledService
from tests.support.processes import EngineProcess
from tests.support.soketi import Soketi

pytestmark = pytest.mark.packaging

#: What may stand at the top of the wheel: the package and its metadata.
TOP_LEVEL = re.compile(r"^(mesg_pusher/|mesg_pusher-[^/]+\.dist-info/)")
#: Names of what ships elsewhere or nowhere: none may appear inside the wheel.
NOT_SHIPPED = ("harness", "local_engine", "mesg_local_engine", "benchmarks", "bench", "tests", "demo")

#: How each listed command is run for real (it gets the Pusher settings of a local soketi).
RUNS: dict[str, Sequence[str]] = {
    "exec": ("exec", "channels", "--input", "filter_by_prefix=nobody-"),
    "check": ("check",),
}


def run(
    installed: Installation, *args: str, env: Mapping[str, str] | None = None, cwd: Path
) -> tuple[int, str]:
    """``mesg-pusher ARGS`` in ``cwd`` with only ``env`` and the basics (PATH, LANG) set."""
    base = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
    done = subprocess.run(
        [str(installed.entry_point), *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def listed_commands(usage: str) -> list[str]:
    """The command names under ``commands:`` in the usage text."""
    block = usage.split("commands:", 1)[1]
    return re.findall(r"^  ([a-z][\w-]*) ", block, re.MULTILINE)


@pytest.fixture(scope="module")
def wheel(installed: Installation) -> Path:
    if installed.wheel is None:
        pytest.skip("CONFORMANCE_SERVICE names an installation: there is no wheel to look into")
    return installed.wheel


def test_the_wheel_holds_the_service_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert [name for name in names if not TOP_LEVEL.match(name)] == []
    parts = {part.removesuffix(".py") for name in names for part in name.split("/")}
    assert parts.isdisjoint(NOT_SHIPPED), sorted(parts & set(NOT_SHIPPED))
    assert not [name for name in names if name.endswith(".js")]  # nothing for Node.js
    assert "mesg_pusher/mesg.yml" in names and "mesg_pusher/cli.py" in names


def test_every_module_imports_only_what_the_wheel_depends_on(wheel: Path, installed: Installation) -> None:
    """Nothing in the wheel needs the checkout, Node.js or a test dependency: every import of
    every module (function-level ones too) is the standard library, the package itself, or a
    dependency the fresh venv has because the wheel declares it."""
    imported: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                for node in ast.walk(ast.parse(archive.read(name), name)):
                    if isinstance(node, ast.Import):
                        imported |= {alias.name.split(".")[0] for alias in node.names}
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        imported.add(node.module.split(".")[0])
    outside = sorted(imported - set(sys.stdlib_module_names) - {"mesg_pusher", "__future__"})
    probe = "import importlib.util, json, sys; print(json.dumps([n for n in sys.argv[1:] if importlib.util.find_spec(n) is None]))"
    missing = subprocess.run(
        [str(installed.python), "-c", probe, *outside], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(missing) == [], f"imported but not installed with the wheel: {missing}"
    assert "pytest" not in outside and "mesg_local_engine" not in outside


def test_every_listed_command_runs_from_an_empty_folder(
    installed: Installation, soketi: Soketi, tmp_path: Path
) -> None:
    code, usage = run(installed, "--help", cwd=tmp_path)
    assert code == 0 and "Traceback" not in usage, usage
    commands = listed_commands(usage)
    assert commands, usage
    assert set(commands) <= set(RUNS), f"say in RUNS how to run {sorted(set(commands) - set(RUNS))}"
    for command in commands:
        code, output = run(installed, command, "--help", cwd=tmp_path)
        assert code == 0 and "Traceback" not in output, output
        code, output = run(installed, *RUNS[command], env=soketi.pusher_env(), cwd=tmp_path)
        assert code == 0 and "Traceback" not in output, f"mesg-pusher {' '.join(RUNS[command])}:\n{output}"
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def test_the_service_itself_runs_and_says_what_is_missing(
    installed: Installation, soketi: Soketi, tmp_path: Path
) -> None:
    code, output = run(installed, env=soketi.pusher_env(), cwd=tmp_path)
    assert code == 2 and "Traceback" not in output, output
    assert "cannot start: MESG_ENDPOINT and MESG_TOKEN must be set" in output
    engine = EngineProcess(env=soketi.pusher_env()).start()
    service = InstalledService(installed.entry_point, {**soketi.pusher_env(), **engine.mesg_env()})
    try:
        service.start()

        async def trigger() -> bool:
            async with Application.connect(engine.endpoint) as app:
                instance = await app.resolve("com.mesg.pusher")
                inputs = {"channel": channel("wheel"), "name": "n", "data": {}}
                deadline = asyncio.get_running_loop().time() + 20
                while "ready: subscribed" not in service.log():
                    assert service.running and asyncio.get_running_loop().time() < deadline, service.log()
                    await asyncio.sleep(0.05)
                result = await app.execute_task_and_wait_result(instance, "trigger", inputs, timeout=20)
                return result.ok

        assert asyncio.run(trigger()), service.log()
    finally:
        log = service.log()
        assert service.stop() == 0, log
        engine.stop()
