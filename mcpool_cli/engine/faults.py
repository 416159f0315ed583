"""What the parent does to a server while the workers load, and when it did it (check-stale, check-failover).

The parent injects a fault from its main thread while it pumps the workers' snapshots (a memcached started
from another thread would die with it: the embedded server asks for SIGTERM when its parent thread exits).
Worker times and fault times are both `time.monotonic_ns()`, one clock on Linux.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class FaultTimes:
    """When the fault struck and when the server was usable again (monotonic ns), and what was done."""

    start_ns: int = 0
    back_ns: int = 0
    refill: tuple[int, int] | None = None  # restart: from the new server's start to its refill; misses here are real
    detail: str = ""


class Fault:
    """Polled by the runner from the main thread; acts when the load has run `before_s`."""

    name = ""

    def __init__(self, before_s: float) -> None:
        self.before_ns = int(before_s * 1e9)
        self.times = FaultTimes()
        self.t0_ns: int | None = None
        self.state = "waiting"

    def poll(self, workers: list[Any]) -> None:
        if self.t0_ns is None:
            starts = [m["t0_ns"] for w in workers for m in w.messages if m.get("phase") == "measure"]
            if not starts:
                return
            self.t0_ns = min(starts)
        if self.state != "done":
            self.step(time.monotonic_ns(), workers)

    def step(self, now_ns: int, workers: list[Any]) -> None:
        raise NotImplementedError

    @property
    def due(self) -> bool:
        return self.t0_ns is not None and time.monotonic_ns() >= self.t0_ns + self.before_ns

    @property
    def happened(self) -> bool:
        """Whether the fault struck (it may not have ended: Ctrl-C, a crash, a server that would not start)."""
        return bool(self.times.start_ns)


