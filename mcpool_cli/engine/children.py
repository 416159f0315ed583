"""What every child process mcpool starts to run code (workers, the custom strategy probe) shares: it dies with
its parent, even when its own threads hold the GIL so that no watcher thread of its own could notice."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable

PARENT_PID_ENV = "MCPOOL_PARENT_PID"  # the pid a child expects as its parent; it exits at once if it differs
ORPHANED_EXIT = 70


def child_env() -> dict[str, str]:
    """The environment of a child: mcpool's, glibc's fatal messages on stderr (not the tty), and this pid."""
    return dict(os.environ, LIBC_FATAL_STDERR_="1", **{PARENT_PID_ENV: str(os.getpid())})


def _prctl() -> Any:
    """libc's prctl, looked up in the parent: the child, forked from a threaded process, only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent_hook() -> Callable[[], None]:
    """A preexec_fn: in the child before exec, have the kernel SIGKILL it when this process dies (Linux), and
    exit at once if this process died already, before the request was made."""
    prctl = _prctl()
    parent = os.getpid()

    def hook() -> None:
        if prctl is not None:
            PR_SET_PDEATHSIG = 1
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:
            os._exit(ORPHANED_EXIT)
    return hook


def exit_if_orphaned() -> None:
    """In the child, at start: exit if the parent that started it is gone already (no parent-death signal on
    this platform, or a parent that died between fork and prctl)."""
    expected = os.environ.get(PARENT_PID_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        os._exit(ORPHANED_EXIT)
