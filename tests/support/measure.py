"""Figures of another process: CPU seconds, memory and sockets from /proc, and what the
service's own stop line says about coalescing."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

#: The service's last line when it coalesced: ``coalescing: N triggers sent in M calls``.
COALESCED = re.compile(r"coalescing: (\d+) triggers sent in (\d+) calls")

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in kB."""
    values = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                values[name] = int(value.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def open_sockets(pid: int) -> int:
    """How many sockets the process holds (leak check)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


@dataclass
class CpuMeter:
    """CPU used by a process between ``start()`` and ``stop()``, and its share of wall time."""

    pid: int
    cpu: float = 0.0
    wall: float = 0.0

    def start(self) -> None:
        import time

        self._cpu0, self._wall0 = cpu_seconds(self.pid), time.perf_counter()

    def stop(self) -> None:
        import time

        self.cpu = cpu_seconds(self.pid) - self._cpu0
        self.wall = time.perf_counter() - self._wall0

    @classmethod
    def total(cls, meters: list[CpuMeter]) -> CpuMeter:
        """Several measured spans (of one or more processes) added up."""
        return cls(0, sum(m.cpu for m in meters), sum(m.wall for m in meters))

    @property
    def utilisation(self) -> float:
        """Fraction of one core used."""
        return self.cpu / self.wall if self.wall else 0.0
