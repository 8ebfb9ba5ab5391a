"""``python -m benchmarks.bench_metrics``: what metrics cost per execution, on and off in one run.

Metrics may cost at most 3 % of the service's CPU per execution. Two figures say whether they do:

- the benchmark's service load (``bench.load``: triggers at 64 in flight through the local
  engine into soketi) on two services at the same time, one with ``MESG_PUSHER_METRICS_PORT``
  set and one without, each behind its own local engine, swapping which has metrics every
  round; CPU per execution is read from /proc for each. Run one after the other, the same
  service moved by ±15-40 % between runs on this shared machine; side by side, both see the
  same moment's machine, so the ratio within a round is what to read;
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

from benchmarks.bench import load
from mesg_local_engine import Application
from tests.support.measure import CpuMeter
from tests.support.processes import EngineProcess, ServiceProcess, terminate_all
from tests.support.soketi import Soketi, free_port


async def _rounds(args: argparse.Namespace) -> dict[str, list[float]]:
    """CPU ms per execution of each service run, by ``off`` and ``on``."""
    figures: dict[str, list[float]] = {"off": [], "on": []}
    with Soketi() as soketi:
        engines = [EngineProcess(env=soketi.pusher_env()).start() for _ in range(2)]
        try:
            async with (
                Application.connect(engines[0].endpoint) as app_a,
                Application.connect(engines[1].endpoint) as app_b,
            ):
                apps = [
                    (app_a, await app_a.resolve("com.mesg.pusher")),
                    (app_b, await app_b.resolve("com.mesg.pusher")),
                ]
                channel = f"bench-metrics-{uuid.uuid4().hex[:8]}"

                def trigger(i: int) -> tuple[str, dict[str, Any]]:
                    return "trigger", {"channel": channel, "name": "bench", "data": {"i": i, "text": "hello"}}

                for index in range(args.rounds):
                    # Engine A's service has metrics in even rounds, engine B's in odd ones.
                    modes = ["on", "off"] if index % 2 == 0 else ["off", "on"]
                    services = [
                        ServiceProcess(
                            engine, env={"MESG_PUSHER_METRICS_PORT": str(free_port())} if mode == "on" else {}
                        ).start_ready()
                        for engine, mode in zip(engines, modes, strict=True)
                    ]
                    try:
                        await asyncio.gather(
                            *(
                                load(app, i, "warm-up", args.warm_up, args.in_flight, trigger)
                                for app, i in apps
                            )
                        )
                        meters = [CpuMeter(service.pid) for service in services]
                        for meter in meters:
                            meter.start()
                        runs = await asyncio.gather(
                            *(
                                load(app, i, "run", args.executions, args.in_flight, trigger)
                                for app, i in apps
                            )
                        )
                        for meter in meters:
                            meter.stop()
                    finally:
                        codes = [service.stop() for service in services]
                    for service, code, run in zip(services, codes, runs, strict=True):
                        if code != 0 or run.failed:
                            raise RuntimeError(
                                f"exit {code}, {run.failed} failed {run.errors}:\n{service.log()[-2000:]}"
                            )
                    for mode, meter, run in zip(modes, meters, runs, strict=True):
                        figures[mode].append(meter.cpu * 1000 / run.count)
                    print(
                        f"round {index + 1}: metrics off {figures['off'][-1]:.3f}, on {figures['on'][-1]:.3f} ms "
                        f"CPU per execution ({100 * (figures['on'][-1] / figures['off'][-1] - 1):+.1f} %), "
                        f"{runs[0].rate:.0f} and {runs[1].rate:.0f} exec/s",
                        flush=True,
                    )
        finally:
            terminate_all(engines)
    return figures


def hook_cost_us(enabled: bool) -> float:
    """Microseconds of the hooks one coalesced trigger calls (received, finished, response, batch)."""
    from mesg_pusher import collectors, metrics
    from mesg_pusher.tasks import TASKS

    hooks = collectors.Recorder(TASKS) if enabled else metrics.Hooks()
    key = b"\x01" * 32

    def one() -> None:
        hooks.execution_received(key)
        hooks.pusher_response(200)
        hooks.pusher_batch(1)
        hooks.execution_finished(key, "trigger", False, None)

    number = 20_000
    return min(timeit.repeat(one, number=number, repeat=5)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_metrics", description=__doc__)
    parser.add_argument("--executions", type=int, default=4_000, help="per service run")
    parser.add_argument("--rounds", type=int, default=6, help="runs of two services, metrics off and on")
    parser.add_argument("--warm-up", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args(argv)
    figures = asyncio.run(_rounds(args))
    off, on = statistics.median(figures["off"]), statistics.median(figures["on"])
    # Each round's two runs happened at the same time: their ratio is what the machine moves least.
    paired = [100 * (b - a) / a for a, b in zip(figures["off"], figures["on"], strict=True)]
    hooks_on, hooks_off = hook_cost_us(True), hook_cost_us(False)
    print(
        f"\nservice CPU per execution, median of {len(figures['off'])} runs each: metrics off {off:.3f} ms, "
        f"on {on:.3f} ms: {100 * (on - off) / off:+.1f} %"
    )
    print(f"  off: {[round(x, 3) for x in figures['off']]}\n  on:  {[round(x, 3) for x in figures['on']]}")
    print(
        f"  on vs off within each round: {[f'{x:+.1f} %' for x in paired]}, "
        f"median {statistics.median(paired):+.1f} %"
        + (
            f", mean {statistics.mean(paired):+.1f} % ± {statistics.stdev(paired) / len(paired) ** 0.5:.1f} "
            "(standard error)"
            if len(paired) > 1
            else ""
        )
    )
    print(
        f"hooks per execution: {hooks_on:.2f} µs with metrics on, {hooks_off:.2f} µs off: "
        f"{100 * (hooks_on - hooks_off) / 1000 / off:.2f} % of the {off:.3f} ms an execution costs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
