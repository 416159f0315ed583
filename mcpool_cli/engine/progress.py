"""Progress while a run goes: live on a terminal, a plain line every few seconds in CI logs, or nothing."""

from __future__ import annotations

import time
from typing import Callable, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from mcpool_cli.engine.plan import RunPlan
from mcpool_cli.units import printable

PHASE_WORDS = {"populate": "filling the key space", "warmup": "warming up", "measure": "measuring"}
REFRESH_PER_S = 4  # as often as the runner ticks: rich's default 10 redraws a second cost the parent CPU the load lacks


class NullProgress:
    """--quiet: say nothing."""

    def phase(self, plan: RunPlan, phase: str) -> None:
        pass

    def tick(self, plan: RunPlan, elapsed_s: float, ops: int, ops_per_s: float, errors: int) -> None:
        pass

    def close(self) -> None:
        pass


def status_line(plan: RunPlan, elapsed_s: float, ops_per_s: float, errors: int) -> str:
    shown = min(elapsed_s, plan.duration_s)
    remaining = max(plan.duration_s - elapsed_s, 0.0)
    return f"{shown:5.1f}/{plan.duration_s:g} s  {remaining:4.1f} s left  {ops_per_s:9,.0f} ops/s  errors {errors:,}"


class PlainProgress(NullProgress):
    """No terminal: one line per phase and at most one status line every `interval_s`."""

    def __init__(self, stream: TextIO, interval_s: float = 5.0, get_time: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.interval_s = interval_s
        self.get_time = get_time
        self._next = 0.0

    def phase(self, plan: RunPlan, phase: str) -> None:
        print(f"[{printable(plan.name)}] {PHASE_WORDS.get(phase, phase)}", file=self.stream, flush=True)
        self._next = self.get_time() + self.interval_s

    def tick(self, plan: RunPlan, elapsed_s: float, ops: int, ops_per_s: float, errors: int) -> None:
        now = self.get_time()
        if elapsed_s > 0 and now >= self._next:
            print(f"[{printable(plan.name)}] {status_line(plan, elapsed_s, ops_per_s, errors)}", file=self.stream,
                  flush=True)
            self._next = now + self.interval_s


class LiveProgress(NullProgress):
    """A terminal: a live bar per strategy with elapsed, remaining and current ops/s."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(TextColumn("{task.description:<14}", markup=False), BarColumn(),
                                  TextColumn("{task.fields[status]}", markup=False), console=console, transient=True,
                                  refresh_per_second=REFRESH_PER_S)
        self._tasks: dict[str, TaskID] = {}
        self._progress.start()

    def _task(self, plan: RunPlan) -> TaskID:
        if plan.name not in self._tasks:
            self._tasks[plan.name] = self._progress.add_task(printable(plan.name), total=plan.duration_s,
                                                                 status="starting")
        return self._tasks[plan.name]

    def phase(self, plan: RunPlan, phase: str) -> None:
        self._progress.update(self._task(plan), status=PHASE_WORDS.get(phase, phase))

    def tick(self, plan: RunPlan, elapsed_s: float, ops: int, ops_per_s: float, errors: int) -> None:
        if elapsed_s > 0:
            self._progress.update(self._task(plan), completed=min(elapsed_s, plan.duration_s),
                                  status=status_line(plan, elapsed_s, ops_per_s, errors))

    def close(self) -> None:
        self._progress.stop()
