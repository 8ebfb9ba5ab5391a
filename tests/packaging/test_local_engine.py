"""The local engine stands on its own: it imports nothing of the service, and its wheel, alone in
a fresh venv, deploys another service's mesg.yml and serves it.

Select with ``pytest -m packaging``.
"""

from __future__ import annotations

import ast
import os
import re
import select
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.checkout import ROOT
from tests.support.installed import LOCAL_ENGINE, Installation, installation

pytestmark = pytest.mark.packaging

PACKAGE = ROOT / "local-engine" / "src" / "mesg_local_engine"
ANOTHER_SERVICE = (
    "name: echo\nsid: com.example.echo\ntasks:\n  say:\n    inputs:\n      text: {type: String}\n"
)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, function-level and type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_local_engine_imports_nothing_of_the_service() -> None:
    offending = {
        str(path.relative_to(PACKAGE)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "mesg_pusher"
        )
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: modules for name, modules in offending.items() if modules} == {}


@pytest.fixture(scope="module")
def engine_alone() -> Iterator[Installation]:
    with installation(LOCAL_ENGINE) as found:
        yield found


def test_its_wheel_holds_the_engine_only(engine_alone: Installation) -> None:
    assert engine_alone.wheel is not None
    names = zipfile.ZipFile(engine_alone.wheel).namelist()
    assert {re.sub(r"-[^/]+\.dist-info$", ".dist-info", name.split("/")[0]) for name in names} == {
        "mesg_local_engine",
        "mesg_local_engine.dist-info",
    }
    assert "mesg_local_engine/_proto/mesg/api/execution_pb2.py" in names


def test_installed_alone_it_serves_another_service(engine_alone: Installation, tmp_path: Path) -> None:
    (tmp_path / "mesg.yml").write_text(ANOTHER_SERVICE)
    base = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
    engine = subprocess.Popen(
        [str(engine_alone.entry_point), "--port", "0", "--generation", "g3", "--runners", "2"],
        cwd=tmp_path,  # its ./mesg.yml, as mesg-cli service:dev in the service's folder
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert engine.stdout is not None
        ready, _, _ = select.select([engine.stdout], [], [], 20)
        line = engine.stdout.readline() if ready else ""
        assert line.startswith("READY ") and " generation=g3 " in line, line
        assert len(line.split("runners=")[1].split(",")) == 2
        check = "import mesg_pusher"
        done = subprocess.run(
            [str(engine_alone.python), "-c", check], capture_output=True, text=True, check=False
        )
        assert done.returncode != 0  # the service is not there, and the engine did not need it
    finally:
        engine.terminate()
        assert engine.wait(10) == 0
        engine.communicate()
