"""The service's Prometheus metrics: the recorder behind the hooks, and what is read when scraped.

The ``Recorder`` is the ``metrics.Hooks`` that counts: it adds to plain numbers, and
prometheus_client turns them into metric families only when scraped. What the service already
counts (in flight, results waiting, delivered, events queued) is read from the worker, the
outbox, the emitter and the coalescer by a ``StateCollector`` at scrape time, at no cost per
execution. This module sits above them and reads them; they only call ``metrics.hooks``.
prometheus_client is imported only at a scrape, and by ``enable``.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mesg_pusher import metrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from mesg_pusher.coalesce import Coalescer
    from mesg_pusher.outbox import Outbox
    from mesg_pusher.receive.emitter import Emitter
    from mesg_pusher.worker import Worker

OUTCOMES = ("completed", "failed", "stopped")
EVENT_KEYS = ("received", "webhook", "online", "offline")
OTHER_TASK = "other"
# Seconds from receiving an execution to handing its result to the outbox: a trigger takes
# a few ms alone and ~100 ms at 64 in flight on two cores; Pusher's timeout is 5 s by default.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = tuple(float(n) for n in range(1, 11))  # Pusher takes up to 10 events per call


@dataclass
class StreamState:
    """The engine stream as /healthz reports it."""

    up: bool = False
    reason: str = "not yet subscribed to the engine's execution stream"
    since: float = 0.0  # time.monotonic() of the last change
    ever_up: bool = False


class Tally:
    """A histogram kept as plain numbers: ``counts[i]`` observations fell in bucket ``i``.

    Why not prometheus_client's ``Histogram``: its ``observe`` checks its state and takes two
    locks on every call, 1.6 to 5 µs timed on this (loaded) machine, against well under 1 µs
    for a bisect and two additions. Locks are not needed: hooks and scrapes all run on the
    event loop's one thread, so a scrape reads consistent numbers.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, with the bounds written as prometheus_client writes its own."""
        from prometheus_client.utils import floatToGoString

        total, out = 0, []
        for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, float(total)))
        return out


class Recorder(metrics.Hooks):
    """Hooks that count in plain numbers, and the collector that exports them when scraped.

    The hot path only adds to dicts and lists (the four hooks of one trigger: about 2 µs,
    timed by ``python -m benchmarks.bench_metrics``); turning them into metric families, and reading
    the gauges, happens once per scrape.
    """

    def __init__(self, tasks: Iterable[str]) -> None:
        self.stream = StreamState(since=time.monotonic())
        self._tasks = frozenset(tasks)
        names = [*sorted(self._tasks), OTHER_TASK]
        self._began: dict[bytes, float] = {}
        self._executions = dict.fromkeys(((t, o) for t in names for o in OUTCOMES), 0)
        self._latency = {task: Tally(LATENCY_BUCKETS) for task in names}
        self._statuses: dict[int, int] = {}
        self._batch = Tally(BATCH_BUCKETS)
        self._emitted = dict.fromkeys(EVENT_KEYS, 0)
        self.reconnects = 0

    # -- the hot path: one execution --------------------------------------------------------
    def execution_received(self, key: bytes) -> None:
        self._began[key] = time.perf_counter()

    def execution_finished(self, key: bytes, task: str, cancelled: bool, error: str | None) -> None:
        began = self._began.pop(key, None)
        if task not in self._tasks:
            task = OTHER_TASK  # bounded labels whatever an engine sends
        self._executions[task, "stopped" if cancelled else "completed" if error is None else "failed"] += 1
        if began is not None:
            self._latency[task].observe(time.perf_counter() - began)

    def pusher_response(self, status: int) -> None:
        self._statuses[status] = self._statuses.get(status, 0) + 1

    def pusher_batch(self, events: int) -> None:
        self._batch.observe(events)

    # -- rarer events -----------------------------------------------------------------------
    def stream_up(self) -> None:
        if self.stream.ever_up and not self.stream.up:
            self.reconnects += 1
        self.stream = StreamState(up=True, reason="", since=time.monotonic(), ever_up=True)

    def stream_down(self, reason: str) -> None:
        since = self.stream.since if not self.stream.up else time.monotonic()
        self.stream = StreamState(up=False, reason=reason, since=since, ever_up=self.stream.ever_up)

    def event_emitted(self, key: str) -> None:
        if key in self._emitted:
            self._emitted[key] += 1

    # -- the scrape -------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        executions = CounterMetricFamily(
            "mesg_pusher_executions",
            "Executions by task and outcome: completed, failed (the error went to the engine) or "
            "stopped (not started or interrupted at shutdown)",
            labels=["task", "outcome"],
        )
        for (task, outcome), count in self._executions.items():
            executions.add_metric([task, outcome], count)
        yield executions
        latency = HistogramMetricFamily(
            "mesg_pusher_execution_duration_seconds",
            "Time from receiving an execution to its result, by task (waiting for a slot included)",
            labels=["task"],
        )
        for task, tally in self._latency.items():
            latency.add_metric([task], tally.buckets(), tally.sum)
        yield latency
        yield CounterMetricFamily(
            "mesg_pusher_engine_reconnects",
            "Times the engine's execution stream was lost and subscribed to again",
            value=self.reconnects,
        )
        calls = CounterMetricFamily(
            "mesg_pusher_pusher_requests",
            "HTTP calls to Pusher by the status answered (calls with no answer are not counted)",
            labels=["status"],
        )
        for status, count in sorted(self._statuses.items()):
            calls.add_metric([str(status)], count)
        yield calls
        batch = HistogramMetricFamily(
            "mesg_pusher_pusher_events_per_call",
            "Events per publish call to Pusher (coalesced triggers and triggerBatch)",
        )
        batch.add_metric([], self._batch.buckets(), self._batch.sum)
        yield batch
        emitted = CounterMetricFamily(
            "mesg_pusher_events_emitted",
            "received, webhook, online and offline events accepted by the engine",
            labels=["event"],
        )
        for key, count in self._emitted.items():
            emitted.add_metric([key], count)
        yield emitted


class StateCollector:
    """Gauges and counters read from the service's own objects when scraped (no hot-path cost)."""

    def __init__(
        self, recorder: Recorder, worker: Worker, emitter: Emitter, coalescer: Coalescer | None
    ) -> None:
        self._recorder = recorder
        self._worker = worker
        self._outbox: Outbox = worker.outbox
        self._emitter = emitter
        self._coalescer = coalescer

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily(
            "mesg_pusher_executions_in_flight",
            "Executions received and not finished (running or waiting for a slot)",
            value=self._worker.in_flight,
        )
        yield GaugeMetricFamily(
            "mesg_pusher_results_waiting",
            "Results not yet acknowledged by the engine (being sent, or held while it is away)",
            value=self._outbox.pending,
        )
        results = CounterMetricFamily(
            "mesg_pusher_results",
            "Results by what the engine did: delivered, rejected (refused, not retried) or dropped "
            "(the queue of held results was full)",
            labels=["outcome"],
        )
        results.add_metric(["delivered"], self._outbox.delivered)
        results.add_metric(["rejected"], self._outbox.rejected)
        results.add_metric(["dropped"], self._outbox.dropped)
        yield results
        yield CounterMetricFamily(
            "mesg_pusher_duplicate_executions",
            "Executions received twice and run once",
            value=self._worker.counts["duplicate"],
        )
        yield GaugeMetricFamily(
            "mesg_pusher_engine_stream_up",
            "1 while the engine's execution stream is open, else 0",
            value=int(self._recorder.stream.up),
        )
        yield GaugeMetricFamily(
            "mesg_pusher_events_waiting",
            "received and webhook events not yet accepted by the engine",
            value=self._emitter.pending,
        )
        events = CounterMetricFamily(
            "mesg_pusher_events_lost",
            "Events the engine refused (rejected) or that the full queue dropped (dropped)",
            labels=["reason"],
        )
        events.add_metric(["rejected"], self._emitter.rejected)
        events.add_metric(["dropped"], self._emitter.dropped)
        yield events
        if self._coalescer is not None:
            yield CounterMetricFamily(
                "mesg_pusher_coalesced_calls",
                "Publish calls made for coalesced triggers",
                value=self._coalescer.calls,
            )


def enable(
    worker: Worker, emitter: Emitter, coalescer: Coalescer | None
) -> tuple[Recorder, CollectorRegistry]:
    """Record from now on; the recorder, and a fresh registry with it, the state collector and
    the process collectors. ``metrics.disable()`` stops recording."""
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    recorder = Recorder(worker.handlers)
    registry.register(recorder)
    registry.register(StateCollector(recorder, worker, emitter, coalescer))
    metrics.install(recorder)
    return recorder, registry
