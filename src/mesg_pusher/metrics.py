"""What the service counts for operators: one-line hooks in the hot path, Prometheus at scrape time.

Why hooks through a module-level object: the worker, transport, coalescer and emitter call
``metrics.hooks.<event>(...)`` in one line each, with no constructor or signature changes.
Off (the default), ``hooks`` is a ``Hooks`` whose methods do nothing, so an execution pays a
few no-op calls; on (``MESG_PUSHER_METRICS_PORT``), ``enable`` swaps in a ``Recorder``. One
service runs per process, so one recorder per process is enough.

What is already counted elsewhere (in flight, results waiting, delivered, events queued) is not
counted again: a collector reads it at scrape time, so it costs nothing per execution.
prometheus_client is imported only by ``enable``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric

    from mesg_pusher.coalesce import Coalescer
    from mesg_pusher.outbox import Outbox
    from mesg_pusher.receive.emitter import Emitter
    from mesg_pusher.worker import Worker

PORT_VARIABLE = "MESG_PUSHER_METRICS_PORT"
OUTCOMES = ("completed", "failed", "stopped")
EVENT_KEYS = ("received", "webhook")
OTHER_TASK = "other"
# Seconds from receiving an execution to handing its result to the outbox: a trigger takes
# a few ms alone and ~100 ms at 64 in flight on two cores; Pusher's timeout is 5 s by default.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = tuple(float(n) for n in range(1, 11))  # Pusher takes up to 10 events per call


def port_from_environment(environment: Mapping[str, str]) -> int | None:
    """``MESG_PUSHER_METRICS_PORT``: the health and metrics port, or None (off)."""
    from mesg_pusher.receive.settings import _clean, _port  # the one port check; not at import: a cycle

    text = _clean(environment, PORT_VARIABLE)
    return None if text is None else _port(text, PORT_VARIABLE)


class Hooks:
    """The events the service reports; this base class ignores them (metrics off)."""

    def execution_received(self, key: bytes) -> None:
        """An execution was accepted (not a duplicate); its latency starts now."""

    def execution_finished(self, key: bytes, task: str, cancelled: bool, error: str | None) -> None:
        """Its one result is ready: completed, failed, or stopped (cancelled at shutdown)."""

    def stream_up(self) -> None:
        """The engine's execution stream is open and ready."""

    def stream_down(self, reason: str) -> None:
        """The execution stream is lost (or could not be opened), for ``reason``."""

    def pusher_response(self, status: int) -> None:
        """Pusher (or a proxy before it) answered an HTTP call with ``status``."""

    def pusher_batch(self, events: int) -> None:
        """One publish call to Pusher carried ``events`` events."""

    def event_emitted(self, key: str) -> None:
        """The engine accepted a ``received`` or ``webhook`` event."""


hooks: Hooks = Hooks()


@dataclass
class StreamState:
    """The engine stream as /healthz reports it."""

    up: bool = False
    reason: str = "not yet subscribed to the engine's execution stream"
    since: float = 0.0  # time.monotonic() of the last change
    ever_up: bool = False


class Recorder(Hooks):
    """Hooks that update Prometheus metrics in ``registry``.

    The labelled children are looked up once and kept in dicts: ``labels()`` takes a lock and
    validates its arguments, ~1 µs, on every call otherwise.
    """

    def __init__(self, registry: CollectorRegistry, tasks: Iterable[str]) -> None:
        from prometheus_client import Counter, Histogram

        self.registry = registry
        self.stream = StreamState(since=time.monotonic())
        self._tasks = frozenset(tasks)
        self._began: dict[bytes, float] = {}
        executions = Counter(
            "mesg_pusher_executions",
            "Executions by task and outcome: completed, failed (the error went to the engine) or "
            "stopped (not started or interrupted at shutdown)",
            ["task", "outcome"],
            registry=registry,
        )
        latency = Histogram(
            "mesg_pusher_execution_duration_seconds",
            "Time from receiving an execution to its result, by task (waiting for a slot included)",
            ["task"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        names = [*sorted(self._tasks), OTHER_TASK]
        self._executions: dict[tuple[str, str], Counter] = {
            (task, outcome): executions.labels(task, outcome) for task in names for outcome in OUTCOMES
        }
        self._latency: dict[str, Histogram] = {task: latency.labels(task) for task in names}
        self._reconnects = Counter(
            "mesg_pusher_engine_reconnects",
            "Times the engine's execution stream was lost and subscribed to again",
            registry=registry,
        )
        self._pusher_calls = Counter(
            "mesg_pusher_pusher_requests",
            "HTTP calls to Pusher by the status answered (calls with no answer are not counted)",
            ["status"],
            registry=registry,
        )
        self._statuses: dict[int, Counter] = {}
        self._batch = Histogram(
            "mesg_pusher_pusher_events_per_call",
            "Events per publish call to Pusher (coalesced triggers and triggerBatch)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        emitted = Counter(
            "mesg_pusher_events_emitted",
            "received and webhook events accepted by the engine",
            ["event"],
            registry=registry,
        )
        self._emitted: dict[str, Counter] = {key: emitted.labels(key) for key in EVENT_KEYS}

    # -- the hot path: one execution --------------------------------------------------------
    def execution_received(self, key: bytes) -> None:
        self._began[key] = time.perf_counter()

    def execution_finished(self, key: bytes, task: str, cancelled: bool, error: str | None) -> None:
        began = self._began.pop(key, None)
        if task not in self._tasks:
            task = OTHER_TASK  # bounded labels whatever an engine sends
        outcome = "stopped" if cancelled else "completed" if error is None else "failed"
        self._executions[task, outcome].inc()
        if began is not None:
            self._latency[task].observe(time.perf_counter() - began)

    def pusher_response(self, status: int) -> None:
        child = self._statuses.get(status)
        if child is None:
            child = self._statuses[status] = self._pusher_calls.labels(str(status))
        child.inc()

    def pusher_batch(self, events: int) -> None:
        self._batch.observe(events)

    # -- rarer events -----------------------------------------------------------------------
    def stream_up(self) -> None:
        if self.stream.ever_up and not self.stream.up:
            self._reconnects.inc()
        self.stream = StreamState(up=True, reason="", since=time.monotonic(), ever_up=True)

    def stream_down(self, reason: str) -> None:
        since = self.stream.since if not self.stream.up else time.monotonic()
        self.stream = StreamState(up=False, reason=reason, since=since, ever_up=self.stream.ever_up)

    def event_emitted(self, key: str) -> None:
        child = self._emitted.get(key)
        if child is not None:
            child.inc()


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


def enable(worker: Worker, emitter: Emitter, coalescer: Coalescer | None) -> Recorder:
    """Record from now on, into a fresh registry with the process collectors; returns the recorder."""
    global hooks
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    recorder = Recorder(registry, worker.handlers)
    registry.register(StateCollector(recorder, worker, emitter, coalescer))
    hooks = recorder
    return recorder


def disable() -> None:
    """Back to no-op hooks (at shutdown, and between tests)."""
    global hooks
    hooks = Hooks()
