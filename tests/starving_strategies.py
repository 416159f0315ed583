"""A test-only pool that starves its worker of CPU: busy, yet finishing no operation (as 1024 threads × 64
processes on a small machine do), unlike fault_strategies.hang_pool, whose threads block and sit idle."""

from __future__ import annotations

import contextlib
import threading
import time

import pylibmc

BUSY_AFTER_S = 0.6


class _Spinning:
    def __init__(self, master: pylibmc.Client, threads: int) -> None:
        self.pool = pylibmc.ClientPool(master, threads)
        self.first = 0.0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def reserve(self):
        with self.lock:
            self.first = self.first or time.monotonic()
        if time.monotonic() - self.first >= BUSY_AFTER_S:
            while True:  # on the CPU, and never done
                sum(range(1000))
        with self.pool.reserve(block=True) as client:
            yield client


def spin_pool(master: pylibmc.Client, threads: int) -> _Spinning:
    return _Spinning(master, threads)
