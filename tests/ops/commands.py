"""Running ``mesg-pusher`` subcommands as an operator does: a real process, its own directory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mesg_pusher.harness.processes import python_env


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def mesg_pusher(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path, stdin: str | None = None, timeout: float = 60
) -> Ran:
    """``python -m mesg_pusher ARGS`` in ``cwd`` (where a ``.env`` may be), with only ``env`` set."""
    done = subprocess.run(
        [sys.executable, "-m", "mesg_pusher", *args],
        env=python_env({k: v for k, v in (env or {}).items()}),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)
