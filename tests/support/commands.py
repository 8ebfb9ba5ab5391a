"""Running ``mesg-pusher`` subcommands as an operator does (a real process, its own directory),
and the demo as a developer does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.checkout import ROOT
from tests.support.processes import python_env


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


def demo_argv(*args: str) -> list[str]:
    """The demo, as ``bash scripts/demo`` runs it (the repository root on the path, wherever it runs)."""
    return [sys.executable, "-m", "tools.demo", *args]


def demo_env() -> dict[str, str]:
    """A clean environment for the demo (no PUSHER_* or MESG_* of the caller's), the root on the path."""
    return python_env({"PYTHONPATH": str(ROOT)})


def run_demo(*args: str, cwd: Path, timeout: float = 120) -> Ran:
    """The demo in ``cwd`` (an empty folder: no ``.env`` there can point it at a real Pusher app)."""
    done = subprocess.run(
        demo_argv(*args), env=demo_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Ran(done.returncode, done.stdout, done.stderr)
