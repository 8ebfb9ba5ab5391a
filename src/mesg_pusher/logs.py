"""Where log lines go and how they read: text (the default) or one JSON object per line.

``LOG_FORMAT=json`` is for log collectors (Loki, Elasticsearch, Cloud Logging...): each line is
one object with ``time``, ``level``, ``logger`` and ``message``, plus ``execution`` and ``task``
when the line was written while running one execution, so an operator can pull every line of
one execution without parsing messages. Both formats pass the same secret filter first.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from mesg_pusher import env
from mesg_pusher.errors import ConfigError
from mesg_pusher.hash_text import b58
from mesg_pusher.redact import SecretFilter

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# grpc and aiohttp are chatty at debug and may echo request details; keep them at warning.
NOISY = ("grpc", "aiohttp", "asyncio")

# (execution hash, task key) of the execution the current asyncio task runs, if any. A context
# variable follows the execution into everything it awaits, and asyncio gives each task its own
# copy, so concurrent executions never see each other's. The hash is encoded only when a JSON
# line is written: binding costs one ``set`` per execution on the hot path.
_execution: contextvars.ContextVar[tuple[bytes, str] | None] = contextvars.ContextVar(
    "mesg_pusher_execution", default=None
)


def bind_execution(execution_hash: bytes, task: str) -> None:
    """Mark the running asyncio task as working on this execution (the worker's one-line hook)."""
    _execution.set((execution_hash, task))


def log_format(environment: Mapping[str, str]) -> str:
    """``LOG_FORMAT`` from the environment: ``text`` (default) or ``json``."""
    value = (env.text(environment, "LOG_FORMAT") or "text").lower()
    if value not in FORMATS:
        raise ConfigError(f"variable LOG_FORMAT must be text or json, not {value[:20]!r}")
    return value


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = _execution.get()
        # ``extra={"execution": ..., "task": ...}`` names one explicitly, outside its task.
        execution = getattr(record, "execution", None) or (b58(bound[0]) if bound else None)
        task = getattr(record, "task", None) or (bound[1] if bound else None)
        if execution is not None:
            line["execution"] = execution
        if task is not None:
            line["task"] = task
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # already scrubbed by the secret filter when it held a secret
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. ``2026-12-01T14:32:36.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def configure_logging(
    level: str, secrets: tuple[str, ...], fmt: str = "text", stream: TextIO | None = None
) -> None:
    """One handler on stderr (or ``stream``); every record passes the secret filter first."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
