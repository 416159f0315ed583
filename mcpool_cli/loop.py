"""The load loop each worker thread runs: acquire a client, do one op, time it, check it.

This is the hot path. Under GIL contention every extra call, attribute look-up or clock read per op costs
measurable throughput (the benchmark against a bare pylibmc loop shows it), so the loops below use locals
and bound methods, take no lock, and leave everything rare (errors, anomalies, flushing, the warm-up
boundary) to the `Recorder`.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from mcpool_cli.strategies import Strategy
from mcpool_cli.workload import GET, SCHEDULE_LENGTH, KeySpace, classify_get

MAX_EXAMPLES = 5
URGENT_FLUSH_NS = 5_000_000  # evidence of a race is shipped within 5 ms: the process may die right after
MASK = SCHEDULE_LENGTH - 1


@dataclass
class Batch:
    """What one thread measured since its last flush; owned by that thread until put on the sink."""

    completed: int = 0  # every finished op, warm-up included: the watchdog's progress signal
    get_ns: list[int] = field(default_factory=list)  # latency of measured, successful gets
    set_ns: list[int] = field(default_factory=list)
    acquire_ns: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=lambda: [0, 0])  # measured failed ops by op code
    errors: dict[str, int] = field(default_factory=dict)
    wrong_values: int = 0
    corrupt_values: int = 0
    misses: int = 0
    exhausted: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def has_anomalies(self) -> bool:
        return bool(self.errors or self.wrong_values or self.corrupt_values or self.misses)

    def forget_timings(self) -> None:
        """Warm-up: keep the counts of what went wrong, drop latencies and measured-op counts."""
        self.get_ns.clear()
        self.set_ns.clear()
        self.acquire_ns.clear()
        self.failed = [0, 0]


@dataclass(frozen=True)
class LoopTiming:
    """Times on the perf_counter_ns clock: counting starts at measure_start_ns, the loop stops at end_ns."""

    measure_start_ns: int
    end_ns: int
    flush_interval_ns: int


class Recorder:
    """The rare path of a load loop: errors, anomalies, and handing batches to the sink.

    Batches never straddle the start of measurement: the first flush falls due at `measure_start_ns`, and
    what was recorded before it is warm-up, whose timings are dropped. So the loops need no per-op check.
    """

    def __init__(self, timing: LoopTiming, sink: Callable[[Batch], None]) -> None:
        self.timing = timing
        self.sink = sink
        self.batch = Batch()
        self.measuring = perf_counter_ns() >= timing.measure_start_ns
        self.flushed_at = 0

    def appenders(self) -> tuple[tuple[Callable[[int], None], Callable[[int], None]], Callable[[int], None]]:
        """Bound appends of the current batch: (get, set) latency and acquire time."""
        batch = self.batch
        return (batch.get_ns.append, batch.set_ns.append), batch.acquire_ns.append

    def next_flush(self, now: int) -> int:
        due = now + self.timing.flush_interval_ns
        return due if self.measuring else min(due, self.timing.measure_start_ns)

    def flush(self, now: int, completed: int) -> int:
        """Ship the batch and start a new one; returns when the next flush is due."""
        batch, self.batch = self.batch, Batch()
        batch.completed, self.flushed_at = completed - self.flushed_at, completed
        if not self.measuring:
            batch.forget_timings()
            self.measuring = now >= self.timing.measure_start_ns
        self.sink(batch)
        return self.next_flush(now)

    def failure(self, exc: BaseException, op: int, now: int, next_flush: int) -> int:
        self.error(exc)
        self.batch.failed[op] += 1
        return min(next_flush, now + URGENT_FLUSH_NS)

    def error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.batch.errors[name] = self.batch.errors.get(name, 0) + 1

    def anomaly(self, key: str, expected: bytes, got: Any, now: int, next_flush: int) -> int:
        verdict, batch = classify_get(key, expected, got), self.batch
        if verdict == "miss":
            batch.misses += 1
        else:
            batch.wrong_values += verdict == "wrong"
            batch.corrupt_values += verdict != "wrong"
            if len(batch.examples) < MAX_EXAMPLES:
                shown = got[:60] if isinstance(got, (bytes, str)) else got
                batch.examples.append({"key": key, "kind": verdict, "got": repr(shown)})
        return min(next_flush, now + URGENT_FLUSH_NS)

    def reserve(self, strategy: Strategy, end_ns: int) -> tuple[Any, Any]:
        """(lease, client): a pool that is exhausted (queue.Empty) is counted, then waited for."""
        try:
            lease = strategy.reserve()
            return lease, lease.__enter__()
        except queue.Empty:
            self.batch.exhausted += 1
            lease = strategy.reserve_waiting(end_ns)
            return lease, lease.__enter__()

    def waited_until_end(self, due: int) -> None:
        """A reserve that waited until the run ended: the op never ran, but the measured part of the wait
        is an acquire time (a starved thread must show in the figures)."""
        if not self.measuring:
            self.batch.forget_timings()
            self.measuring = True
        self.batch.acquire_ns.append(perf_counter_ns() - max(due, self.timing.measure_start_ns))

    def release(self, lease: Any, exc: BaseException | None = None) -> None:
        """Give a client back, with the op's exception as a `with` block would; a pool may raise here."""
        try:
            if exc is None:
                lease.__exit__(None, None, None)
            else:
                lease.__exit__(type(exc), exc, exc.__traceback__)
        except Exception as again:
            if again is not exc:
                self.error(again)


def run_load(strategy: Strategy, space: KeySpace, schedule: list[tuple[int, int]], ttl_s: int,
             timing: LoopTiming, sink: Callable[[Batch], None]) -> None:
    """Run ops until `timing.end_ns`, handing a Batch to `sink` every flush interval and at the end.

    Op latency runs from a client in hand to the reply. Acquire time (pools only) runs from the moment the
    op was due — today the moment the loop reached it; a fixed-rate pacer would set `due` to the intended
    start — to a client in hand. Failed ops are counted, not timed.
    """
    steps = [(op, space.keys[index], space.values[index]) for op, index in schedule]
    recorder = Recorder(timing, sink)
    fixed = strategy.thread_client()
    if fixed is None:
        _pooled_loop(strategy, steps, ttl_s, recorder)
    else:
        _fixed_loop(fixed, steps, ttl_s, recorder)


def _fixed_loop(client: Any, steps: list[tuple[int, str, bytes]], ttl_s: int, recorder: Recorder) -> None:
    """A thread that keeps one client for its life (shared, per-thread): nothing to acquire per op."""
    get, set_ = client.get, client.set
    end = recorder.timing.end_ns
    record, _ = recorder.appenders()
    next_flush = recorder.next_flush(perf_counter_ns())
    n = 0
    try:
        while True:
            due = perf_counter_ns()
            if due >= end:
                break
            op, key, value = steps[n & MASK]
            n += 1
            try:
                if op == GET:
                    got = get(key)
                else:
                    set_(key, value, ttl_s)
                    got = value
            except Exception as exc:
                done = perf_counter_ns()
                next_flush = recorder.failure(exc, op, done, next_flush)
            else:
                done = perf_counter_ns()
                record[op](done - due)
                if got != value:
                    next_flush = recorder.anomaly(key, value, got, done, next_flush)
            if done >= next_flush:
                next_flush = recorder.flush(done, n)
                record, _ = recorder.appenders()
    finally:  # what was measured reaches the parent even if the thread dies
        recorder.flush(perf_counter_ns(), n)


def _pooled_loop(strategy: Strategy, steps: list[tuple[int, str, bytes]], ttl_s: int, recorder: Recorder) -> None:
    """A thread that reserves a client from the strategy for every op, and times the reserve."""
    end = recorder.timing.end_ns
    record, record_acquire = recorder.appenders()
    next_flush = recorder.next_flush(perf_counter_ns())
    n = 0
    try:
        while True:
            due = perf_counter_ns()
            if due >= end:
                break
            op, key, value = steps[n & MASK]
            n += 1
            try:
                lease, client = recorder.reserve(strategy, end)
            except Exception as exc:  # a pool that cannot lend is an error of this op, not of the run
                if isinstance(exc, queue.Empty) and perf_counter_ns() >= end:
                    recorder.waited_until_end(due)
                    n -= 1
                    break
                next_flush = recorder.failure(exc, op, perf_counter_ns(), next_flush)
                continue
            acquired = perf_counter_ns()
            try:
                if op == GET:
                    got = client.get(key)
                else:
                    client.set(key, value, ttl_s)
                    got = value
            except Exception as exc:
                done = perf_counter_ns()
                recorder.release(lease, exc)
                next_flush = recorder.failure(exc, op, done, next_flush)
            else:
                done = perf_counter_ns()
                recorder.release(lease)
                record_acquire(acquired - due)
                record[op](done - acquired)
                if got != value:
                    next_flush = recorder.anomaly(key, value, got, done, next_flush)
            if done >= next_flush:
                next_flush = recorder.flush(done, n)
                record, record_acquire = recorder.appenders()
    finally:  # what was measured reaches the parent even if the thread dies
        recorder.flush(perf_counter_ns(), n)
