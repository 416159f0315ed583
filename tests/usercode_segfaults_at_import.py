"""Test-only: a module whose import dies of SIGSEGV, as a broken C extension would."""

import ctypes

ctypes.string_at(0)  # reads address 0


def make(master, threads):  # never reached
    raise AssertionError
