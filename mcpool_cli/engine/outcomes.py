"""How a worker process ended, and the worst of several: the run's outcome."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITY = ("ok", "interrupted", "error", "hung", "crashed")  # the worst worker outcome is the run's


@dataclass
class WorkerOutcome:
    """How one worker process ended."""

    outcome: str = "ok"
    signal: str | None = None
    stderr_tail: str | None = None
    message: str | None = None
    measured_s: float = 0.0
    lifetime_s: float = 0.0  # from spawn to the end of its output


def worst_outcome(outcomes: list[WorkerOutcome]) -> WorkerOutcome:
    return max(outcomes, key=lambda o: SEVERITY.index(o.outcome)) if outcomes else WorkerOutcome()
