"""The demo under a later generation: every task runs, on more than one runner, and all stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.commands import run_demo


@pytest.mark.timeout(180)
def test_demo_runs_every_task_under_g3_with_two_runners(tmp_path: Path) -> None:
    done = run_demo("--generation", "g3", "--runners", "2", cwd=tmp_path, timeout=150)
    assert done.code == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "local v0.21-v0.26 stand-in (g3)" in out and "2 service processes, one per runner" in out
    assert out.count("executeTask ") == out.count("  ran on ") == 8
    assert "ran on     runner 0" in out or "ran on     runner 1" in out
    assert "?" not in "".join(line for line in out.splitlines() if "ran on" in line)
    assert "service stopped (exit 0, 0)" in out
