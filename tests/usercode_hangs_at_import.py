"""Test-only: a module whose import never finishes (a lock or a network call that never returns)."""

import threading

threading.Event().wait()


def make(master, threads):  # never reached
    raise AssertionError
