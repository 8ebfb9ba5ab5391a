"""Progress for the long-running tools (the demo, the bench): shown on a terminal only.

On a terminal, progress rewrites one line in place (``\\r`` and erase-line); anywhere else
(CI, a pipe, a file) it writes nothing at all, so logs and captured output hold only results.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

ERASE = "\r\x1b[K"


class Progress:
    """``show``/``clear`` one status line; or ``begin(name, total)``, ``step(done)``, ``end()`` to count."""

    def __init__(self, stream: TextIO | None = None, *, every: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.every = every  # a counter is redrawn at most this often (seconds)
        self._name, self._total, self._shown = "", 0, 0.0

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write(ERASE + text)
            self.stream.flush()

    def clear(self) -> None:
        """Erase the line, e.g. before printing a result."""
        self.show("")

    def begin(self, name: str, total: int) -> None:
        self._name, self._total, self._shown = name, total, 0.0
        self.step(0)

    def step(self, done: int) -> None:
        now = time.monotonic()
        if now - self._shown >= self.every or done in (0, self._total):
            self._shown = now
            self.show(f"{self._name}: {done}/{self._total}")

    def end(self) -> None:
        self.clear()
