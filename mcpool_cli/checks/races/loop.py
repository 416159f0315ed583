"""The race-check loop: each thread writes and reads back keys only it writes, and reads keys all share."""

from __future__ import annotations

import os
import queue
import random
import time
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Callable

from mcpool_cli.checks.races.stamps import add_site, check_own, check_shared, classify_error, encode_value, error_site
from mcpool_cli.engine.plan import WorkerPlan
from mcpool_cli.engine.strategies import SharedStrategy, Strategy, leased_call
from mcpool_cli.engine.worker import Emitter, Prepared, build_for, drain_all, make_master_client, start_load_threads
from mcpool_cli.engine.workload import KeySpace

OWN_KEYS = 16  # per thread
SHARED_KEYS = 64
SHARED_WRITER = -1  # the token of the worker that writes the shared keys before the load
MAX_EXAMPLES = 5
URGENT_FLUSH_NS = 1_000_000  # evidence leaves within a millisecond: the process may die right after


def own_key(prefix: str, token: int, index: int) -> str:
    return f"{prefix}t{token}:o{index}"


def shared_key(prefix: str, index: int) -> str:
    return f"{prefix}s{index}"


@dataclass
class RaceBatch:
    """What one thread saw since its last flush."""

    ops: int = 0
    checked: int = 0  # replies actually compared (a failed call checks nothing)
    anomalies: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_sites: dict[str, int] = field(default_factory=dict)  # "KeyError at module.py:func" -> count
    library_errors: int = 0  # errors only concurrency explains: raised inside the client library (see error_site)
    first_anomaly_ns: int | None = None  # since the load started
    examples: list[dict[str, str]] = field(default_factory=list)

    def to_message(self) -> dict[str, Any]:
        """The snapshot message that carries this batch to the parent."""
        return {"type": "snapshot", "kind": "races", "completed": self.ops, "checked": self.checked,
                "anomalies": self.anomalies, "errors": self.errors, "examples": self.examples,
                "error_sites": self.error_sites, "library_errors": self.library_errors,
                "first_anomaly_s": None if self.first_anomaly_ns is None else self.first_anomaly_ns / 1e9,
                "t_s": 0.0}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "RaceBatch":
        first = message["first_anomaly_s"]
        return cls(ops=message["completed"], checked=message.get("checked", 0), anomalies=dict(message["anomalies"]),
                   errors=dict(message["errors"]), examples=list(message["examples"]),
                   error_sites=dict(message.get("error_sites") or {}),
                   library_errors=int(message.get("library_errors", 0)),
                   first_anomaly_ns=None if first is None else round(first * 1e9))

    def note(self, kind: str, elapsed_ns: int, key: str = "", expected: str = "", got: object = "") -> None:
        self.anomalies[kind] = self.anomalies.get(kind, 0) + 1
        if self.first_anomaly_ns is None:
            self.first_anomaly_ns = elapsed_ns
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"kind": kind, "key": key, "expected": expected, "got": as_text(got)})  # type: ignore[dict-item]


def as_text(got: object) -> str | None:
    """A reply as text, like `expected`: bytes decoded (undecodable bytes escaped), cut at 80 characters;
    None (JSON null) for a miss."""
    if got is None:
        return None
    if isinstance(got, bytes):
        return got[:80].decode("utf-8", "backslashreplace")
    return got[:80] if isinstance(got, str) else repr(got)


class RaceThread:
    """One thread's cycle: set an own key, read it back, read a shared key; every reply is checked."""

    def __init__(self, strategy: Strategy, prefix: str, token: int, start_ns: int, end_ns: int,
                 sink: Callable[[RaceBatch], None], flush_interval_ns: int, seed: int = 0) -> None:
        self.strategy, self.prefix, self.token = strategy, prefix, token
        rng = random.Random(seed * 1_000_003 + token)  # --seed picks the order of keys each thread visits
        self.own_order, self.shared_order = rng.sample(range(OWN_KEYS), OWN_KEYS), rng.sample(range(SHARED_KEYS), SHARED_KEYS)
        self.start_ns, self.end_ns = start_ns, end_ns
        self.sink, self.flush_interval_ns = sink, flush_interval_ns
        self.last_seq = [0] * OWN_KEYS
        self.batch = RaceBatch()

    def call(self, method: str, key: str, *args: Any) -> tuple[bool, Any]:
        """(ok, reply) of one call on a client reserved for it; errors are classified and counted."""
        try:
            return True, leased_call(self.strategy, self.end_ns, method, key, *args)
        except Exception as exc:
            if isinstance(exc, queue.Empty) and perf_counter_ns() >= self.end_ns:
                return False, None  # the trial ended while this call waited for a client: no call was made
            self._error(exc, key)
            return False, None

    def _error(self, exc: BaseException, key: str) -> None:
        kind = classify_error(exc)
        if kind == "protocol_desync":
            self.batch.note(kind, perf_counter_ns() - self.start_ns, key, "a reply to this call", f"{type(exc).__name__}: {exc}")
        name = type(exc).__name__
        self.batch.errors[name] = self.batch.errors.get(name, 0) + 1
        site, library = error_site(exc)
        add_site(self.batch.error_sites, site)
        self.batch.library_errors += library and kind != "protocol_desync"  # a desync is counted as an anomaly

    def step(self, n: int) -> None:
        index = self.own_order[n % OWN_KEYS]
        key = own_key(self.prefix, self.token, index)
        seq = self.last_seq[index] + 1
        written, _ = self.call("set", key, encode_value(key, self.token, seq), 3600)
        if written:
            self.last_seq[index] = seq
        ok, got = self.call("get", key)
        if ok and written:
            self.batch.checked += 1
            anomaly = check_own(key, self.token, self.last_seq[index], got)
            if anomaly:
                expected = encode_value(key, self.token, self.last_seq[index]).decode()
                self.batch.note(anomaly, perf_counter_ns() - self.start_ns, key, expected, got)
        shared = shared_key(self.prefix, self.shared_order[n % SHARED_KEYS])
        ok, got = self.call("get", shared)
        if ok:
            self.batch.checked += 1
            anomaly = check_shared(shared, got)
            if anomaly:
                self.batch.note(anomaly, perf_counter_ns() - self.start_ns, shared, f"{shared}|…", got)
        self.batch.ops += 3

    def run(self) -> None:
        next_flush, n = perf_counter_ns() + self.flush_interval_ns, 0
        try:
            while (now := perf_counter_ns()) < self.end_ns:
                self.step(n)
                n += 1
                if self.batch.anomalies:  # evidence leaves within milliseconds: a crash may follow
                    next_flush = min(next_flush, now + URGENT_FLUSH_NS)
                if now >= next_flush:
                    self.sink(self.batch)
                    self.batch, next_flush = RaceBatch(), now + self.flush_interval_ns
        finally:
            self.sink(self.batch)


def merge_race_batches(batches: list[RaceBatch]) -> RaceBatch:
    total = RaceBatch()
    for batch in batches:
        total.ops += batch.ops
        total.checked += batch.checked
        for target, source in ((total.anomalies, batch.anomalies), (total.errors, batch.errors)):
            for name, count in source.items():
                target[name] = target.get(name, 0) + count
        for site, count in batch.error_sites.items():
            add_site(total.error_sites, site, count)
        total.library_errors += batch.library_errors
        if batch.first_anomaly_ns is not None:
            total.first_anomaly_ns = min(batch.first_anomaly_ns, total.first_anomaly_ns or batch.first_anomaly_ns)
        total.examples += batch.examples[: MAX_EXAMPLES - len(total.examples)]
    return total


# ---------------------------------------------------------------- the worker process around the loop


def prepare_races(plan: WorkerPlan, emitter: Emitter) -> Prepared:
    """Build the strategy (none for the fork check) and write the shared keys every thread reads."""
    run = plan.run
    master = make_master_client(run.client)
    strategy = None
    if run.mode == "races":
        strategy = build_for(plan, master)
    prefix = run.workload.key_prefix
    values = {shared_key(prefix, i): encode_value(shared_key(prefix, i), SHARED_WRITER, 0) for i in range(SHARED_KEYS)}
    failed = master.set_multi(values, time=run.workload.ttl_s)  # also connects the master before any fork
    if failed:
        raise RuntimeError(f"could not write {len(failed)} shared keys")
    return Prepared(strategy if strategy is not None else master, KeySpace((), ()))


def load_races(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Threads (or, for the fork check, a parent and a forked child sharing one client) hunt for races."""
    run = plan.run
    emitter.send({"type": "phase", "phase": "measure"})
    start = time.perf_counter_ns()
    end = start + int((run.warmup_s + run.duration_s) * 1e9)
    interval = int(run.snapshot_interval_s * 1e9)
    if run.mode == "races-fork":
        fork_race(plan, prepared.strategy, start, end, emitter)
        return
    sink: queue.SimpleQueue = queue.SimpleQueue()
    threads = start_load_threads(plan, prepared.strategy, emitter, lambda token: RaceThread(
        prepared.strategy, run.workload.key_prefix, token, start, end, sink.put, interval, run.workload.seed).run)
    while any(thread.is_alive() for thread in threads):
        time.sleep(run.snapshot_interval_s)
        emitter.send(merge_race_batches(drain_all(sink)).to_message())
    emitter.send(merge_race_batches(drain_all(sink)).to_message())


def fork_race(plan: WorkerPlan, master: Any, start: int, end: int, emitter: Emitter) -> None:
    """A client connected before fork(), used by both processes at once, as a pre-loading server does."""
    interval = int(plan.run.snapshot_interval_s * 1e9)
    send = lambda batch: emitter.send(batch.to_message())  # noqa: E731
    child = os.fork()
    if child == 0:
        try:
            RaceThread(SharedStrategy(master), plan.run.workload.key_prefix, 1, start, end, send, interval,
                       plan.run.workload.seed).run()
        finally:
            os._exit(0)
    RaceThread(SharedStrategy(master), plan.run.workload.key_prefix, 0, start, end, send, interval,
               plan.run.workload.seed).run()
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):  # the child's crash is this check's crash
        os.kill(os.getpid(), os.WTERMSIG(status))


MODES = {"races": (prepare_races, load_races), "races-fork": (prepare_races, load_races)}
