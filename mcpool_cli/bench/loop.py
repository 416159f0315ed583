"""The load loop each worker thread runs: acquire a client, do one op, time it, check it.

This is the hot path. Under GIL contention every extra call, attribute look-up or clock read per op costs
measurable throughput (the benchmark against a bare pylibmc loop shows it), so the loops below use locals
and bound methods, take no lock, and leave everything rare (errors, anomalies, flushing, the warm-up
boundary) to the `Recorder`. get and set come first in each loop's dispatch; delete and get_multi, the
rarer ops of an op mix, come after them.

Every op leaves `got == value` when it went right: a get returns the value, a set and a delete are taken
as done, and a get_multi's `value` is the dict of the values it must return (its `key`, the list of keys).

Two models, one loop per kind of strategy:
- closed (no `gaps`): each op starts when the last one returned. Op latency runs from a client in hand to
  the reply; acquire time from the moment the loop reached the op to a client in hand.
- open (`gaps`, from the pacer): each op has an intended start. Latency runs from that intended start to
  the reply (it includes waiting for a client and any backlog: what a request arriving then would see);
  the `sent` lists hold the same ops timed from the moment each was actually sent (uncorrected), and `late`
  how late each op started. A late op starts as soon as it can, never skipped.

Batches follow a grid of slots (`LoopTiming.slot_ns`, counted from the start of measurement): a thread
flushes at each slot boundary, and an op is recorded in the slot in which it completed, so the parent can
file every batch under one interval of the run's timeline.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from mcpool_cli.engine.histograms import decode_ns, encode_ns_ascii
from mcpool_cli.engine.pacing import GAP_MASK, first_due, gap_cycle, lower_timer_slack, still_due
from mcpool_cli.engine.plan import WorkerPlan
from mcpool_cli.engine.strategies import Strategy
from mcpool_cli.engine.worker import Emitter, Prepared, drain_all, prepare_key_space, start_load_threads
from mcpool_cli.engine.workload import (DELETE, GET, GET_MULTI, OP_NAMES, SCHEDULE_LENGTH, SET, KeySpace,
                                        build_schedule, classify_get, multi_keys)

MAX_EXAMPLES = 5
URGENT_FLUSH_NS = 5_000_000  # evidence of a race is shipped within 5 ms: the process may die right after
MASK = SCHEDULE_LENGTH - 1
ACQUIRE = len(OP_NAMES)  # the index of acquire times after the op codes
TIMED = (*OP_NAMES, "acquire")  # what the latency lists hold, by index
SITES = ("reserve", "op", "release")  # where an error was raised: the pool lending, the op, giving back
RESERVE_FAILED_PAUSE_S = 0.001  # closed loop: a pool that cannot lend is not retried at full speed
FAILED = object()  # `got` of an op that raised
MAX_SLOT_S = 0.125  # a thread flushes at least this often


def slot_grid(interval_s: float) -> tuple[int, int]:
    """(slot length in ns, slots per interval): slots of at most MAX_SLOT_S that tile one interval."""
    per_interval = max(1, -int(-interval_s // MAX_SLOT_S))
    return int(interval_s * 1e9) // per_interval, per_interval


@dataclass
class Batch:
    """What one thread measured in one slot since its last flush; owned by that thread until put on the sink."""

    slot: int = 0  # the grid slot of the measured window it belongs to (negative: warm-up)
    completed: int = 0  # every finished op, warm-up included: the watchdog's progress signal
    get_ns: list[int] = field(default_factory=list)  # latency of measured, successful gets
    set_ns: list[int] = field(default_factory=list)
    delete_ns: list[int] = field(default_factory=list)
    get_multi_ns: list[int] = field(default_factory=list)
    acquire_ns: list[int] = field(default_factory=list)
    sent: list[list[int]] = field(default_factory=list)  # open model: the same, from the moment sent (by TIMED)
    late_ns: list[int] = field(default_factory=list)  # open model: how late each measured op started
    failed: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # measured failed ops by op code
    errors: dict[str, int] = field(default_factory=dict)  # by class, wherever raised
    site_errors: dict[str, dict[str, int]] = field(default_factory=dict)  # reserve and release only: by class
    wrong_values: int = 0
    corrupt_values: int = 0
    misses: int = 0
    exhausted: int = 0
    due_at_end: int = 0  # open model: ops due before the end that never started
    examples: list[dict[str, str]] = field(default_factory=list)
    misses_expected: bool = False  # the mix deletes keys, so a miss is no sign of trouble

    @property
    def has_anomalies(self) -> bool:
        """Something the parent must see at once (the process may die right after)."""
        misses = self.misses and not self.misses_expected
        return bool(self.errors or self.wrong_values or self.corrupt_values or misses)

    def forget_timings(self) -> None:
        """Warm-up: keep the counts of what went wrong, drop latencies and measured-op counts."""
        for latencies in (*self.latencies().values(), *self.sent, self.late_ns):
            latencies.clear()
        self.failed = [0] * len(self.failed)
        self.due_at_end = 0

    def to_message(self, elapsed_s: float, t0_unix: float = 0.0) -> dict[str, Any]:
        """The snapshot message that carries this batch to the parent; `t_s` is the time measured so far, and
        `t0_unix` when measuring started, on the wall clock."""
        return json.loads(self.to_line(elapsed_s, t0_unix))

    def to_line(self, elapsed_s: float, t0_unix: float = 0.0) -> bytes:
        """The snapshot message as one JSON line, with the base64 latencies put in as they are.

        They are most of a snapshot's bytes, and json.dumps would scan them for characters to escape (base64
        has none) under the worker's GIL, where the load threads wait: this halves the main thread's work.
        """
        counts = {
            "type": "snapshot", "t_s": round(elapsed_s, 4), "t0_unix": round(t0_unix, 6), "slot": self.slot,
            "completed": self.completed, "failed": dict(zip(OP_NAMES, self.failed)),
            "errors": self.errors, "site_errors": self.site_errors, "wrong_values": self.wrong_values,
            "corrupt_values": self.corrupt_values, "misses": self.misses, "exhausted": self.exhausted,
            "examples": self.examples,
        }
        blobs = [b'"lat_ns":' + _blobs(self.latencies().items())]
        if self.sent:
            counts["due_at_end"] = self.due_at_end
            blobs += [b'"sent_ns":' + _blobs(zip(TIMED, self.sent)), b'"late_ns":"%s"' % encode_ns_ascii(self.late_ns)]
        head = json.dumps(counts, separators=(",", ":")).encode()
        return head[:-1] + b"," + b",".join(blobs) + b"}\n"

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "Batch":
        """A batch as a worker sent it; latencies as arrays of ns (cheap to hold until they are folded)."""
        lat_ns = {name: decode_ns(message["lat_ns"].get(name, "")) for name in TIMED}
        sent = message.get("sent_ns")
        return cls(slot=message.get("slot", 0), completed=message["completed"], get_ns=lat_ns["get"],
                   set_ns=lat_ns["set"], delete_ns=lat_ns["delete"], get_multi_ns=lat_ns["get_multi"],
                   acquire_ns=lat_ns["acquire"],
                   sent=[decode_ns(sent.get(name, "")) for name in TIMED] if sent else [],
                   late_ns=decode_ns(message.get("late_ns", "")), due_at_end=message.get("due_at_end", 0),
                   failed=[message["failed"].get(name, 0) for name in OP_NAMES], errors=dict(message["errors"]),
                   site_errors={site: dict(by_name) for site, by_name in message.get("site_errors", {}).items()},
                   wrong_values=message["wrong_values"], corrupt_values=message["corrupt_values"],
                   misses=message["misses"], exhausted=message["exhausted"], examples=list(message["examples"]))

    def latencies(self) -> dict[str, Any]:
        """Latencies by histogram name: each op's, and acquire (from the intended start, in the open model)."""
        return {"get": self.get_ns, "set": self.set_ns, "delete": self.delete_ns, "get_multi": self.get_multi_ns,
                "acquire": self.acquire_ns}


def _blobs(named: Any) -> bytes:
    """A JSON object of base64 latency arrays by name, built as bytes (no escaping needed)."""
    return b"{" + b",".join(b'"%s":"%s"' % (name.encode(), encode_ns_ascii(values)) for name, values in named) + b"}"


@dataclass(frozen=True)
class LoopTiming:
    """Times on the perf_counter_ns clock: counting starts at measure_start_ns, the loop stops at end_ns.

    Threads flush at each boundary of a grid of `slot_ns` slots that starts at measure_start_ns.
    """

    measure_start_ns: int
    end_ns: int
    slot_ns: int
    measure_start_unix: float = 0.0  # the same moment on the wall clock (the timeline's origin in logs)

    def slot_of(self, now: int) -> int:
        return (now - self.measure_start_ns) // self.slot_ns

    def filed_under(self, now: int) -> int:
        """The slot a batch started at `now` is filed under: after the end, the last one of the window."""
        return self.slot_of(min(now, self.end_ns - 1))

    def slot_end(self, now: int) -> int:
        return self.measure_start_ns + (self.slot_of(now) + 1) * self.slot_ns


class Recorder:
    """The rare path of a load loop: errors, anomalies, and handing batches to the sink.

    Batches never straddle a slot boundary, and the first boundary is the start of measurement: what was
    recorded before it is warm-up, whose timings are dropped. So the loops need no per-op check.

    `op_codes` is how many op codes the loop runs: 2 (get, set) keeps a get/set run's batches as they
    were; 4 adds delete and get_multi. With deletes, misses are expected and never flushed urgently.
    `paced` batches also carry the uncorrected latencies and the lateness of the open model.
    """

    def __init__(self, timing: LoopTiming, sink: Callable[[Batch], None], op_codes: int = 2,
                 misses_expected: bool = False, paced: bool = False, now: int | None = None) -> None:
        self.timing = timing
        self.sink = sink
        self.op_codes = op_codes
        self.misses_expected = misses_expected
        self.paced = paced
        self.batch = self.new_batch(perf_counter_ns() if now is None else now)
        self.flushed_at = 0

    def new_batch(self, now: int) -> Batch:
        """A batch for the slot of `now`; an op that completes after the end belongs to the last slot."""
        return Batch(slot=self.timing.filed_under(now), failed=[0] * self.op_codes,
                     misses_expected=self.misses_expected,
                     sent=[[] for _ in TIMED] if self.paced else [])

    def appenders(self) -> tuple[tuple[Callable[[int], None], ...], Callable[[int], None]]:
        """Bound appends of the current batch: latency by op code (get, set, delete, get_multi) and acquire
        time."""
        batch = self.batch
        return ((batch.get_ns.append, batch.set_ns.append, batch.delete_ns.append, batch.get_multi_ns.append),
                batch.acquire_ns.append)

    def paced_appenders(self) -> tuple[tuple[Callable[[int], None], ...], Callable[[int], None]]:
        """Bound appends of the open model: uncorrected latency by TIMED index, and lateness."""
        batch = self.batch
        return tuple(values.append for values in batch.sent), batch.late_ns.append

    def next_flush(self, now: int) -> int:
        return self.timing.slot_end(now)

    def flush(self, now: int, completed: int) -> int:
        """Ship the batch and start a new one in the slot of `now`; returns when the next flush is due."""
        batch, self.batch = self.batch, self.new_batch(now)
        batch.completed, self.flushed_at = completed - self.flushed_at, completed
        if batch.slot < 0:
            batch.forget_timings()
        self.sink(batch)
        return self.next_flush(now)

    def failure(self, exc: BaseException, op: int, now: int, next_flush: int, site: str = "op") -> int:
        self.error(exc, site)
        self.batch.failed[op] += 1
        return min(next_flush, now + URGENT_FLUSH_NS)

    def error(self, exc: BaseException, site: str = "op") -> None:
        name = type(exc).__name__
        self.batch.errors[name] = self.batch.errors.get(name, 0) + 1
        if site != "op":
            by_name = self.batch.site_errors.setdefault(site, {})
            by_name[name] = by_name.get(name, 0) + 1

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
        now = perf_counter_ns()
        if self.batch.slot < 0:  # waiting since the warm-up: what it held was warm-up
            self.batch.forget_timings()
            self.batch.slot = self.timing.filed_under(now)
        self.batch.acquire_ns.append(now - max(due, self.timing.measure_start_ns))

    def ran_out(self, due: int, k: int, gaps: list[int]) -> None:
        """The open model's end: the ops due before the end that never started (a backlog)."""
        if self.batch.slot >= 0:
            self.batch.due_at_end += still_due(max(due, self.timing.measure_start_ns), k, gaps, self.timing.end_ns)

    def release(self, lease: Any, exc: BaseException | None = None) -> None:
        """Give a client back, with the op's exception as a `with` block would; a pool may raise here."""
        try:
            if exc is None:
                lease.__exit__(None, None, None)
            else:
                lease.__exit__(type(exc), exc, exc.__traceback__)
        except Exception as again:
            if again is not exc:
                self.error(again, "release")


@dataclass(frozen=True)
class Pacing:
    """A thread's schedule in the open model: the cycle of gaps and its first intended start."""

    gaps: list[int]
    first_due_ns: int


def run_load(strategy: Strategy, space: KeySpace, schedule: list[tuple[int, int]], ttl_s: int,
             timing: LoopTiming, sink: Callable[[Batch], None], pacing: Pacing | None = None) -> None:
    """Run ops until `timing.end_ns` (closed model, or the open one with `pacing`), handing a Batch to `sink`
    at every slot boundary and at the end. Failed ops are counted, not timed."""
    steps, ops = build_steps(space, schedule), {op for op, _ in schedule}
    recorder = Recorder(timing, sink, op_codes=2 if ops <= {GET, SET} else 4, misses_expected=DELETE in ops,
                        paced=pacing is not None)
    if pacing is not None:
        lower_timer_slack()
    fixed = strategy.thread_client()
    if fixed is None:
        _pooled_loop(strategy, steps, ttl_s, recorder, pacing)
    else:
        _fixed_loop(fixed, steps, ttl_s, recorder, pacing)


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


def _fixed_loop(client: Any, steps: list[tuple[int, Any, Any]], ttl_s: int, recorder: Recorder,
                pacing: Pacing | None) -> None:
    """A thread that keeps one client for its life (shared, per-thread): nothing to acquire per op."""
    get, set_ = client.get, client.set  # bound once: the rarer ops look theirs up per call
    end = recorder.timing.end_ns
    record, _ = recorder.appenders()
    paced = pacing is not None
    gaps, due = (pacing.gaps, pacing.first_due_ns) if pacing else ([], 0)
    sent, late = recorder.paced_appenders()
    next_flush = recorder.next_flush(perf_counter_ns())
    n = 0
    try:
        while True:
            start = perf_counter_ns()
            if paced:
                if due >= end:
                    break
                if start < due:
                    time.sleep((due - start) / 1e9)
                    start = perf_counter_ns()
                if start >= end:
                    recorder.ran_out(due, n, gaps)
                    break
            elif start >= end:
                break
            else:
                due = start
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
                got, failure = FAILED, exc
            done = perf_counter_ns()
            if done >= next_flush:  # the op belongs to the slot in which it completed
                next_flush = recorder.flush(done, n - 1)
                record, _ = recorder.appenders()
                sent, late = recorder.paced_appenders()
            if got is FAILED:
                next_flush = recorder.failure(failure, op, done, next_flush)
            else:
                record[op](done - due)
                if paced:
                    sent[op](done - start)
                    late(start - due)
                if got != value:
                    next_flush = recorder.anomaly(key, value, got, done, next_flush)
            if paced:
                due += gaps[n & GAP_MASK]
    finally:  # what was measured reaches the parent even if the thread dies
        recorder.flush(perf_counter_ns(), n)


def _pooled_loop(strategy: Strategy, steps: list[tuple[int, Any, Any]], ttl_s: int, recorder: Recorder,
                 pacing: Pacing | None) -> None:
    """A thread that reserves a client from the strategy for every op, and times the reserve."""
    end = recorder.timing.end_ns
    record, record_acquire = recorder.appenders()
    paced = pacing is not None
    gaps, due = (pacing.gaps, pacing.first_due_ns) if pacing else ([], 0)
    sent, late = recorder.paced_appenders()
    next_flush = recorder.next_flush(perf_counter_ns())
    n = 0
    try:
        while True:
            start = perf_counter_ns()
            if paced:
                if due >= end:
                    break
                if start < due:
                    time.sleep((due - start) / 1e9)
                    start = perf_counter_ns()
                if start >= end:
                    recorder.ran_out(due, n, gaps)
                    break
            elif start >= end:
                break
            else:
                due = start
            op, key, value = steps[n & MASK]
            n += 1
            try:
                lease, client = recorder.reserve(strategy, end)
            except Exception as exc:  # a pool that cannot lend is an error of this op, not of the run
                now = perf_counter_ns()
                if isinstance(exc, queue.Empty) and now >= end:
                    recorder.waited_until_end(due)
                    n -= 1
                    break
                if now >= next_flush:
                    next_flush = recorder.flush(now, n - 1)
                    record, record_acquire = recorder.appenders()
                    sent, late = recorder.paced_appenders()
                next_flush = recorder.failure(exc, op, now, next_flush, "reserve")
                if paced:
                    due += gaps[n & GAP_MASK]
                else:
                    time.sleep(RESERVE_FAILED_PAUSE_S)
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
                got, failure = FAILED, exc
                recorder.release(lease, exc)
            else:
                recorder.release(lease)
            done = perf_counter_ns()
            if done >= next_flush:  # the op belongs to the slot in which it completed
                next_flush = recorder.flush(done, n - 1)
                record, record_acquire = recorder.appenders()
                sent, late = recorder.paced_appenders()
            if got is FAILED:
                next_flush = recorder.failure(failure, op, done, next_flush)
            else:
                record_acquire(acquired - due)
                if paced:
                    record[op](done - due)
                    sent[op](done - acquired)
                    sent[ACQUIRE](acquired - start)
                    late(start - due)
                else:
                    record[op](done - acquired)
                if got != value:
                    next_flush = recorder.anomaly(key, value, got, done, next_flush)
            if paced:
                due += gaps[n & GAP_MASK]
    finally:  # what was measured reaches the parent even if the thread dies
        recorder.flush(perf_counter_ns(), n)


# ---------------------------------------------------------------- the worker process around the loops


def merge_batches(batches: list[Batch]) -> Batch:
    """One Batch holding the sum of several (of one slot: the first one's is kept)."""
    total = Batch(slot=batches[0].slot if batches else 0)
    for batch in batches:
        total.completed += batch.completed
        total.get_ns += batch.get_ns
        total.set_ns += batch.set_ns
        total.delete_ns += batch.delete_ns
        total.get_multi_ns += batch.get_multi_ns
        total.acquire_ns += batch.acquire_ns
        if batch.sent:
            total.sent = total.sent or [[] for _ in TIMED]
            for mine, theirs in zip(total.sent, batch.sent):
                mine += theirs
        total.late_ns += batch.late_ns
        total.due_at_end += batch.due_at_end
        total.failed = [a + b for a, b in zip(total.failed, batch.failed)]
        for name, count in batch.errors.items():
            total.errors[name] = total.errors.get(name, 0) + count
        for site, by_name in batch.site_errors.items():
            mine_by_name = total.site_errors.setdefault(site, {})
            for name, count in by_name.items():
                mine_by_name[name] = mine_by_name.get(name, 0) + count
        total.wrong_values += batch.wrong_values
        total.corrupt_values += batch.corrupt_values
        total.misses += batch.misses
        total.exhausted += batch.exhausted
        total.examples += batch.examples[: MAX_EXAMPLES - len(total.examples)]
    return total


def merge_by_slot(batches: list[Batch]) -> list[Batch]:
    """The batches of each slot merged into one, in slot order."""
    by_slot: dict[int, list[Batch]] = {}
    for batch in batches:
        by_slot.setdefault(batch.slot, []).append(batch)
    return [merge_batches(by_slot[slot]) for slot in sorted(by_slot)]


def pacing_for(plan: WorkerPlan, token: int, start_ns: int) -> Pacing | None:
    """A thread's schedule when the run has a --rate (its share of it), else None: the closed model."""
    run = plan.run
    if not run.rate:
        return None
    rng = random.Random(f"{run.workload.seed}:{token}")
    gaps = gap_cycle(run.rate / (run.processes * run.threads), run.arrival, rng)
    return Pacing(gaps, first_due(start_ns, gaps, rng))


def start_threads(plan: WorkerPlan, strategy: Any, space: KeySpace, timing: LoopTiming,
                  sink: Callable[[Batch], None], emitter: Emitter, start_ns: int) -> list[threading.Thread]:
    run = plan.run

    def body_for(token: int) -> Callable[[], None]:
        schedule, pacing = build_schedule(run.workload, token), pacing_for(plan, token, start_ns)
        return lambda: run_load(strategy, space, schedule, run.workload.ttl_s, timing, sink, pacing)

    return start_load_threads(plan, strategy, emitter, body_for)


def urgent_sink(sink: queue.SimpleQueue, timing: LoopTiming, emitter: Emitter) -> Callable[[Batch], None]:
    """Batches with errors or wrong values go to the parent at once, from the load thread itself."""

    def put(batch: Batch) -> None:
        if batch.has_anomalies:
            emitter.send_line(batch.to_line((time.perf_counter_ns() - timing.measure_start_ns) / 1e9,
                                            timing.measure_start_unix))
        else:
            sink.put(batch)

    return put


def stream_until_done(threads: list[threading.Thread], sink: queue.SimpleQueue, timing: LoopTiming,
                      interval_s: float, emitter: Emitter, strategy: Any = None) -> None:
    """The worker's main thread: ship what the load threads measured, several times a second, a message per slot,
    and what the strategy's pool looks like (for live metrics)."""
    measuring = False
    while True:
        alive = any(thread.is_alive() for thread in threads)
        now = time.perf_counter_ns()
        if not measuring and now >= timing.measure_start_ns:
            measuring = True
            emitter.send({"type": "phase", "phase": "measure"})
        elapsed_s = (min(now, timing.end_ns) - timing.measure_start_ns) / 1e9
        batches = merge_by_slot(drain_all(sink)) or [Batch(slot=timing.filed_under(now))]
        for batch in batches:
            emitter.send_line(batch.to_line(elapsed_s, timing.measure_start_unix))
        if strategy is not None:
            emitter.send({"type": "pool", **strategy.pool_state()})
        if not alive:
            return
        time.sleep(interval_s)


def load(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Warm up, measure, stream; returns when every load thread has stopped."""
    run = plan.run
    emitter.send({"type": "phase", "phase": "warmup"})
    start, start_unix = time.perf_counter_ns(), time.time()
    measure_start = start + int(run.warmup_s * 1e9)
    timing = LoopTiming(measure_start, measure_start + int(run.duration_s * 1e9), slot_grid(run.interval_s)[0],
                        start_unix + run.warmup_s)
    sink: queue.SimpleQueue = queue.SimpleQueue()
    threads = start_threads(plan, prepared.strategy, prepared.space, timing,
                            urgent_sink(sink, timing, emitter), emitter, start)
    stream_until_done(threads, sink, timing, run.snapshot_interval_s, emitter, prepared.strategy)
    prepared.strategy.close()


MODES = {"bench": (prepare_key_space, load)}
