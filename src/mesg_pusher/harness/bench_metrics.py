"""``mesg-pusher bench-metrics``: what metrics cost per execution, on and off in one run.

The issue allows metrics 3 % of the service's CPU per execution. Two figures answer it:

- the benchmark's service phase (``bench.load``: triggers at 64 in flight through the local
  engine into soketi), run in rounds that alternate a service with ``MESG_PUSHER_METRICS_PORT``
  set and one without, in ABBA order so a machine that drifts weighs on both sides; CPU per
  execution is read from /proc for each, and the medians compared;
- the hooks one execution calls, timed in this process, against that CPU per execution: a
  figure that machine noise cannot blur.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import timeit
import uuid
from typing import Any

from mesg_pusher.harness.bench import load
from mesg_pusher.harness.measure import CpuMeter
from mesg_pusher.harness.processes import EngineProcess, ServiceProcess
from mesg_pusher.harness.soketi import Soketi, free_port
from mesg_pusher.local_engine.app import Application


async def _rounds(args: argparse.Namespace) -> dict[str, list[float]]:
    """CPU ms per execution of each service run, by ``off`` and ``on``."""
    figures: dict[str, list[float]] = {"off": [], "on": []}
    with Soketi() as soketi:
        engine = EngineProcess(env=soketi.pusher_env()).start()
        try:
            async with Application.connect(engine.endpoint) as app:
                instance = await app.resolve("com.mesg.pusher")
                channel = f"bench-metrics-{uuid.uuid4().hex[:8]}"

                def trigger(i: int) -> tuple[str, dict[str, Any]]:
                    return "trigger", {"channel": channel, "name": "bench", "data": {"i": i, "text": "hello"}}

                order = ["off", "on", "on", "off"] * ((args.rounds + 1) // 2)
                for index, mode in enumerate(order[: 2 * args.rounds]):
                    port = free_port()
                    env = {"MESG_PUSHER_METRICS_PORT": str(port)} if mode == "on" else {}
                    service = ServiceProcess(engine, env=env).start_ready()
                    try:
                        await load(app, instance, "warm-up", args.warm_up, args.in_flight, trigger)
                        cpu = CpuMeter(service.pid)
                        cpu.start()
                        run = await load(app, instance, mode, args.executions, args.in_flight, trigger)
                        cpu.stop()
                        if run.failed:
                            raise RuntimeError(f"{run.failed} executions failed: {run.errors}")
                    finally:
                        code = service.stop()
                    if code != 0:
                        raise RuntimeError(f"service exited with {code}:\n{service.log()[-2000:]}")
                    per_execution = cpu.cpu * 1000 / run.count
                    figures[mode].append(per_execution)
                    print(
                        f"round {index // 2 + 1} metrics {mode:3}: {per_execution:.3f} ms CPU per execution, "
                        f"{run.rate:.0f} exec/s",
                        flush=True,
                    )
        finally:
            engine.stop()
    return figures


def hook_cost_us(enabled: bool) -> float:
    """Microseconds of the hooks one coalesced trigger calls (received, finished, response, batch)."""
    from mesg_pusher import metrics
    from mesg_pusher.tasks import TASKS

    hooks = metrics.Recorder(TASKS) if enabled else metrics.Hooks()
    key = b"\x01" * 32

    def one() -> None:
        hooks.execution_received(key)
        hooks.pusher_response(200)
        hooks.pusher_batch(1)
        hooks.execution_finished(key, "trigger", False, None)

    number = 20_000
    return min(timeit.repeat(one, number=number, repeat=5)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mesg-pusher bench-metrics", description=__doc__)
    parser.add_argument("--executions", type=int, default=4_000, help="per service run")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs, metrics off and on")
    parser.add_argument("--warm-up", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args(argv)
    figures = asyncio.run(_rounds(args))
    off, on = statistics.median(figures["off"]), statistics.median(figures["on"])
    hooks_on, hooks_off = hook_cost_us(True), hook_cost_us(False)
    print(
        f"\nservice CPU per execution, median of {len(figures['off'])} runs each: metrics off {off:.3f} ms, "
        f"on {on:.3f} ms: {100 * (on - off) / off:+.1f} %"
    )
    print(f"  off: {[round(x, 3) for x in figures['off']]}\n  on:  {[round(x, 3) for x in figures['on']]}")
    print(
        f"hooks per execution: {hooks_on:.2f} µs with metrics on, {hooks_off:.2f} µs off: "
        f"{100 * (hooks_on - hooks_off) / 1000 / off:.2f} % of the {off:.3f} ms an execution costs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
