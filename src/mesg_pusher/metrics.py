"""What the service reports for operators, as one-line hooks in the hot path; no imports of ours.

Why hooks through a module-level object: the worker, transport, coalescer, emitter and
triggerBatch call ``metrics.hooks.<event>(...)`` in one line each, with no constructor or
signature changes; and as this module imports nothing of ours, any layer may call it. Off
(the default), ``hooks`` is a ``Hooks`` whose methods do nothing, so an execution pays a few
no-op calls; on (``MESG_PUSHER_METRICS_PORT``), ``install`` swaps in the ``Recorder`` of
``mesg_pusher.collectors``, which also reads what the service counts when scraped. One
service runs per process, so one recorder per process is enough.
"""

from __future__ import annotations


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
        """The engine accepted an event (``received``, ``webhook``, ``online`` or ``offline``)."""


hooks: Hooks = Hooks()


def install(recorder: Hooks) -> None:
    """Report to ``recorder`` from now on (metrics on)."""
    global hooks
    hooks = recorder


def disable() -> None:
    """Back to no-op hooks (at shutdown, and between tests)."""
    global hooks
    hooks = Hooks()
