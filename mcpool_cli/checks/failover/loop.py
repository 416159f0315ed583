"""The check-failover loop, worker side: steady, paced gets and sets of stamped values over several nodes.

Every key is written first (prepare), then each thread runs `rate` ops a second: a get of any key, or a set of
one of the keys it owns (key i belongs to thread i % threads, so that each key's writes are in order). Each
value carries its key and a sequence number (the race checker's stamps); `acked[i]` is the highest sequence
of key i whose set returned. A get that started after that and reads an older sequence is a **stale read**:
the value came from a node that missed the later write (a node that rejoined the ring, typically).

Each op is shipped to the parent as it is: when it started and ended (ms of the monotonic clock, the clock
of the proxies and of the fault), which key, what came of it and how long it took. The parent lays that
against where the proxies saw each key go.
"""

from __future__ import annotations

import functools
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mcpool_cli.checks.races.stamps import decode_value, encode_value
from mcpool_cli.engine.histograms import decode_ns, encode_ns
from mcpool_cli.engine.pacing import Pacer, lower_timer_slack, sleep_until
from mcpool_cli.engine.plan import WorkerPlan
from mcpool_cli.engine.strategies import Strategy, leased_call
from mcpool_cli.engine.worker import (Emitter, Prepared, build_for, make_master_client, ship_until_done,
                                      start_load_threads)
from mcpool_cli.engine.workload import KeySpace, key_name

GET_OK, SET_OK, MISS, STALE, WRONG, NOT_STORED = 0, 1, 2, 3, 4, 5
FIRST_ERROR = 10  # codes from here on are error classes, numbered as they first occur (`ErrorCodes`)
OUTCOMES = {GET_OK: "get ok", SET_OK: "set ok", MISS: "miss", STALE: "stale", WRONG: "wrong value",
            NOT_STORED: "set not stored"}
FAIL_PAUSE_S = 0.001
PREFILL_TIMEOUT_S = 30.0


class ErrorCodes:
    """Error class name to code, shared by a worker's threads."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.lock = threading.Lock()

    def code(self, name: str) -> int:
        found = self.codes.get(name)
        if found is None:
            with self.lock:
                found = self.codes.setdefault(name, FIRST_ERROR + len(self.codes))
        return found

    def names(self) -> dict[int, str]:
        with self.lock:
            return {code: name for name, code in self.codes.items()}


@dataclass
class OpBatch:
    """Ops one thread (or, merged, the worker) did since the last flush, one entry per op in each list."""

    start_ms: list[int] = field(default_factory=list)
    end_ms: list[int] = field(default_factory=list)
    key: list[int] = field(default_factory=list)
    code: list[int] = field(default_factory=list)
    took_us: list[int] = field(default_factory=list)
    skipped: int = 0  # due ops never started: the thread was stuck in an earlier one

    def add(self, other: "OpBatch") -> None:
        for name in ("start_ms", "end_ms", "key", "code", "took_us"):
            getattr(self, name).extend(getattr(other, name))
        self.skipped += other.skipped

    def __len__(self) -> int:
        return len(self.code)

    def to_message(self, t0_ns: int, error_names: dict[int, str]) -> dict[str, Any]:
        # `completed` is progress for the parent's hang watchdog: an op that failed fast is progress too
        return {"type": "snapshot", "kind": "failover", "completed": len(self), "t_s": 0.0, "t0_ns": t0_ns,
                "skipped": self.skipped, "errors": {str(code): name for code, name in error_names.items()},
                **{name: encode_ns(getattr(self, name)) for name in ("start_ms", "end_ms", "key", "code", "took_us")}}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "OpBatch":
        return cls(**{name: decode_ns(message[name]).tolist()
                      for name in ("start_ms", "end_ms", "key", "code", "took_us")}, skipped=int(message["skipped"]))


@dataclass(frozen=True)
class Keys:
    """The run's keys, their owners and what was last written to each; shared by the worker's threads."""

    names: tuple[str, ...]
    threads: int
    acked: list[int]  # per key: the highest sequence whose set returned
    errors: ErrorCodes

    def owned(self, slot: int) -> list[int]:
        return list(range(slot, len(self.names), self.threads))


def stamped(keys: Keys, index: int, seq: int) -> bytes:
    return encode_value(keys.names[index], index % keys.threads, seq)


def judge_get(keys: Keys, index: int, floor: int, got: object) -> int:
    """GET_OK, MISS, STALE (older than `floor`, the last acked sequence when the get started) or WRONG."""
    if got is None:
        return MISS
    stamp = decode_value(got)
    if stamp is None or stamp.key != keys.names[index]:
        return WRONG
    return STALE if stamp.seq < floor else GET_OK


def one_op(strategy: Strategy, keys: Keys, index: int, write: bool, seq: int, batch: OpBatch, deadline_ns: int,
           ttl_s: int) -> bool:
    """A get of key `index`, or a set of it with sequence `seq`, recorded in `batch`; True when it raised.
    A set counts as written (`acked`) only when it returned a true value (or None, for a library that
    returns nothing): pymemcache's HashClient and python-memcached return False or 0 for a write they dropped."""
    floor = keys.acked[index]
    start = time.monotonic_ns()
    try:
        if write:  # a set that returns False (or 0) stored nothing, yet raised nothing: a silent lost write
            stored = leased_call(strategy, deadline_ns, "set", keys.names[index], stamped(keys, index, seq), ttl_s)
            code = SET_OK if stored or stored is None else NOT_STORED
        else:
            code = judge_get(keys, index, floor, leased_call(strategy, deadline_ns, "get", keys.names[index]))
    except Exception as exc:
        code = keys.errors.code(type(exc).__name__)
    end = time.monotonic_ns()
    if code == SET_OK and seq > keys.acked[index]:
        keys.acked[index] = seq  # only this thread writes the key: no other write can race this one
    batch.start_ms.append(start // 1_000_000)
    batch.end_ms.append(end // 1_000_000)
    batch.key.append(index)
    batch.code.append(code)
    batch.took_us.append((end - start) // 1000)
    return code >= FIRST_ERROR


@dataclass(frozen=True)
class Timing:
    start_ns: int
    end_ns: int
    rate: float
    write_share: float


def failover_thread(strategy: Strategy, keys: Keys, slot: int, timing: Timing, seed: int,
                    sink: Callable[[OpBatch], None], flush_ns: int, ttl_s: int) -> None:
    """Paced ops until `end_ns`; a batch goes to `sink` every `flush_ns` and at the end. Ops whose whole gap
    passed while the thread was stuck are counted as skipped, not made up in a burst."""
    lower_timer_slack()
    rng = random.Random(seed)
    own = keys.owned(slot)
    seqs = {index: 0 for index in own}
    pacer = Pacer(timing.rate, timing.start_ns, "constant", seed)
    batch, next_flush = OpBatch(), time.monotonic_ns() + flush_ns
    while pacer.due < timing.end_ns:
        now = time.monotonic_ns()
        if now < pacer.due:
            sleep_until(pacer.due, now)
        else:
            batch.skipped += pacer.skip_missed(min(now, timing.end_ns - 1))
        write = bool(own) and rng.random() < timing.write_share
        index = rng.choice(own) if write else rng.randrange(len(keys.names))
        if write:
            seqs[index] += 1
        if one_op(strategy, keys, index, write, seqs.get(index, 0), batch, timing.end_ns, ttl_s):
            time.sleep(FAIL_PAUSE_S)
        pacer.advance()
        if time.monotonic_ns() >= next_flush:
            sink(batch)
            batch, next_flush = OpBatch(), time.monotonic_ns() + flush_ns
    sink(batch)


def key_names(plan: WorkerPlan) -> tuple[str, ...]:
    workload = plan.run.workload
    return tuple(key_name(workload.key_prefix, index) for index in range(workload.keys))


def prepare_failover(plan: WorkerPlan, emitter: Emitter) -> Prepared:
    """The strategy built, and every key written with sequence 0 through it (so the proxies see where each
    key lives before the fault)."""
    run = plan.run
    strategy = build_for(plan, make_master_client(run.client))
    names = key_names(plan)
    emitter.send({"type": "phase", "phase": "populate"})
    keys = Keys(names, run.threads, [0] * len(names), ErrorCodes())
    deadline = time.monotonic_ns() + int(PREFILL_TIMEOUT_S * 1e9)
    for index in range(len(names)):
        leased_call(strategy, deadline, "set", names[index], stamped(keys, index, 0), run.workload.ttl_s)
    return Prepared(strategy, KeySpace(names, ()))


def load_failover(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Steady paced load for check-failover; the parent fails a node and reads the proxies."""
    run = plan.run
    start = time.monotonic_ns()
    emitter.send({"type": "phase", "phase": "measure", "t0_ns": start})
    keys = Keys(prepared.space.keys, run.threads, [0] * len(prepared.space.keys), ErrorCodes())
    timing = Timing(start, start + int(run.duration_s * 1e9), run.setting("rate"), run.setting("write_share"))
    sink: queue.SimpleQueue = queue.SimpleQueue()
    flush_ns = int(run.snapshot_interval_s * 1e9)
    threads = start_load_threads(plan, prepared.strategy, emitter, lambda token: functools.partial(
        failover_thread, prepared.strategy, keys, token % run.threads, timing, run.workload.seed + token,
        sink.put, flush_ns, run.workload.ttl_s))
    ship_until_done(threads, sink, merged_batch, lambda total: total.to_message(start, keys.errors.names()),
                    run.snapshot_interval_s, emitter)
    prepared.strategy.close()


def merged_batch(batches: list[OpBatch]) -> OpBatch:
    total = OpBatch()
    for batch in batches:
        total.add(batch)
    return total


MODES = {"failover": (prepare_failover, load_failover)}
