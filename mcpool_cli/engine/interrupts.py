"""Ctrl-C (and SIGTERM, SIGHUP) for a whole command: noted from its first moment, acted on at known points.

`install()` runs first thing in a real `mcpool` process. From then on a signal only raises a process-wide flag,
except inside `armed()` (blocking set-up: starting memcached, connecting), where it raises KeyboardInterrupt at
once. The command looks at the flag where it can act on it: before connecting, when each run starts and ends
(the runner's InterruptFlag), before its JSON is written and before it exits. So a Ctrl-C at any moment gives
exit 130 and a document that says `interrupted`, and never cuts a result in half.

Without `install()` (the library, tests in one process) signals keep Python's own behaviour.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _State:
    installed = False
    received = False  # a signal arrived since install(): the command is interrupted
    armed = 0  # inside armed(): a signal raises KeyboardInterrupt at once


_state = _State()


def _on_signal(signum: int, frame: Any) -> None:
    _state.received = True
    if _state.armed > 0:
        _state.armed = 0  # once: the clean-up that follows is not cut short by a second signal
        raise KeyboardInterrupt


def install(early: list[int] | None = None) -> None:
    """In the main thread, first thing: signals are noted from now on (see the module's doc). Once. `early`: the
    signals a stop-gap handler noted before this module could be imported (`python -m mcpool_cli`)."""
    if not _state.installed and threading.current_thread() is threading.main_thread():
        _state.installed, _state.received, _state.armed = True, False, 0
        for signum in SIGNALS:
            signal.signal(signum, _on_signal)
        if early:  # read after our handlers are in: a signal from now on is noted by them
            _state.received = True


def settle() -> None:
    """The exit code is decided: signals from now on are ignored. (At exit Python puts its own handlers back to
    the default, so one arriving then would kill the process with no word, whatever it had reported.)"""
    if _state.installed and threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def begin() -> None:
    """A command starts: without install() (in a process that runs several), forget an earlier one's signal."""
    if not _state.installed:
        _state.received = False


def note() -> None:
    """A handler of its own (the runner's InterruptFlag) saw a signal: the command is interrupted."""
    _state.received = True


def received() -> bool:
    """Whether a signal arrived since install() (always False without it)."""
    return _state.received


@contextlib.contextmanager
def armed() -> Iterator[None]:
    """Within: a signal raises KeyboardInterrupt at once; one that arrived before raises on entry."""
    if _state.received:
        raise KeyboardInterrupt
    _state.armed += 1
    try:
        yield
    finally:
        _state.armed = max(0, _state.armed - 1)
