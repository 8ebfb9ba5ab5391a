"""The benchmark at a small size: it must run to the end with no lost event and no failure."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.checkout import ROOT


def test_bench_small_run_delivers_everything() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--executions",
            "300",
            "--latency-samples",
            "30",
            "--sdk-calls",
            "30",
            "--original",
            # The sweep at a small size: direct and behind a 20 ms relay, coalescing on and off.
            "--rtt-ms",
            "0",
            "20",
            "--sweep-in-flight",
            "1",
            "4",
            "--sweep-executions",
            "20",
        ],
        cwd=ROOT,  # as it is run: from the repository root
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
    sweep = re.search(r"sweep delivered/created: (\d+)/(\d+)", done.stdout)
    assert sweep and sweep.group(1) == sweep.group(2) and int(sweep.group(1)) > 0, done.stdout
    # every point of the sweep printed: 2 round trips x 2 concurrencies, coalescing on and off
    rows = re.findall(r"^current +(\d+) +(\d+) \|.*\|.*\d", done.stdout, re.MULTILINE)
    assert sorted(rows) == [("0", "1"), ("0", "4"), ("20", "1"), ("20", "4")], done.stdout
    assert "throughput_vs_floor" in done.stdout and "\r" not in done.stdout  # no progress off a TTY
