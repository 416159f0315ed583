"""Test-only: a pool whose reserve() never gives the GIL back (a catastrophic regex runs in C, holding it), so
no thread of the worker, its stdin watcher included, runs again. Before it spins it creates the file named by
MCPOOL_TEST_SPIN_MARKER, when set."""

import os
import re

import pylibmc

_BACKTRACKS = re.compile(r"(a+)+$")


class _Spinning:
    def __init__(self, master, threads):
        self.pool = pylibmc.ClientPool(master, threads)

    def reserve(self):
        marker = os.environ.get("MCPOOL_TEST_SPIN_MARKER")
        if marker:
            with open(marker, "a") as out:
                out.write(f"{os.getpid()}\n")
        _BACKTRACKS.match("a" * 64 + "b")  # 2**64 steps, all with the GIL held
        return self.pool.reserve()


def spinning_pool(master, threads):
    return _Spinning(master, threads)
