"""Exit codes and the one exception type that maps a user-facing problem to exit 2."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes that users and CI rely on."""

    OK = 0
    PROBLEM = 1  # a check found a problem or a run was not clean
    USAGE = 2  # bad input or an unusable environment
    INTERRUPTED = 130  # Ctrl-C


class UsageProblem(Exception):
    """Bad input or an unusable environment: reported as one line, exit 2, before any load starts."""
