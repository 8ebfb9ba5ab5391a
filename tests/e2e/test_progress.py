"""Progress in the demo: a counter on a terminal (a real pty), nothing in a pipe."""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.commands import demo_argv, demo_env, run_demo
from tests.support.progress import ERASE, Progress


def _read_all(master: int) -> bytes:
    """Everything written to the pty whose writing side is closed, then close ``master``."""
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the writing side is closed and all was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return shown


def test_counter_only_on_a_terminal() -> None:
    master, replica = os.openpty()
    with open(replica, "w", closefd=True) as terminal:
        progress = Progress(terminal, every=0)
        progress.begin("phase", 3)
        progress.step(3)
        progress.end()
    # A pty hands back what was written in as many reads as it likes: read it all.
    assert _read_all(master).decode() == f"{ERASE}phase: 0/3{ERASE}phase: 3/3{ERASE}"
    piped = io.StringIO()
    quiet = Progress(piped, every=0)
    quiet.begin("phase", 3)
    quiet.show("anything")
    quiet.end()
    assert piped.getvalue() == ""


# The demo runs a whole stack: on a loaded machine it may need more than the default 120 s.
@pytest.mark.timeout(400)
def test_demo_counts_tasks_on_a_terminal_and_is_quiet_in_a_pipe(tmp_path: Path) -> None:
    master, replica = os.openpty()
    demo = subprocess.Popen(
        demo_argv(),
        env=demo_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=replica,
        stderr=replica,
    )
    os.close(replica)
    shown = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the demo exited and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert demo.wait(30) == 0, shown.decode(errors="replace")[-3000:]
    text = shown.decode(errors="replace")
    assert f"{ERASE}task 1 of 8: waiting for trigger…" in text and "task 8 of 8" in text, text[-3000:]

    piped = run_demo(cwd=tmp_path, timeout=120)
    assert piped.code == 0, piped.output[-3000:]
    assert piped.stdout.count("executeTask ") == 8
    assert "\r" not in piped.output and "\x1b" not in piped.output
