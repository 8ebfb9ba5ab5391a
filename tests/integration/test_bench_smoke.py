"""The benchmark at a small size: it must run to the end with no lost event and no failure."""

from __future__ import annotations

import re
import subprocess
import sys


def test_bench_small_run_delivers_everything() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mesg_pusher",
            "bench",
            "--executions",
            "300",
            "--latency-samples",
            "30",
            "--sdk-calls",
            "30",
            "--original",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"delivered/created: (\d+)/(\d+)", done.stdout)
    assert match, done.stdout
    # warm-up (300) + 64-in-flight phase (300) + 1-in-flight phase (30), all received
    assert match.group(1) == match.group(2) == "630", done.stdout
    for phase in (
        "floor (read + Update), 64 in flight",
        "ceiling, 64 in flight",
        "service, 64 in flight",
        "original-style JS service, 64 in flight",
    ):
        assert phase in done.stdout
    assert re.search(r"original_cpu_vs_service \(x\): \d", done.stdout), done.stdout
