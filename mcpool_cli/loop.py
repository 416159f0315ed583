"""The load loop each worker thread runs: acquire a client, do one op, time it, check it."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from mcpool_cli.strategies import Strategy
from mcpool_cli.workload import GET, SCHEDULE_LENGTH, KeySpace, classify_get

MAX_EXAMPLES = 5
URGENT_FLUSH_NS = 5_000_000  # evidence of a race is shipped within 5 ms: the process may die right after


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


@dataclass(frozen=True)
class LoopTiming:
    """Times on the perf_counter_ns clock: counting starts at measure_start_ns, the loop stops at end_ns."""

    measure_start_ns: int
    end_ns: int
    flush_interval_ns: int


def _record_anomaly(batch: Batch, verdict: str, key: str, got: Any) -> None:
    if verdict == "miss":
        batch.misses += 1
        return
    if verdict == "wrong":
        batch.wrong_values += 1
    else:
        batch.corrupt_values += 1
    if len(batch.examples) < MAX_EXAMPLES:
        shown = got[:60] if isinstance(got, (bytes, str)) else got
        batch.examples.append({"key": key, "kind": verdict, "got": repr(shown)})


def _count_error(batch: Batch, exc: BaseException) -> None:
    name = type(exc).__name__
    batch.errors[name] = batch.errors.get(name, 0) + 1


def _reserve(strategy: Strategy, batch: Batch, end_ns: int) -> tuple[Any, Any]:
    """(lease, client): a pool that is exhausted (queue.Empty) is counted, then waited for."""
    try:
        lease = strategy.reserve()
        return lease, lease.__enter__()
    except queue.Empty:
        batch.exhausted += 1
        lease = strategy.reserve_waiting(end_ns)
        return lease, lease.__enter__()


def run_load(strategy: Strategy, space: KeySpace, schedule: list[tuple[int, int]], ttl_s: int,
             timing: LoopTiming, sink: Callable[[Batch], None]) -> None:
    """Run ops until `timing.end_ns`, handing a Batch to `sink` every flush interval and at the end.

    This is the hot path, kept in one function on purpose: under GIL contention every extra call or
    attribute look-up per op costs measurable throughput, so it uses locals and bound appends, no lock,
    one perf_counter_ns per timestamp. Acquire time runs from the moment the op was due (today the moment
    the loop reached it; a fixed-rate pacer would set `due` to the intended start) to a client in hand; op
    latency from a client in hand to the reply. Failed ops are counted, not timed.
    """
    steps = [(op, space.keys[index], space.values[index]) for op, index in schedule]
    mask = SCHEDULE_LENGTH - 1
    measure_start, end, interval = timing.measure_start_ns, timing.end_ns, timing.flush_interval_ns
    fixed = strategy.thread_client()
    lease = client = fixed
    batch = Batch()
    record_acquire, record = batch.acquire_ns.append, (batch.get_ns.append, batch.set_ns.append)
    next_flush = perf_counter_ns() + interval
    n = flushed_at = 0
    try:
        while True:
            due = perf_counter_ns()
            if due >= end:
                break
            op, key, value = steps[n & mask]
            n += 1
            if fixed is None:
                try:
                    lease, client = _reserve(strategy, batch, end)
                except Exception as exc:  # a pool that cannot lend is an error of this op, not of the run
                    if isinstance(exc, queue.Empty) and perf_counter_ns() >= end:
                        # the wait was real, even if the op never ran: its measured part is an acquire time
                        record_acquire(perf_counter_ns() - max(due, measure_start))
                        n -= 1
                        break  # waited for a client until the run ended: not an error
                    _count_failure(batch, exc, op, due >= measure_start)
                    continue
            acquired = perf_counter_ns()
            try:
                if op == GET:
                    got = client.get(key)
                else:
                    got = value
                    client.set(key, value, ttl_s)
            except Exception as exc:
                done = perf_counter_ns()
                if fixed is None:
                    _release_after_error(lease, exc, batch)
                _count_failure(batch, exc, op, due >= measure_start)
                next_flush = min(next_flush, done + URGENT_FLUSH_NS)
            else:
                done = perf_counter_ns()
                if fixed is None:
                    _release(lease, batch)
                if due >= measure_start:
                    record_acquire(acquired - due)
                    record[op](done - acquired)
                if got != value:
                    _record_anomaly(batch, classify_get(key, value, got), key, got)
                    next_flush = min(next_flush, done + URGENT_FLUSH_NS)
            if done >= next_flush:
                batch.completed, flushed_at = n - flushed_at, n
                sink(batch)
                batch = Batch()
                record_acquire, record = batch.acquire_ns.append, (batch.get_ns.append, batch.set_ns.append)
                next_flush = done + interval
    finally:  # what was measured reaches the parent even if a strategy kills the thread
        batch.completed = n - flushed_at
        sink(batch)


def _count_failure(batch: Batch, exc: BaseException, op: int, measured: bool) -> None:
    _count_error(batch, exc)
    if measured:
        batch.failed[op] += 1


def _release(lease: Any, batch: Batch) -> None:
    """Give a client back; a pool that fails to take it back is an error, not the end of the thread."""
    try:
        lease.__exit__(None, None, None)
    except Exception as exc:
        _count_error(batch, exc)


def _release_after_error(lease: Any, exc: BaseException, batch: Batch) -> None:
    """Give the lease the op's exception, as a `with` block would; a pool may re-raise it."""
    try:
        lease.__exit__(type(exc), exc, exc.__traceback__)
    except Exception as again:
        if again is not exc:
            _count_error(batch, again)
