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
from typing import IO, Any, Callable, Protocol

from mcpool_cli.engine import interrupts
from mcpool_cli.errors import UsageProblem
from mcpool_cli.engine.children import child_env, die_with_parent_hook
from mcpool_cli.engine.plan import RunPlan, WorkerPlan
from mcpool_cli.engine.outcomes import WorkerOutcome

STDERR_LINES_KEPT = 20
STDERR_LINE_CHARS = 500
GO_SLEEP_S = 0.2  # a `go` due within this long is slept to, not left to the pump's next turn
EXIT_GRACE_S = 2.0  # after a worker exits, how long its output may stay open (a leftover child holding it)
PHASE_WORDS = {"start": "starting", "populate": "filling the key space", "warmup": "warming up",
               "measure": "measuring"}


class RunListener(Protocol):
    """What the runner tells the progress display."""

    def phase(self, plan: RunPlan, phase: str) -> None: ...

    def tick(self, plan: RunPlan, elapsed_s: float, ops: int, ops_per_s: float, errors: int) -> None: ...


class InterruptFlag:
    """While workers run, Ctrl-C (and SIGTERM, SIGHUP) only raise a flag; the pump loop checks it.

    A KeyboardInterrupt raised at an arbitrary point in the main thread can land inside a queue's lock
    handling and leave the lock held, so that a reader thread and then the main thread block forever.
    Checking a flag at a known point avoids that. A signal that came before (engine/interrupts.py noted it)
    counts as raised from the start, and one that comes now is noted there too, for the rest of the command.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def _set(self, signum: int, frame: Any) -> None:
        self.raised = True
        interrupts.note()

    def __enter__(self) -> "InterruptFlag":
        self.raised = self.raised or interrupts.received()
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._set)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        if self.raised:
            raise KeyboardInterrupt


def run_in_turn(names: tuple[str, ...], run_one: Callable[[str], bool]) -> bool:
    """Call `run_one(name)` for each name until one reports an interrupt; a Ctrl-C between two runs counts
    too (and one during a run that had already finished). Returns whether the sequence was interrupted."""
    try:
        for name in names:
            if run_one(name) or interrupts.received():
                return True
    except KeyboardInterrupt:
        ignore_further_interrupts()
        return True
    return False


def ignore_further_interrupts() -> None:
    """After the first Ctrl-C, a second one must not cut the clean-up short."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerProcess:
    """One `python -m mcpool_cli.engine.worker` child, in its own session, with its output read by two threads."""

    def __init__(self, plan: WorkerPlan, events: queue.Queue) -> None:
        self.index = plan.worker_index
        try:  # the kernel kills the worker if mcpool dies: its own stdin watcher may never get the GIL
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mcpool_cli.engine.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, env=child_env(), preexec_fn=die_with_parent_hook())
        except OSError as exc:
            raise UsageProblem(f"cannot start a worker process ({exc.strerror or exc}); "
                               "lower --processes or raise the open-files limit") from exc
        assert self.process.stdin is not None
        self.process.stdin.write(plan.to_json().encode() + b"\n")
        self.process.stdin.flush()  # stdin stays open: the worker exits when it closes
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self.last_progress = self.started = time.monotonic()
        self.messages: list[dict[str, Any]] = []  # hello, phase, ready, error, done: all but snapshots
        self.phase = "start"
        self.ready = self.released = self.stdout_closed = False
        self.measured_s = self.lifetime_s = 0.0
        self.exited_at: float | None = None
        self.killed_as = ""
        self.quiet_since: tuple[float, float] | None = None  # (when, CPU seconds then) once quiet for a while
        self.busy_while_quiet = ""  # set when killed as hung though busy on the CPU: starved, not stuck
        threading.Thread(target=self._read_stdout, args=(events,), daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _read_stdout(self, events: queue.Queue) -> None:
        stream: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        for line in stream:
            try:
                events.put((self, json.loads(line)))
            except ValueError:  # a message cut short by the worker's death is no last word of its own
                if not line.startswith(b'{"type":'):
                    self.stderr_tail.append(line.decode(errors="replace").rstrip()[:STDERR_LINE_CHARS])
        events.put((self, None))

    def _read_stderr(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text[:STDERR_LINE_CHARS])

    def send(self, line: bytes) -> None:
        try:
            self.process.stdin.write(line)  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            pass  # the worker is gone; how it ended is read from its exit status

    def kill(self, reason: str) -> None:
        """Kill the worker's whole process group; the first reason given is the one reported."""
        if self.stdout_closed and self.process.poll() is not None:
            return
        self.killed_as = self.killed_as or (reason if self.process.poll() is None else "")
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def finish(self) -> WorkerOutcome:
        """Reap the process and say how it ended."""
        returncode = self.process.wait()
        self._stderr_reader.join(timeout=2)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        outcome = classify_exit(returncode, self.killed_as, self.messages, list(self.stderr_tail), self.measured_s)
        if outcome.outcome == "hung":
            doing = PHASE_WORDS.get(self.phase, self.phase)
            message = (f"too little progress while {doing}: starved of CPU ({self.busy_while_quiet})"
                       if self.busy_while_quiet else f"no progress while {doing}")
            outcome = dataclasses.replace(outcome, message=message)
        return dataclasses.replace(outcome, lifetime_s=round(self.lifetime_s, 3))


def classify_exit(returncode: int, killed_as: str, messages: list[dict[str, Any]], stderr_tail: list[str],
                  measured_s: float) -> WorkerOutcome:
    """ok, crashed (signal), hung, error (Python exception) or interrupted, from how a worker ended."""
    last_line = stderr_tail[-1] if stderr_tail else None
    errors = [m["message"] for m in messages if m.get("type") == "error"]
    if killed_as:
        return WorkerOutcome(killed_as, stderr_tail=last_line, message=errors[0] if errors else None,
                             measured_s=measured_s)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        return WorkerOutcome("crashed", signal=name, stderr_tail=last_line, measured_s=measured_s)
    if returncode == 0 and not errors and any(m.get("type") == "done" for m in messages):
        return WorkerOutcome("ok", measured_s=measured_s)
    message = errors[0] if errors else (last_line or f"worker exited with status {returncode}")
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


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used (all its threads), from /proc; None where there is none."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def busy_while_quiet(worker: "WorkerProcess", now: float) -> str:
    """A worker that finished nothing for the hang timeout: "" when it sat idle (stuck in calls: a hang), else
    how busy it was on the CPU (too many threads for the CPUs: it is starved, not stuck)."""
    used = cpu_seconds(worker.process.pid)
    if worker.quiet_since is None or used is None:
        return ""
    since, before = worker.quiet_since
    window = max(now - since, 1e-3)
    busy = used - before
    if busy < max(0.05, 0.01 * window):  # blocked threads use next to no CPU
        return ""
    return f"{busy:.2f} s of CPU in the last {window:.1f} s, yet no operation finished"


class Stats(Protocol):
    """What the runner needs of the object that merges a run's snapshots."""

    errors: collections.Counter

    def add_snapshot(self, snapshot: dict[str, Any]) -> None: ...

    def ok_ops(self) -> int: ...


class FaultDriver(Protocol):
    """Something the parent does to the server while the workers load (check-stale's faults)."""

    def poll(self, workers: list["WorkerProcess"]) -> None: ...


class Run:
    """One run in progress: the workers, the merged stats and the watchdog."""

    def __init__(self, plan: RunPlan, listener: RunListener, stats: Stats, driver: FaultDriver | None = None) -> None:
        self.plan = plan
        self.driver = driver
        self.listener = listener
        self.stats = stats
        self.events: queue.Queue = queue.Queue()
        self.workers: list[WorkerProcess] = []
        self.phases_seen: set[str] = set()
        self.measure_started: float | None = None
        self.rate = _Rate(collections.deque())

    def spawn(self) -> None:
        for index in range(self.plan.processes):
            self.workers.append(WorkerProcess(WorkerPlan(self.plan, index), self.events))

    def handle(self, worker: WorkerProcess, message: dict[str, Any] | None) -> None:
        if message is None:
            worker.stdout_closed = True
            worker.lifetime_s = time.monotonic() - worker.started
            return
        kind = message.get("type")
        if kind == "snapshot":
            self.stats.add_snapshot(message)
            worker.measured_s = min(max(worker.measured_s, message.get("t_s", 0.0)), self.plan.duration_s)
            if message["completed"]:
                worker.last_progress, worker.quiet_since = time.monotonic(), None
            return
        if kind == "pool":  # the strategy's pool now: for live metrics, not kept
            note = getattr(self.stats, "pool_state", None)
            if note is not None:
                note(worker.index, message)
            return
        worker.last_progress, worker.quiet_since = time.monotonic(), None  # any other message is a step forward
        worker.messages.append(message)
        if kind == "ready":
            worker.ready = True
        elif kind == "phase":
            worker.phase = message["phase"]
            self._announce(message["phase"])

    def _announce(self, phase: str) -> None:
        """Tell the listener of a phase once per run, not once per worker."""
        if phase in self.phases_seen:
            return
        self.phases_seen.add(phase)
        if phase == "measure":
            self.measure_started = time.monotonic()
        self.listener.phase(self.plan, phase)

    def release_ready_workers(self) -> None:
        """Start every worker's load at once, when all have filled their share of the key space, and not before
        the plan's `go_at_unix` (slept to when it is that near: the pump's wait would make it late)."""
        if all(w.ready or w.stdout_closed for w in self.workers):
            wait_s = self.plan.go_at_unix - time.time()
            if wait_s > GO_SLEEP_S:
                return
            if wait_s > 0:
                time.sleep(wait_s)
            for worker in self.workers:
                if worker.ready and not worker.released:
                    worker.released = True
                    worker.send(b"go\n")

    def watchdog(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.stdout_closed:
                continue
            if worker.ready and not worker.released:  # waiting for its `go`: the parent holds it, it is not hung
                worker.last_progress = now
            if worker.process.poll() is not None:
                worker.exited_at = worker.exited_at or now
                if now - worker.exited_at > EXIT_GRACE_S:  # a leftover child holds its output open
                    worker.kill("")
                    worker.stdout_closed = True
                    worker.lifetime_s = worker.exited_at - worker.started
            elif now - worker.last_progress > self.plan.hang_timeout_s:
                worker.busy_while_quiet = busy_while_quiet(worker, now)
                worker.kill("hung")
            elif now - worker.last_progress > self.plan.hang_timeout_s / 2 and worker.quiet_since is None:
                worker.quiet_since = (now, cpu_seconds(worker.process.pid) or 0.0)

    def tick(self) -> None:
        now = time.monotonic()
        ops = self.stats.ok_ops()
        elapsed = now - self.measure_started if self.measure_started else 0.0
        self.listener.tick(self.plan, elapsed, ops, self.rate.update(now, ops), sum(self.stats.errors.values()))

    def pump(self, interrupt: InterruptFlag) -> None:
        """Handle events until every worker's output has closed."""
        next_tick = 0.0
        wait_s = 0.1 if self.driver is None else 0.01  # a fault is timed to within ten milliseconds
        while not all(w.stdout_closed for w in self.workers):
            interrupt.check()
            try:
                self.handle(*self.events.get(timeout=wait_s))
            except queue.Empty:
                pass
            self.release_ready_workers()
            if self.driver is not None:
                self.driver.poll(self.workers)
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

def run_workers(plan: RunPlan, listener: RunListener, stats: Stats,
                driver: FaultDriver | None = None) -> tuple[tuple[WorkerOutcome, ...], bool]:
    """Run the plan's workers to their end, or until Ctrl-C; returns how each ended and whether interrupted.

    `stats` receives every snapshot, so what was measured before a crash, a hang or Ctrl-C is kept.
    Interrupted means Ctrl-C cut a worker short (its outcome says so; a Ctrl-C before any started gives one
    `interrupted` outcome): a run whose workers had all finished is whole, and stays as it ended.
    `driver`, polled from this (the main) thread while the workers run, injects faults.
    """
    run = Run(plan, listener, stats, driver)
    interrupted = False
    flag = InterruptFlag()
    try:
        with flag:
            flag.check()  # a Ctrl-C before this run: no worker is started
            run.spawn()
            flag.check()
            run.pump(flag)
    except KeyboardInterrupt:
        ignore_further_interrupts()
        interrupted = True
        for worker in run.workers:
            worker.kill("interrupted")
        run.drain(timeout_s=2.0)
    except BaseException:
        for worker in run.workers:
            worker.kill("error")
        raise
    outcomes = tuple(worker.finish() for worker in run.workers)
    if interrupted and not outcomes:
        outcomes = (WorkerOutcome("interrupted", message="interrupted before its workers started"),)
    return outcomes, interrupted and any(outcome.outcome == "interrupted" for outcome in outcomes)
