"""The parent side of a run: spawn worker processes, merge their snapshots, watch for crashes and hangs."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Protocol

from mcpool_cli.plan import RunPlan, WorkerPlan
from mcpool_cli.results import RunResult, RunStats, WorkerOutcome
from mcpool_cli.verdicts import explain

STDERR_LINES_KEPT = 20


class RunListener(Protocol):
    """What the runner tells the progress display."""

    def phase(self, plan: RunPlan, phase: str) -> None: ...

    def tick(self, plan: RunPlan, elapsed_s: float, ops: int, ops_per_s: float, errors: int) -> None: ...


class WorkerProcess:
    """One `python -m mcpool_cli.worker` child, in its own session, with its output read by two threads."""

    def __init__(self, plan: WorkerPlan, events: queue.Queue) -> None:
        self.index = plan.worker_index
        env = dict(os.environ, LIBC_FATAL_STDERR_="1", PYTHONUNBUFFERED="1")  # glibc aborts print to stderr
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcpool_cli.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, env=env)
        assert self.process.stdin is not None
        self.process.stdin.write(plan.to_json().encode() + b"\n")
        self.process.stdin.flush()  # stdin stays open: the worker exits when it closes
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self.last_progress = time.monotonic()
        self.messages: list[dict[str, Any]] = []  # hello, phase, error, done: everything but snapshots
        self.measured_s = 0.0
        self.killed_as = ""
        self.stdout_closed = False
        self.started = time.monotonic()
        self.lifetime_s = 0.0
        threading.Thread(target=self._read_stdout, args=(events,), daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stdout(self, events: queue.Queue) -> None:
        stream: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        for line in stream:
            try:
                events.put((self, json.loads(line)))
            except ValueError:
                self.stderr_tail.append(line.decode(errors="replace").rstrip())
        events.put((self, None))

    def _read_stderr(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)

    def kill(self, reason: str) -> None:
        if self.process.poll() is None:
            self.killed_as = self.killed_as or reason
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def finish(self) -> WorkerOutcome:
        """Reap the process and say how it ended."""
        returncode = self.process.wait()
        self._stderr_reader.join(timeout=2)
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        outcome = classify_exit(returncode, self.killed_as, self.messages, list(self.stderr_tail), self.measured_s)
        return dataclasses.replace(outcome, lifetime_s=round(self.lifetime_s, 3))


def classify_exit(returncode: int, killed_as: str, messages: list[dict[str, Any]], stderr_tail: list[str],
                  measured_s: float) -> WorkerOutcome:
    """ok, crashed (signal), hung, error (Python exception) or interrupted, from how a worker ended."""
    last_line = stderr_tail[-1] if stderr_tail else None
    errors = [m["message"] for m in messages if m.get("type") == "error"]
    if killed_as:
        return WorkerOutcome(killed_as, stderr_tail=last_line, measured_s=measured_s)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        return WorkerOutcome("crashed", signal=name, stderr_tail=last_line, measured_s=measured_s)
    if returncode == 0 and any(m.get("type") == "done" for m in messages):
        return WorkerOutcome("ok", measured_s=measured_s)
    message = errors[-1] if errors else (last_line or f"worker exited with status {returncode}")
    return WorkerOutcome("error", stderr_tail=last_line, message=message, measured_s=measured_s)


@dataclass
class _Rate:
    """Ops/s over the last second or so, for progress display."""

    samples: collections.deque

    def update(self, now: float, ops: int) -> float:
        self.samples.append((now, ops))
        while len(self.samples) > 2 and now - self.samples[0][0] > 1.0:
            self.samples.popleft()
        first_t, first_ops = self.samples[0]
        return (ops - first_ops) / (now - first_t) if now > first_t else 0.0


class Run:
    """One strategy run in progress: the workers, the merged stats and the watchdog."""

    def __init__(self, plan: RunPlan, listener: RunListener) -> None:
        self.plan = plan
        self.listener = listener
        self.stats = RunStats()
        self.events: queue.Queue = queue.Queue()
        self.workers = [WorkerProcess(WorkerPlan(plan, i), self.events) for i in range(plan.processes)]
        self.measure_started: float | None = None
        self.rate = _Rate(collections.deque())

    def handle(self, worker: WorkerProcess, message: dict[str, Any] | None) -> None:
        if message is None:
            worker.stdout_closed = True
            worker.lifetime_s = time.monotonic() - worker.started
            return
        kind = message.get("type")
        if kind == "snapshot":
            self.stats.add_snapshot(message)
            worker.measured_s = min(max(worker.measured_s, message["t_s"]), self.plan.duration_s)
            if message["completed"]:
                worker.last_progress = time.monotonic()
            return
        worker.messages.append(message)
        worker.last_progress = time.monotonic()
        if kind == "phase":
            if message["phase"] == "measure" and self.measure_started is None:
                self.measure_started = time.monotonic()
            self.listener.phase(self.plan, message["phase"])

    def watchdog(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if not worker.stdout_closed and now - worker.last_progress > self.plan.hang_timeout_s:
                worker.kill("hung")

    def tick(self) -> None:
        now = time.monotonic()
        ops = self.stats.ops()
        elapsed = now - self.measure_started if self.measure_started else 0.0
        self.listener.tick(self.plan, elapsed, ops, self.rate.update(now, ops), sum(self.stats.errors.values()))

    def pump(self) -> None:
        """Handle events until every worker's output has closed."""
        next_tick = 0.0
        while not all(w.stdout_closed for w in self.workers):
            try:
                self.handle(*self.events.get(timeout=0.1))
            except queue.Empty:
                pass
            self.watchdog()
            if time.monotonic() >= next_tick:
                self.tick()
                next_tick = time.monotonic() + 0.25

    def drain(self, timeout_s: float) -> None:
        """After killing the workers: take what they had already sent."""
        deadline = time.monotonic() + timeout_s
        while not all(w.stdout_closed for w in self.workers) and time.monotonic() < deadline:
            try:
                self.handle(*self.events.get(timeout=0.05))
            except queue.Empty:
                pass

    def result(self) -> RunResult:
        outcomes = tuple(worker.finish() for worker in self.workers)
        plan = self.plan
        result = RunResult(strategy=plan.strategy, threads=plan.threads, processes=plan.processes,
                           pool_size=plan.effective_pool_size if plan.strategy == "fifo" else None,
                           duration_s=plan.duration_s, stats=self.stats, workers=outcomes)
        return RunResult(**{**vars(result), "explanation": explain(result, plan.hang_timeout_s)})


def execute(plan: RunPlan, listener: RunListener) -> RunResult:
    """Run one strategy to its end, or until Ctrl-C (outcome `interrupted`, partial results kept)."""
    run = Run(plan, listener)
    try:
        run.pump()
    except KeyboardInterrupt:
        for worker in run.workers:
            worker.kill("interrupted")
        run.drain(timeout_s=2.0)
    except BaseException:
        for worker in run.workers:
            worker.kill("error")
        raise
    return run.result()
