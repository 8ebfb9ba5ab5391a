"""The local engine (``python -m mesg_local_engine``) as a child process, and its READY line."""

from __future__ import annotations

import os
import select
import subprocess
import sys

from tests.support.checkout import MESG_YML


def start_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mesg_local_engine", "--port", "0", "--mesg-yml", str(MESG_YML), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def read_ready(process: subprocess.Popen[str], timeout: float = 15.0) -> dict[str, str]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "no READY line"
    line = process.stdout.readline()
    assert line.startswith("READY "), line + (process.stderr.read() if process.stderr else "")
    return dict(field.split("=", 1) for field in line.split()[1:])
