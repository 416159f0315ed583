"""Test-only: a working pool whose module prints at import, on stdout and stderr, and records every process
that imports it (one pid a line, in the file named by MCPOOL_TEST_IMPORT_LOG when set)."""

import os
import sys

import pylibmc

print("usercode: configuring the pool", flush=True)
print("usercode: a warning on stderr", file=sys.stderr, flush=True)
if os.environ.get("MCPOOL_TEST_IMPORT_LOG"):
    with open(os.environ["MCPOOL_TEST_IMPORT_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")


def make(master, threads):
    return pylibmc.ClientPool(master, threads)
