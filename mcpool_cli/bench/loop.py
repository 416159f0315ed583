"""The load loop each worker thread runs: acquire a client, do one op, time it, check it.

This is the hot path. Under GIL contention every extra call, attribute look-up or clock read per op costs
measurable throughput (the benchmark against a bare pylibmc loop shows it), so the loops below use locals
and bound methods, take no lock, and leave everything rare (errors, anomalies, flushing, the warm-up
boundary) to the `Recorder`. get and set come first in each loop's dispatch; delete and get_multi, the
rarer ops of an op mix, come after them.

Every op leaves `got == value` when it went right: a get returns the value, a set and a delete are taken
as done, and a get_multi's `value` is the dict of the values it must return (its `key`, the list of keys).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from mcpool_cli.engine.histograms import decode_ns, encode_ns, encode_ns_ascii
from mcpool_cli.engine.plan import WorkerPlan
from mcpool_cli.engine.strategies import Strategy
from mcpool_cli.engine.worker import Emitter, Prepared, drain_all, prepare_key_space, start_load_threads
from mcpool_cli.engine.workload import (DELETE, GET, GET_MULTI, OP_NAMES, SCHEDULE_LENGTH, SET, KeySpace,
                                        build_schedule, classify_get, multi_keys)

MAX_EXAMPLES = 5
URGENT_FLUSH_NS = 5_000_000  # evidence of a race is shipped within 5 ms: the process may die right after
MASK = SCHEDULE_LENGTH - 1


@dataclass
class Batch:
    """What one thread measured since its last flush; owned by that thread until put on the sink."""

    completed: int = 0  # every finished op, warm-up included: the watchdog's progress signal
    get_ns: list[int] = field(default_factory=list)  # latency of measured, successful gets
    set_ns: list[int] = field(default_factory=list)
    delete_ns: list[int] = field(default_factory=list)
    get_multi_ns: list[int] = field(default_factory=list)
    acquire_ns: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # measured failed ops by op code
    errors: dict[str, int] = field(default_factory=dict)
    wrong_values: int = 0
    corrupt_values: int = 0
    misses: int = 0
    exhausted: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)
    misses_expected: bool = False  # the mix deletes keys, so a miss is no sign of trouble

    @property
    def has_anomalies(self) -> bool:
        """Something the parent must see at once (the process may die right after)."""
        misses = self.misses and not self.misses_expected
        return bool(self.errors or self.wrong_values or self.corrupt_values or misses)

    def forget_timings(self) -> None:
        """Warm-up: keep the counts of what went wrong, drop latencies and measured-op counts."""
        for latencies in (self.get_ns, self.set_ns, self.delete_ns, self.get_multi_ns, self.acquire_ns):
            latencies.clear()
        self.failed = [0] * len(self.failed)

    def to_message(self, elapsed_s: float) -> dict[str, Any]:
        """The snapshot message that carries this batch to the parent; `t_s` is the time measured so far."""
        lat_ns = {name: encode_ns(values) for name, values in self.latencies().items()}
        return {**self._counts(elapsed_s), "lat_ns": lat_ns}

    def to_line(self, elapsed_s: float) -> bytes:
        """`to_message` as one JSON line, with the base64 latencies put in as they are.

        They are most of a snapshot's bytes, and json.dumps would scan them for characters to escape (base64
        has none) under the worker's GIL, where the load threads wait: this halves the main thread's work.
        """
        blobs = b",".join(b'"%s":"%s"' % (name.encode(), encode_ns_ascii(values))
                          for name, values in self.latencies().items())
        head = json.dumps(self._counts(elapsed_s), separators=(",", ":")).encode()
        return head[:-1] + b',"lat_ns":{' + blobs + b"}}\n"

    def _counts(self, elapsed_s: float) -> dict[str, Any]:
        """The snapshot message but its latencies."""
        return {
            "type": "snapshot", "t_s": round(elapsed_s, 4), "completed": self.completed,
            "failed": dict(zip(OP_NAMES, self.failed)),
            "errors": self.errors, "wrong_values": self.wrong_values, "corrupt_values": self.corrupt_values,
            "misses": self.misses, "exhausted": self.exhausted, "examples": self.examples,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "Batch":
        """A batch as a worker sent it; latencies as arrays of ns (cheap to hold until they are folded)."""
        lat_ns = {name: decode_ns(message["lat_ns"].get(name, "")) for name in (*OP_NAMES, "acquire")}
        return cls(completed=message["completed"], get_ns=lat_ns["get"], set_ns=lat_ns["set"],
                   delete_ns=lat_ns["delete"], get_multi_ns=lat_ns["get_multi"], acquire_ns=lat_ns["acquire"],
                   failed=[message["failed"].get(name, 0) for name in OP_NAMES], errors=dict(message["errors"]),
                   wrong_values=message["wrong_values"], corrupt_values=message["corrupt_values"],
                   misses=message["misses"], exhausted=message["exhausted"], examples=list(message["examples"]))

    def latencies(self) -> dict[str, Any]:
        """Latencies by histogram name: each op's, and acquire."""
        return {"get": self.get_ns, "set": self.set_ns, "delete": self.delete_ns, "get_multi": self.get_multi_ns,
                "acquire": self.acquire_ns}


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

    `op_codes` is how many op codes the loop runs: 2 (get, set) keeps a get/set run's batches as they
    were; 4 adds delete and get_multi. With deletes, misses are expected and never flushed urgently.
    """

    def __init__(self, timing: LoopTiming, sink: Callable[[Batch], None], op_codes: int = 2,
                 misses_expected: bool = False) -> None:
        self.timing = timing
        self.sink = sink
        self.op_codes = op_codes
        self.misses_expected = misses_expected
        self.batch = self.new_batch()
        self.measuring = perf_counter_ns() >= timing.measure_start_ns
        self.flushed_at = 0

    def new_batch(self) -> Batch:
        return Batch(failed=[0] * self.op_codes, misses_expected=self.misses_expected)

    def appenders(self) -> tuple[tuple[Callable[[int], None], ...], Callable[[int], None]]:
        """Bound appends of the current batch: latency by op code (get, set, delete, get_multi) and acquire
        time."""
        batch = self.batch
        return ((batch.get_ns.append, batch.set_ns.append, batch.delete_ns.append, batch.get_multi_ns.append),
                batch.acquire_ns.append)

    def next_flush(self, now: int) -> int:
        due = now + self.timing.flush_interval_ns
        return due if self.measuring else min(due, self.timing.measure_start_ns)

    def flush(self, now: int, completed: int) -> int:
        """Ship the batch and start a new one; returns when the next flush is due."""
        batch, self.batch = self.batch, self.new_batch()
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

    def anomaly(self, key: Any, expected: Any, got: Any, now: int, next_flush: int) -> int:
        """Count a reply that was not the expected value; returns when the next flush is due.

        For a get_multi, `key` is its list of keys, `expected` the dict of their values and `got` its reply.
        """
        if isinstance(expected, dict) and isinstance(got, dict):
            verdicts = [self.check(one, value, got.get(one)) for one, value in expected.items()]
        elif isinstance(expected, dict):  # not a reply a get_multi can give: corrupt
            verdicts = [self.check(key[0], expected[key[0]], got if got is not None else b"")]
        else:
            verdicts = [self.check(key, expected, got)]
        if self.misses_expected and all(verdict in ("ok", "miss") for verdict in verdicts):
            return next_flush
        return min(next_flush, now + URGENT_FLUSH_NS)

    def check(self, key: str, expected: bytes, got: Any) -> str:
        """Classify and count one key's reply."""
        verdict, batch = classify_get(key, expected, got), self.batch
        if verdict == "miss":
            batch.misses += 1
        elif verdict != "ok":
            batch.wrong_values += verdict == "wrong"
            batch.corrupt_values += verdict != "wrong"
            if len(batch.examples) < MAX_EXAMPLES:
                shown = got[:60] if isinstance(got, (bytes, str)) else got
                batch.examples.append({"key": key, "kind": verdict, "got": repr(shown)})
        return verdict

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
    steps, ops = build_steps(space, schedule), {op for op, _ in schedule}
    recorder = Recorder(timing, sink, op_codes=2 if ops <= {GET, SET} else 4, misses_expected=DELETE in ops)
    fixed = strategy.thread_client()
    if fixed is None:
        _pooled_loop(strategy, steps, ttl_s, recorder)
    else:
        _fixed_loop(fixed, steps, ttl_s, recorder)


def build_steps(space: KeySpace, schedule: list[tuple[int, int]]) -> list[tuple[int, Any, Any]]:
    """(op code, key, expected value) for each step; a get_multi's are its list of keys and the dict of their
    values, so the loop compares its reply as it compares a get's."""
    steps: list[tuple[int, Any, Any]] = []
    for op, index in schedule:
        if op == GET_MULTI:
            chosen = multi_keys(index, len(space.keys))
            steps.append((op, [space.keys[i] for i in chosen], {space.keys[i]: space.values[i] for i in chosen}))
        else:
            steps.append((op, space.keys[index], space.values[index]))
    return steps


def _fixed_loop(client: Any, steps: list[tuple[int, Any, Any]], ttl_s: int, recorder: Recorder) -> None:
    """A thread that keeps one client for its life (shared, per-thread): nothing to acquire per op."""
    get, set_ = client.get, client.set  # bound once: the rarer ops look theirs up per call
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
                elif op == SET:
                    set_(key, value, ttl_s)
                    got = value
                elif op == GET_MULTI:
                    got = client.get_multi(key)
                else:  # delete: a key already gone is no error, another thread may have deleted it
                    client.delete(key)
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


def _pooled_loop(strategy: Strategy, steps: list[tuple[int, Any, Any]], ttl_s: int, recorder: Recorder) -> None:
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
                elif op == SET:
                    client.set(key, value, ttl_s)
                    got = value
                elif op == GET_MULTI:
                    got = client.get_multi(key)
                else:  # delete: a key already gone is no error, another thread may have deleted it
                    client.delete(key)
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


# ---------------------------------------------------------------- the worker process around the loops


def merge_batches(batches: list[Batch]) -> Batch:
    """One Batch holding the sum of several."""
    total = Batch()
    for batch in batches:
        total.completed += batch.completed
        total.get_ns += batch.get_ns
        total.set_ns += batch.set_ns
        total.delete_ns += batch.delete_ns
        total.get_multi_ns += batch.get_multi_ns
        total.acquire_ns += batch.acquire_ns
        total.failed = [a + b for a, b in zip(total.failed, batch.failed)]
        for name, count in batch.errors.items():
            total.errors[name] = total.errors.get(name, 0) + count
        total.wrong_values += batch.wrong_values
        total.corrupt_values += batch.corrupt_values
        total.misses += batch.misses
        total.exhausted += batch.exhausted
        total.examples += batch.examples[: MAX_EXAMPLES - len(total.examples)]
    return total


def start_threads(plan: WorkerPlan, strategy: Any, space: KeySpace, timing: LoopTiming,
                  sink: Callable[[Batch], None], emitter: Emitter) -> list[threading.Thread]:
    run = plan.run

    def body_for(token: int) -> Callable[[], None]:
        schedule = build_schedule(run.workload, token)
        return lambda: run_load(strategy, space, schedule, run.workload.ttl_s, timing, sink)

    return start_load_threads(plan, strategy, emitter, body_for)


def urgent_sink(sink: queue.SimpleQueue, timing: LoopTiming, emitter: Emitter) -> Callable[[Batch], None]:
    """Batches with errors or wrong values go to the parent at once, from the load thread itself."""

    def put(batch: Batch) -> None:
        if batch.has_anomalies:
            emitter.send(batch.to_message((time.perf_counter_ns() - timing.measure_start_ns) / 1e9))
        else:
            sink.put(batch)

    return put


def drain(sink: queue.SimpleQueue) -> Batch:
    return merge_batches(drain_all(sink))


def stream_until_done(threads: list[threading.Thread], sink: queue.SimpleQueue, timing: LoopTiming,
                      interval_s: float, emitter: Emitter) -> None:
    """The worker's main thread: ship what the load threads measured, several times a second."""
    measuring = False
    while any(thread.is_alive() for thread in threads):
        time.sleep(interval_s)
        now = time.perf_counter_ns()
        if not measuring and now >= timing.measure_start_ns:
            measuring = True
            emitter.send({"type": "phase", "phase": "measure"})
        emitter.send_line(drain(sink).to_line((now - timing.measure_start_ns) / 1e9))
    now = time.perf_counter_ns()
    emitter.send_line(drain(sink).to_line((min(now, timing.end_ns) - timing.measure_start_ns) / 1e9))


def load(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Warm up, measure, stream; returns when every load thread has stopped."""
    run = plan.run
    emitter.send({"type": "phase", "phase": "warmup"})
    measure_start = time.perf_counter_ns() + int(run.warmup_s * 1e9)
    timing = LoopTiming(measure_start, measure_start + int(run.duration_s * 1e9),
                        int(run.snapshot_interval_s * 1e9 / 2))
    sink: queue.SimpleQueue = queue.SimpleQueue()
    threads = start_threads(plan, prepared.strategy, prepared.space, timing,
                            urgent_sink(sink, timing, emitter), emitter)
    stream_until_done(threads, sink, timing, run.snapshot_interval_s, emitter)
    prepared.strategy.close()


MODES = {"bench": (prepare_key_space, load)}
