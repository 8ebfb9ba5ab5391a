"""``python -m benchmarks.bench``: throughput, latency, CPU and memory, in one run, as separate processes.

Processes: soketi, the local engine, the load generator (this process, with a WebSocket
subscriber counting deliveries), and one service at a time: the floor (stream read and
``Update`` only: what grpcio costs), the ceiling (same worker and engine side as the service,
no Pusher call), the real service, then the ceiling again. Ratios are taken within the run,
with the ceiling and the raw SDK measured half before and half after the service, so they
hold on a noisy machine whose speed drifts. The engine's CPU use is printed to show it is
not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesg_local_engine import Application
from tests.support.checkout import ROOT
from tests.support.measure import COALESCED, CpuMeter, memory_kb, open_sockets
from tests.support.processes import EngineProcess, ServiceProcess
from tests.support.progress import Progress
from tests.support.pusher_ws import PusherWS
from tests.support.relay import RelayProcess
from tests.support.soketi import Soketi

SWEEP = (1, 4, 16, 64)
#: The floor and the ceiling are modules of this folder: their processes import it from the root.
FROM_THE_ROOT = {"PYTHONPATH": str(ROOT)}


@dataclass
class Run:
    """Figures of one load phase."""

    name: str
    count: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def load(
    app: Application,
    instance: bytes,
    name: str,
    total: int,
    in_flight: int,
    inputs: Callable[[int], tuple[str, dict[str, Any]]],
    checkpoint: Callable[[int], None] | None = None,
) -> Run:
    """Run ``total`` executions, at most ``in_flight`` at once; each worker waits for its result."""
    run = Run(name)
    issued = 0
    PROGRESS.begin(name, total)

    async def worker() -> None:
        nonlocal issued
        while issued < total:
            index = issued
            issued += 1
            task, task_inputs = inputs(index)
            began = time.perf_counter()
            result = await app.execute_task_and_wait_result(instance, task, task_inputs, timeout=60)
            run.latencies.append(time.perf_counter() - began)
            run.count += 1
            if not result.ok:
                run.failed += 1
                if len(run.errors) < 5:
                    run.errors.append(result.error or "?")
            PROGRESS.step(run.count)
            if checkpoint is not None:
                checkpoint(run.count)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    run.seconds = time.perf_counter() - began
    PROGRESS.end()
    return run


PROGRESS = Progress()


ORIGINAL_SERVICE = Path(__file__).with_name("original_service.js")


def node() -> str:
    """The Node.js binary for the original-style baseline."""
    found = shutil.which("node")
    if found is None:
        raise SystemExit("--original needs Node.js (node) on the PATH and `npm ci` run in the repository")
    return found


def halves(total: int) -> tuple[int, int]:
    """``total`` split in two parts, the first never empty."""
    first = max(1, total // 2)
    return first, max(0, total - first)


def merged(runs: list[Run]) -> Run:
    """One phase measured in several parts, as one."""
    whole = Run(runs[0].name if runs else "")
    for run in runs:
        whole.count += run.count
        whole.failed += run.failed
        whole.seconds += run.seconds
        whole.latencies += run.latencies
        whole.errors += run.errors
    return whole


@dataclass
class Sample:
    """One measured part of a phase without a subscriber."""

    run: Run
    cpu: CpuMeter
    engine_cpu: CpuMeter
    one: Run | None  # at 1 in flight, if asked for
    peak_rss_kb: int


def sdk_serial(soketi: Soketi, calls: int, channel: str) -> Run:
    """The official SDK, its default (requests) backend, one call after another."""
    import pusher

    client = pusher.Pusher(
        app_id=soketi.app.app_id,
        key=soketi.app.key,
        secret=soketi.app.secret,
        ssl=False,
        host=soketi.host,
        port=soketi.port,
    )
    run = Run("raw SDK, serial")
    began = time.perf_counter()
    for i in range(calls):
        t = time.perf_counter()
        client.trigger(channel, "raw", {"i": i})
        run.latencies.append(time.perf_counter() - t)
        run.count += 1
    run.seconds = time.perf_counter() - began
    return run


class Counter:
    """A WebSocket subscriber counting the events that really arrived."""

    def __init__(self, ws: PusherWS, channel: str) -> None:
        self.ws, self.channel, self.received = ws, channel, 0

    async def drain(self, expected: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.received < expected and time.monotonic() < deadline:
            try:
                await self.ws.next_event(channel=self.channel, timeout=max(0.1, deadline - time.monotonic()))
                self.received += 1
            except TimeoutError:
                break
        return self.received


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"machine": machine()}
    with Soketi() as soketi:
        engine = EngineProcess(env=soketi.pusher_env()).start()
        try:
            async with Application.connect(engine.endpoint) as app:
                instance = await app.resolve("com.mesg.pusher")
                channel = f"bench-{uuid.uuid4().hex[:8]}"

                def trigger(i: int) -> tuple[str, dict[str, Any]]:
                    return "trigger", {"channel": channel, "name": "bench", "data": {"i": i, "text": "hello"}}

                async def phase(
                    module: str,
                    body: Callable[[ServiceProcess], Awaitable[None]],
                    argv: list[str] | None = None,
                    env: dict[str, str] | None = None,
                ) -> ServiceProcess:
                    service = ServiceProcess(engine, env=env, module=module, argv=argv).start_ready()
                    try:
                        await body(service)
                    finally:
                        code = service.stop()
                        if code != 0:
                            raise RuntimeError(f"{module} exited with {code}:\n{service.log()[-2000:]}")
                    return service

                # Phases without a subscriber (floor, ceiling, original-style baseline), kept raw
                # until the end: the ceiling runs in two halves, before and after the service,
                # so a machine that speeds up or slows down weighs on both sides of each ratio.
                samples: dict[str, list[Sample]] = {}

                def measured(
                    key: str, executions: int, latency_samples: int = 0
                ) -> Callable[[ServiceProcess], Awaitable[None]]:
                    async def body(service: ServiceProcess) -> None:
                        await load(app, instance, "warm-up", min(500, executions), args.in_flight, trigger)
                        cpu, engine_cpu = CpuMeter(service.pid), CpuMeter(engine.pid)
                        cpu.start()
                        engine_cpu.start()
                        run = await load(app, instance, key, executions, args.in_flight, trigger)
                        cpu.stop()
                        engine_cpu.stop()
                        one = (
                            await load(app, instance, key, latency_samples, 1, trigger)
                            if latency_samples
                            else None
                        )
                        peak = memory_kb(service.pid)[1]
                        samples.setdefault(key, []).append(Sample(run, cpu, engine_cpu, one, peak))

                    return body

                async def service_phase(service: ServiceProcess) -> None:
                    async with PusherWS(soketi.ws_url()) as ws:
                        await ws.subscribe(channel)
                        counter = Counter(ws, channel)
                        reader = asyncio.create_task(counter.drain(10**9, 10**6))
                        warm = min(500, args.executions)
                        await load(app, instance, "warm-up", warm, args.in_flight, trigger)
                        rss_marks: dict[int, int] = {}

                        def mark(done: int) -> None:
                            if done in (10_000, 50_000, args.executions):
                                rss_marks[done] = memory_kb(service.pid)[0]

                        cpu, engine_cpu = CpuMeter(service.pid), CpuMeter(engine.pid)
                        cpu.start()
                        engine_cpu.start()
                        run = await load(
                            app,
                            instance,
                            "service, 64 in flight",
                            args.executions,
                            args.in_flight,
                            trigger,
                            mark,
                        )
                        cpu.stop()
                        engine_cpu.stop()
                        one = await load(
                            app, instance, "service, 1 in flight", args.latency_samples, 1, trigger
                        )
                        expected = warm + args.executions + args.latency_samples
                        deadline = time.monotonic() + 10
                        while counter.received < expected and time.monotonic() < deadline:
                            await asyncio.sleep(0.05)
                        reader.cancel()
                        figures["service"] = summary(run, cpu) | {
                            "engine_core_use": round(engine_cpu.utilisation, 2),
                            "peak_rss_mb": round(memory_kb(service.pid)[1] / 1024, 1),
                            "rss_mb_at": {k: round(v / 1024, 1) for k, v in sorted(rss_marks.items())},
                            "sockets_open": open_sockets(service.pid),
                        }
                        figures["service_1"] = summary(one)
                        figures["delivered"] = counter.received
                        figures["created"] = expected
                    # Without the subscriber, as for the compared source: its batches' events
                    # would otherwise reach this process and cost it CPU.
                    figures["other_tasks"] = {
                        k: summary(v) for k, v in (await other_tasks(app, instance, channel, args)).items()
                    }

                def sweep_body(
                    source: str, rtt_ms: float, coalesce: bool
                ) -> Callable[[ServiceProcess], Awaitable[None]]:
                    """Latency and rate at each concurrency, every event counted by a subscriber."""

                    async def body(service: ServiceProcess) -> None:
                        async with PusherWS(soketi.ws_url()) as ws:
                            await ws.subscribe(channel)
                            counter = Counter(ws, channel)
                            reader = asyncio.create_task(counter.drain(10**9, 10**6))
                            expected = 0
                            for in_flight in args.sweep_in_flight:
                                count = max(args.sweep_executions, 20 * in_flight)
                                warm = await load(app, instance, "warm-up", in_flight * 2, in_flight, trigger)
                                cpu = CpuMeter(service.pid)
                                cpu.start()
                                label = f"{source}, {rtt_ms:g} ms, coalesce {'on' if coalesce else 'off'}"
                                run = await load(
                                    app, instance, f"{label}, {in_flight}", count, in_flight, trigger
                                )
                                cpu.stop()
                                expected += warm.count + run.count
                                row = summary(run, cpu) | {
                                    "source": source,
                                    "rtt_ms": rtt_ms,
                                    "coalesce": coalesce,
                                    "in_flight": in_flight,
                                }
                                figures.setdefault("sweep", []).append(row)
                            deadline = time.monotonic() + 10
                            while counter.received < expected and time.monotonic() < deadline:
                                await asyncio.sleep(0.05)
                            reader.cancel()
                            figures["sweep_delivered"] = figures.get("sweep_delivered", 0) + counter.received
                            figures["sweep_created"] = figures.get("sweep_created", 0) + expected

                    return body

                async def sweeps() -> None:
                    sources: list[tuple[str, dict[str, str]]] = [("current", {})]
                    if args.compare_src:
                        sources.append(("compare", {"PYTHONPATH": str(Path(args.compare_src).resolve())}))
                    for rtt_ms in args.rtt_ms:
                        relay = RelayProcess(soketi.port, rtt_ms) if rtt_ms else None
                        if relay is not None:
                            relay.start()
                        port = {"PUSHER_PORT": str(relay.port)} if relay is not None else {}
                        try:
                            for coalesce in args.sweep_coalesce:
                                for source, source_env in sources:
                                    env = {**source_env, **port, "PUSHER_COALESCE": str(coalesce).lower()}
                                    service = await phase(
                                        "mesg_pusher", sweep_body(source, rtt_ms, coalesce), env=env
                                    )
                                    if match := COALESCED.search(service.log()):
                                        events, calls = map(int, match.groups())
                                        figures.setdefault("events_per_call", {})[
                                            f"{source}, {rtt_ms:g} ms"
                                        ] = round(events / calls, 2)
                        finally:
                            if relay is not None:
                                relay.stop()

                if args.sweep_only:
                    await sweeps()
                    return figures
                first, second = halves(args.executions)
                first_1, second_1 = halves(args.latency_samples)
                first_sdk, second_sdk = halves(args.sdk_calls)
                await phase("benchmarks.floor", measured("floor", args.executions), env=FROM_THE_ROOT)
                await phase("benchmarks.ceiling", measured("ceiling", first, first_1), env=FROM_THE_ROOT)
                sdk = [sdk_serial(soketi, first_sdk, channel)]
                # The compared source, like the ceiling, half before and half after the service.
                compare_others: list[dict[str, Run]] = []

                async def compare_half(executions: int) -> None:
                    compare = measured("compare", executions)

                    async def body(service: ServiceProcess) -> None:
                        await compare(service)
                        compare_others.append(await other_tasks(app, instance, channel, args, 0.5))

                    env = {"PYTHONPATH": str(Path(args.compare_src).resolve())}
                    await phase("mesg_pusher", body, env=env)

                if args.compare_src:
                    await compare_half(first)
                await phase("mesg_pusher", service_phase)
                if args.compare_src:
                    await compare_half(second)
                    figures["compare_other_tasks"] = {
                        k: summary(merged([part[k] for part in compare_others])) for k in compare_others[0]
                    }
                if args.sweep:
                    await sweeps()
                if args.original:
                    await phase(
                        "original", measured("original", args.executions), [node(), str(ORIGINAL_SERVICE)]
                    )
                await phase("benchmarks.ceiling", measured("ceiling", second, second_1), env=FROM_THE_ROOT)
                sdk.append(sdk_serial(soketi, second_sdk, channel))
                for key, parts in samples.items():
                    figures[key] = summary(
                        merged([p.run for p in parts]), CpuMeter.total([p.cpu for p in parts])
                    ) | {
                        "engine_core_use": round(
                            CpuMeter.total([p.engine_cpu for p in parts]).utilisation, 2
                        ),
                        "per_s_by_part": [round(p.run.rate, 1) for p in parts],
                        "peak_rss_mb": round(max(p.peak_rss_kb for p in parts) / 1024, 1),
                    }
                    if key == "ceiling":
                        figures["ceiling_1"] = summary(merged([p.one for p in parts if p.one is not None]))
                figures["sdk_serial"] = summary(merged(sdk))
        finally:
            engine.stop()
    if not args.sweep_only:
        figures["ratios"] = ratios(figures)
    return figures


async def other_tasks(
    app: Application, instance: bytes, channel: str, args: argparse.Namespace, share: float = 1.0
) -> dict[str, Run]:
    """Per-HTTP-call rate of the other tasks at the same concurrency (``share`` of the count)."""
    count = max(50, int(max(100, args.executions // 10) * share))
    batch = [{"channel": channel, "name": "b", "data": {"i": i}} for i in range(10)]
    shapes: dict[str, Callable[[int], tuple[str, dict[str, Any]]]] = {
        "triggerBatch (10 events)": lambda i: ("triggerBatch", {"batch": batch}),
        "channels": lambda i: ("channels", {}),
        "channel": lambda i: ("channel", {"channel": channel, "info": "subscription_count"}),
    }
    return {
        name: await load(app, instance, name, count, args.in_flight, shape) for name, shape in shapes.items()
    }


def summary(run: Run, cpu: CpuMeter | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "executions": run.count,
        "failed": run.failed,
        "per_s": round(run.rate, 1),
        "p50_ms": round(run.percentile(50), 2),
        "p99_ms": round(run.percentile(99), 2),
    }
    if run.errors:
        figures["errors"] = run.errors
    if cpu is not None:
        figures["cpu_ms_per_execution"] = round(cpu.cpu * 1000 / max(run.count, 1), 3)
        figures["core_use"] = round(cpu.utilisation, 2)
    return figures


def ratios(f: dict[str, Any]) -> dict[str, Any]:
    ceiling, service = f["ceiling"], f["service"]
    floor_cpu = f["floor"]["cpu_ms_per_execution"]
    budget = 1.5 * f["sdk_serial"]["p50_ms"] + f["ceiling_1"]["p50_ms"]
    extra = {}
    if "original" in f and service["cpu_ms_per_execution"]:
        original = f["original"]
        extra = {
            "original_cpu_vs_service (x)": round(
                original["cpu_ms_per_execution"] / service["cpu_ms_per_execution"], 2
            ),
            "original_throughput_vs_ceiling": round(original["per_s"] / ceiling["per_s"], 2)
            if ceiling["per_s"]
            else 0,
            "original_peak_rss_mb": original["peak_rss_mb"],
        }
    floor_rate = f["floor"]["per_s"]
    if "compare" in f:
        compare = f["compare"]
        extra |= {
            "compare_throughput_vs_floor": round(compare["per_s"] / floor_rate, 2) if floor_rate else 0,
            "compare_cpu_vs_floor": round(compare["cpu_ms_per_execution"] / floor_cpu, 2) if floor_cpu else 0,
            "compare_peak_rss_mb": compare["peak_rss_mb"],
        }
    if "sweep" in f:
        extra["sweep delivered/created"] = f"{f['sweep_delivered']}/{f['sweep_created']}"
    return {
        "throughput_vs_floor": round(service["per_s"] / floor_rate, 2) if floor_rate else 0,
        "service_peak_rss_mb": service["peak_rss_mb"],
        "throughput_vs_ceiling": round(service["per_s"] / ceiling["per_s"], 2) if ceiling["per_s"] else 0,
        "latency_1_in_flight_p50_ms": f["service_1"]["p50_ms"],
        "latency_budget_ms (1.5 x SDK call + ceiling round trip)": round(budget, 2),
        "delivered/created": f"{f['delivered']}/{f['created']}",
        "service_cpu_vs_floor": round(service["cpu_ms_per_execution"] / floor_cpu, 2) if floor_cpu else 0,
        "ceiling_cpu_vs_floor": round(ceiling["cpu_ms_per_execution"] / floor_cpu, 2) if floor_cpu else 0,
        **extra,
    }


def machine() -> str:
    import os
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as file:
            model = next(
                (line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), ""
            )
    except OSError:
        pass
    return f"{os.cpu_count()} cores {model}, Python {platform.python_version()}"


def report(f: dict[str, Any]) -> str:
    lines = [f"machine: {f['machine']}", ""]
    if "ratios" not in f:  # --sweep-only
        errors = [f"error: {e}" for row in f.get("sweep", []) for e in row.get("errors", [])]
        delivered = f"sweep delivered/created: {f.get('sweep_delivered', 0)}/{f.get('sweep_created', 0)}"
        per_call = f"trigger events per call, coalescing on (all levels): {f.get('events_per_call', {})}"
        return "\n".join([*lines, sweep_table(f.get("sweep", [])), delivered, per_call, *errors])
    rows = [
        ("floor (read + Update), 64 in flight", f["floor"]),
        ("ceiling, 64 in flight", f["ceiling"]),
        ("ceiling, 1 in flight", f["ceiling_1"]),
        ("service, 64 in flight", f["service"]),
        ("service, 1 in flight", f["service_1"]),
        *([("original-style JS service, 64 in flight", f["original"])] if "original" in f else []),
        *([("compare service, 64 in flight", f["compare"])] if "compare" in f else []),
        ("raw SDK, serial", f["sdk_serial"]),
    ]
    rows += [(f"{k}, 64 in flight", v) for k, v in f["other_tasks"].items()]
    rows += [(f"compare {k}, 64", v) for k, v in f.get("compare_other_tasks", {}).items()]
    lines.append(f"{'phase':36} {'exec/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} {'cpu ms/exec':>12}")
    for name, row in rows:
        cpu = row.get("cpu_ms_per_execution", "")
        lines.append(
            f"{name:36} {row['per_s']:>9} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['failed']:>7} {cpu!s:>12}"
        )
    s = f["service"]
    lines += [
        "",
        f"service peak RSS: {s['peak_rss_mb']} MB; RSS at executions {s['rss_mb_at']}; sockets open {s['sockets_open']}",
        f"engine core use: {f['floor']['engine_core_use']} (floor phase), "
        f"{f['ceiling']['engine_core_use']} (ceiling phase), {s['engine_core_use']} (service phase)",
        f"ceiling exec/s before and after the service: {f['ceiling']['per_s_by_part']}",
        *(
            [f"compare exec/s before and after the service: {f['compare']['per_s_by_part']}"]
            if "compare" in f
            else []
        ),
        f"service core use: {s['core_use']}; ceiling core use: {f['ceiling']['core_use']}; "
        f"floor core use: {f['floor']['core_use']}",
    ]
    lines += [f"{k}: {v}" for k, v in f["ratios"].items()]
    if "sweep" in f:
        lines += ["", "concurrency sweep (trigger, one channel):", sweep_table(f["sweep"])]
        lines.append(f"trigger events per call, coalescing on (all levels): {f.get('events_per_call', {})}")
    for row in (
        f["floor"],
        f["ceiling"],
        s,
        f.get("original", {}),
        f.get("compare", {}),
        *f["other_tasks"].values(),
        *f.get("compare_other_tasks", {}).values(),
        *f.get("sweep", []),
    ):
        for error in row.get("errors", []):
            lines.append(f"error: {error}")
    return "\n".join(lines)


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """One line per (source, RTT, in flight): coalescing on and off side by side."""
    lines = [
        f"{'source':8} {'rtt ms':>6} {'in flight':>9} | {'on: p50':>8} {'p99':>8} {'/s':>7} {'cpu ms':>7}"
        f" | {'off: p50':>8} {'p99':>8} {'/s':>7} {'cpu ms':>7}"
    ]
    keyed = {(r["source"], r["rtt_ms"], r["in_flight"], r["coalesce"]): r for r in rows}
    for source, rtt_ms, in_flight in dict.fromkeys((r["source"], r["rtt_ms"], r["in_flight"]) for r in rows):
        cells = []
        for coalesce in (True, False):
            r = keyed.get((source, rtt_ms, in_flight, coalesce))
            cells.append(
                f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['per_s']:>7} {r['cpu_ms_per_execution']:>7}"
                if r
                else f"{'':>33}"
            )
        lines.append(f"{source:8} {rtt_ms:>6g} {in_flight:>9} | {cells[0]} | {cells[1]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__)
    parser.add_argument("--executions", type=int, default=20_000, help="per throughput phase")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-samples", type=int, default=300, help="executions at 1 in flight")
    parser.add_argument("--sdk-calls", type=int, default=300, help="raw SDK serial calls")
    parser.add_argument(
        "--original",
        action="store_true",
        help="also measure an original-style JavaScript service (mesg-js + pusher for Node, answers "
        "before sending) as a baseline on this machine; needs node and `npm ci`",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        nargs="+",
        default=[0.0, 50.0],
        help="round trips of the concurrency sweep: a relay adds this many ms per round trip in "
        "front of the local Pusher server (0: direct)",
    )
    parser.add_argument(
        "--sweep-executions", type=int, default=200, help="per sweep point (at least 20 x in flight)"
    )
    parser.add_argument(
        "--sweep-in-flight", type=int, nargs="+", default=list(SWEEP), help="concurrencies of the sweep"
    )
    parser.add_argument(
        "--sweep-coalesce",
        type=lambda v: {"on": True, "off": False}[v],
        nargs="+",
        default=[True, False],
        help="on, off or both (the default)",
    )
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="skip the concurrency sweep")
    parser.add_argument(
        "--sweep-only", action="store_true", help="only the concurrency sweep (no floor, ceiling, ...)"
    )
    parser.add_argument(
        "--compare-src",
        metavar="DIR",
        help="also measure the service from another source tree (its src/ directory, e.g. an older "
        "commit unpacked with git archive) in the same run: 64 in flight and the sweep",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    figures = asyncio.run(bench(args))
    print(report(figures))
    if args.json:
        print(json.dumps(figures, indent=2))
    lost = figures.get("created", 0) - figures.get("delivered", 0)
    lost += figures.get("sweep_created", 0) - figures.get("sweep_delivered", 0)
    failed = sum(
        figures.get(key, {}).get("failed", 0)
        for key in ("service", "ceiling", "floor", "original", "compare")
    )
    failed += sum(row["failed"] for row in figures.get("sweep", []))
    failed += sum(
        row["failed"]
        for key in ("other_tasks", "compare_other_tasks")
        for row in figures.get(key, {}).values()
    )
    if lost or failed:
        print(f"FAILED: {lost} events lost, {failed} executions failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
