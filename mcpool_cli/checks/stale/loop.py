"""The check-stale loop, worker side: steady, paced gets and sets of keys known to be on the server.

Each thread runs `rate` ops a second of a get / get_multi (4 keys) / set mix. Times are `time.monotonic_ns()`, which on Linux is
one clock for every process, so the parent can lay them against the moments it injected the fault.
What the loop records is small even when every call fails:
- successful ops and failed ops (and, of those, the ones that raised), counted per millisecond of completion;
- each successful op's latency, from the moment it was sent, with the millisecond it completed in: the parent
  files them under the run's intervals (`analysis.StaleStats`). Latency runs from the send, not from the due
  time: an op whose whole gap passed is skipped, not queued, so there is no backlog to correct for;
- every miss (a get answered "not found") with its start and end, so the parent can tell a false miss from
  a key the fault really removed;
- every op slower than `SLOW_NS` (a stall) with its start and end;
- due ops never started because the thread was stuck (`skipped`): ops lost without an error to show for it.
After a failure the thread sleeps a millisecond, as an application falling back to its database would,
rather than spinning on exceptions.
"""

from __future__ import annotations

import functools
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mcpool_cli.engine.histograms import decode_ns, encode_ns
from mcpool_cli.engine.pacing import Pacer, lower_timer_slack, sleep_until
from mcpool_cli.engine.plan import WorkerPlan
from mcpool_cli.engine.strategies import Strategy, leased_call
from mcpool_cli.engine.worker import Emitter, Prepared, prepare_key_space, ship_until_done, start_load_threads
from mcpool_cli.engine.workload import KeySpace, classify_get

SLOW_NS = 50_000_000
FAIL_PAUSE_S = 0.001
MULTI_KEYS = 4  # keys per get_multi
MAX_PAUSE_S = 120.0  # the parent always says resume; this only bounds a wait that cannot be


@dataclass
class StaleBatch:
    """What one thread saw since its last flush."""

    ok: int = 0
    scheduled: int = 0
    skipped: int = 0
    ok_ms: dict[int, int] = field(default_factory=dict)
    fail_ms: dict[int, int] = field(default_factory=dict)
    error_ms: dict[int, int] = field(default_factory=dict)  # failed ops that raised (not a wrong value)
    ok_end_ms: list[int] = field(default_factory=list)  # each successful op: the ms it completed in ...
    ok_ns: list[int] = field(default_factory=list)  # ... and how long it took
    errors: dict[str, int] = field(default_factory=dict)
    misses: list[tuple[int, int]] = field(default_factory=list)
    slow: list[tuple[int, int]] = field(default_factory=list)
    wrong: int = 0
    max_op_ns: int = 0

    def add(self, other: "StaleBatch") -> None:
        self.ok += other.ok
        self.scheduled += other.scheduled
        self.skipped += other.skipped
        for mine, theirs in ((self.ok_ms, other.ok_ms), (self.fail_ms, other.fail_ms), (self.error_ms, other.error_ms),
                             (self.errors, other.errors)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.ok_end_ms += other.ok_end_ms
        self.ok_ns += other.ok_ns
        self.misses += other.misses
        self.slow += other.slow
        self.wrong += other.wrong
        self.max_op_ns = max(self.max_op_ns, other.max_op_ns)

    def to_message(self, t0_ns: int = 0) -> dict[str, Any]:
        """The snapshot message; `t0_ns`: when the worker's load started (the origin of the run's intervals)."""
        # `completed` is progress for the parent's hang watchdog: an op that failed fast is progress too
        return {"type": "snapshot", "kind": "stale", "completed": self.scheduled, "ok": self.ok,
                "scheduled": self.scheduled,
                "skipped": self.skipped, "ok_ms": self.ok_ms, "fail_ms": self.fail_ms, "error_ms": self.error_ms,
                "ok_end_ms": encode_ns(self.ok_end_ms), "ok_ns": encode_ns(self.ok_ns), "errors": self.errors,
                "misses": self.misses, "slow": self.slow, "wrong": self.wrong, "max_op_ns": self.max_op_ns,
                "t_s": 0.0, "t0_ns": t0_ns}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "StaleBatch":
        return cls(ok=message["ok"], scheduled=message["scheduled"], skipped=message["skipped"],
                   ok_ms={int(k): v for k, v in message["ok_ms"].items()},
                   fail_ms={int(k): v for k, v in message["fail_ms"].items()},
                   error_ms={int(k): v for k, v in message["error_ms"].items()},
                   ok_end_ms=decode_ns(message["ok_end_ms"]).tolist(), ok_ns=decode_ns(message["ok_ns"]).tolist(),
                   errors=dict(message["errors"]), misses=[tuple(m) for m in message["misses"]],
                   slow=[tuple(s) for s in message["slow"]], wrong=message["wrong"], max_op_ns=message["max_op_ns"])


@dataclass(frozen=True)
class StaleTiming:
    """When a thread loads (monotonic ns), how fast, and the pause of the idle fault (0, 0 when none)."""

    start_ns: int
    end_ns: int
    rate: float
    pause_start_ns: int = 0
    resume: threading.Event | None = None  # set by the parent's `resume` command: the pause is over


def stale_thread(strategy: Strategy, space: KeySpace, timing: StaleTiming, mix: tuple[tuple[str, int], ...],
                 seed: int, sink: Callable[[StaleBatch], None], flush_ns: int, ttl_s: int) -> None:
    """Paced ops until `end_ns`; a batch goes to `sink` every `flush_ns` and at the end.

    Due times come from the one pacer (constant spacing, the first one spread over the first gap by `seed`);
    ops whose whole gap passed while the thread was stuck are counted as skipped, not made up in a burst.
    """
    lower_timer_slack()
    rng = random.Random(seed)
    ops, weights = [op for op, _ in mix], [weight for _, weight in mix]
    pacer = Pacer(timing.rate, timing.start_ns, "constant", seed)
    batch, next_flush = StaleBatch(), time.monotonic_ns() + flush_ns
    paused, end = timing.resume is None, timing.end_ns
    while pacer.due < end:
        now = time.monotonic_ns()
        if not paused and pacer.due >= timing.pause_start_ns:  # the idle fault: wait until the parent says resume
            paused = True
            sink(batch)
            batch = StaleBatch()
            now = wait_for_resume(timing)
            pacer.restart(now)
            end += now - timing.pause_start_ns  # the pause does not eat into the load after it
        if now < pacer.due:
            sleep_until(pacer.due, now)
        else:  # ops due at or after the end are not due at all: a thread stuck across the end skipped none of them
            batch.skipped += pacer.skip_missed(min(now, end - 1))
        op, index = rng.choices(ops, weights)[0], rng.randrange(len(space.keys))
        count = MULTI_KEYS if op == "get_multi" else 1
        chosen = [(space.keys[i % len(space.keys)], space.values[i % len(space.keys)])
                  for i in range(index, index + count)]
        failed = one_op(strategy, op, chosen, batch, end, ttl_s)
        batch.scheduled += 1
        pacer.advance()
        if failed:
            time.sleep(FAIL_PAUSE_S)
        if time.monotonic_ns() >= next_flush:
            sink(batch)
            batch, next_flush = StaleBatch(), time.monotonic_ns() + flush_ns
    sink(batch)


def wait_for_resume(timing: StaleTiming) -> int:
    """The idle fault's pause: block until the parent's `resume` (bounded by MAX_PAUSE_S); when it ended."""
    timing.resume.wait(MAX_PAUSE_S)  # type: ignore[union-attr]
    return time.monotonic_ns()


def one_op(strategy: Strategy, op: str, items: list[tuple[str, bytes]], batch: StaleBatch, deadline_ns: int,
           ttl_s: int) -> bool:
    """One get, get_multi or set, recorded in `batch`; True when it failed (an error or a wrong value).

    A key a get or get_multi answered as missing is recorded as a miss, once per key: whether it is a false
    one is the parent's call, as only the parent knows when the fault struck.
    """
    start = time.monotonic_ns()
    try:
        if op == "set":
            leased_call(strategy, deadline_ns, "set", items[0][0], items[0][1], ttl_s)
            outcomes = ["ok"]
        elif op == "get":
            outcomes = [classify_get(items[0][0], items[0][1], leased_call(strategy, deadline_ns, "get", items[0][0]))]
        else:
            found = leased_call(strategy, deadline_ns, "get_multi", [key for key, _ in items])
            outcomes = [classify_get(key, value, found.get(key)) for key, value in items]
    except Exception as exc:
        name = type(exc).__name__
        batch.errors[name] = batch.errors.get(name, 0) + 1
        outcomes = ["error"]
    end = time.monotonic_ns()
    took, ms = end - start, end // 1_000_000
    batch.max_op_ns = max(batch.max_op_ns, took)
    if took > SLOW_NS:
        batch.slow.append((start, end))
    misses = outcomes.count("miss")
    batch.misses += [(start, end)] * misses
    failed = "error" in outcomes or "wrong" in outcomes or "corrupt" in outcomes
    if failed:
        batch.wrong += len(outcomes) - misses - outcomes.count("ok") - outcomes.count("error")
        bucket = batch.fail_ms
        if outcomes == ["error"]:
            batch.error_ms[ms] = batch.error_ms.get(ms, 0) + 1
    elif misses:
        return False
    else:
        batch.ok += 1
        batch.ok_end_ms.append(ms)
        batch.ok_ns.append(took)
        bucket = batch.ok_ms
    bucket[ms] = bucket.get(ms, 0) + 1
    return failed


def load_stale(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Steady paced load for check-stale; the parent injects the fault and reads the times."""
    run = plan.run
    start = time.monotonic_ns()
    emitter.send({"type": "phase", "phase": "measure", "t0_ns": start})
    pause_at_s = run.setting("pause_at_s")  # the idle fault: threads pause then, until the parent says resume
    timing = StaleTiming(start, start + int(run.duration_s * 1e9), run.setting("rate"),
                         start + int(pause_at_s * 1e9) if pause_at_s else 0, emitter.resumed if pause_at_s else None)
    sink: queue.SimpleQueue = queue.SimpleQueue()
    flush_ns = int(run.snapshot_interval_s * 1e9)
    threads = start_load_threads(plan, prepared.strategy, emitter, lambda token: functools.partial(
        stale_thread, prepared.strategy, prepared.space, timing, run.workload.mix, run.workload.seed + token,
        sink.put, flush_ns, run.workload.ttl_s))
    ship_until_done(threads, sink, merged_batch, lambda total: total.to_message(start), run.snapshot_interval_s,
                    emitter)
    prepared.strategy.close()


def merged_batch(batches: list[StaleBatch]) -> StaleBatch:
    total = StaleBatch()
    for batch in batches:
        total.add(batch)
    return total


MODES = {"stale": (prepare_key_space, load_stale)}
