"""``python -m benchmarks.bench_metrics`` at a small size: it runs to the end and prints both figures."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.checkout import ROOT


def test_bench_metrics_small_run() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_metrics",
            "--executions",
            "100",
            "--rounds",
            "2",
            "--warm-up",
            "20",
        ],
        cwd=ROOT,  # as it is run: from the repository root
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        len(re.findall(r"^round \d: metrics off [\d.]+, on [\d.]+ ms CPU per execution", done.stdout, re.M))
        == 2
    )
    assert re.search(r"on vs off within each round: .* median [+-][\d.]+ %", done.stdout), done.stdout
    assert re.search(r"hooks per execution: [\d.]+ µs with metrics on, [\d.]+ µs off", done.stdout), (
        done.stdout
    )
