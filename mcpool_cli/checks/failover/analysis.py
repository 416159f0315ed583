"""`mcpool check-failover` as a library: the workers' ops laid against where the proxies saw each key go.

Everything here is pure, on one clock: milliseconds of the monotonic clock, which the workers, the proxies and
the fault share on Linux.

- A key's **home** is the node the proxies saw it written to while the keys were filled, before the load.
- **Ejection** is the first time, after the fault struck, that a key of the failed node went to another node;
  **re-admission** the first time, after the node was back, that any key went to it again.
- A key **moved** while the node was out when a proxy other than its home's saw it then; the share of keys
  moved **after** it came back is read off the last second of load.
- A **stale read** is a get that returned a sequence older than one whose set had returned before the get
  started (the worker tells); an **exposed read** is a get, after re-admission, of a key of the failed node
  that was written during the outage (so elsewhere) and not since: a read that could have been stale.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli.checks.failover.loop import FIRST_ERROR, GET_OK, MISS, NOT_STORED, SET_OK, STALE, WRONG, OpBatch

EJECTING_MS = 250  # each thread's client ejects the node on its own first failures: errors this close are those
TAIL_S = 1.0
OTHER_MISSES_KEPT = 10  # "after it came back" is read off this last stretch of the load
SETTLE_S = 1.0  # once the node is back, errors after this long without any are not the fault's
INTERVALS_S = (1.0, 0.5, 0.25, 0.2, 0.1)
MIN_INTERVALS = 30


@dataclass(frozen=True)
class Moments:
    """The run's moments in ms of the monotonic clock: load start and end, fault, node back (0: never)."""

    t0_ms: int
    end_ms: int
    fault_ms: int
    back_ms: int
    failed: int  # the failed node's index

    @property
    def outage_end_ms(self) -> int:
        return self.back_ms or self.end_ms


@dataclass(frozen=True)
class Routing:
    """Where the proxies saw keys: each key's home, and per node the (ms, key) of each key sent to it."""

    homes: dict[int, int]  # key -> node, from before the fault
    seen: tuple[tuple[tuple[int, int], ...], ...]  # per node, (ms, key), in time order

    @classmethod
    def observed(cls, fill: list[list[tuple[int, int]]], load: list[list[tuple[int, int]]]) -> "Routing":
        """From what each node's proxy saw while all were up (`fill`) and during the load."""
        homes: dict[int, int] = {}
        for node, entries in enumerate(fill):
            for _, key in entries:
                homes.setdefault(key, node)
        return cls(homes, tuple(tuple(sorted(entries)) for entries in load))

    def between(self, node: int, start_ms: int, end_ms: int) -> tuple[tuple[int, int], ...]:
        entries = self.seen[node]
        lo = bisect.bisect_left(entries, (start_ms, -1))
        hi = bisect.bisect_left(entries, (end_ms, -1))
        return entries[lo:hi]

    def moved_share(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """(keys seen away from home, keys seen) between two moments."""
        seen, away = set(), set()
        for node in range(len(self.seen)):
            for _, key in self.between(node, start_ms, end_ms):
                seen.add(key)
                if self.homes.get(key, node) != node:
                    away.add(key)
        return len(away), len(seen)


@dataclass(frozen=True)
class FailoverFigures:
    """One configuration's run through the fault."""

    nodes: int
    failed_node: int  # 0-based
    keys: int
    failed_keys: int  # keys whose home is the failed node
    homes_known: int  # keys whose home the proxies saw
    ops: int
    ops_skipped: int
    errors: dict[str, int]
    errors_before_fault: int
    errors_late_in_outage: int  # in the outage's second half: callers still failing
    errors_after_ejection: int  # from a quarter second after the ejection to the node's return
    errors_after_settled: int  # errors that came back after a second without any, once the node was back
    last_error_s: float | None  # after the fault struck
    misses_failed_keys: int  # misses of the failed node's keys after the fault struck
    misses_other_keys: int  # misses of keys whose node never failed, or before the fault
    stale_reads: int
    stale_after_back: int
    exposed_reads: int
    wrong_values: int
    lost_writes: int  # sets that returned False (or 0): nothing stored, nothing raised
    ejected_s: float | None  # fault to the first key of the failed node sent elsewhere
    readmitted_s: float | None  # node back to the first key sent to it again
    moved_keys: int  # keys sent away from home while the node was out
    seen_keys: int  # keys sent anywhere while the node was out
    moved_after: float | None  # share of keys away from home over the load's last second
    failed_key_ops: int  # ops on the failed node's keys while it was out
    longest_op_s: float
    longest_failed_key_op_s: float  # the longest op on the failed node's keys that started while it was out
    unread_connections: int = 0  # connections whose commands a proxy could not read
    written_in_outage: int = 0  # keys of the failed node whose set returned while it was out
    errors_at_end: int = 0  # errors in the load's last second, with the node back: the client did not recover
    restored_s: float | None = None  # node back to the first quarter second it got 3/4 of its load before the fault
    other_misses: tuple[tuple[float, int, int], ...] = ()  # the first misses of other keys: (s from the load's
    # start, key, its node from 1; 0 when the proxies never saw it written)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def moved_during(self) -> float | None:
        return None if not self.seen_keys else round(self.moved_keys / self.seen_keys, 4)

    @property
    def failed_share(self) -> float | None:
        return None if not self.homes_known else round(self.failed_keys / self.homes_known, 4)


def codes(batch: OpBatch) -> list[tuple[int, int, int, int, int]]:
    """(start_ms, end_ms, key, code, took_us) per op, in order of start."""
    return sorted(zip(batch.start_ms, batch.end_ms, batch.key, batch.code, batch.took_us))


def analyse(batch: OpBatch, names: dict[int, str], routing: Routing, at: Moments,
            unread: int = 0) -> FailoverFigures:
    """The figures of one run; `names`: error code to class name."""
    ops = codes(batch)
    failed_keys = {key for key, node in routing.homes.items() if node == at.failed}
    ejected = first_rerouted(routing, at, failed_keys)
    readmitted = first_seen(routing, at.failed, at.back_ms, at.end_ms) if at.back_ms else None
    errors = [op for op in ops if op[3] >= FIRST_ERROR]
    after_fault = [op for op in errors if op[1] >= at.fault_ms]
    half_ms = at.fault_ms + (at.outage_end_ms - at.fault_ms) // 2
    moved, seen = routing.moved_share(at.fault_ms, at.outage_end_ms)
    tail_from = max(at.outage_end_ms, at.end_ms - int(TAIL_S * 1000))
    tail_moved, tail_seen = routing.moved_share(tail_from, at.end_ms + 1)
    in_outage = [op for op in ops if op[2] in failed_keys and at.fault_ms <= op[0] < at.outage_end_ms]
    misses = [op for op in ops if op[3] == MISS]
    failed_misses = sum(1 for op in misses if op[2] in failed_keys and op[1] >= at.fault_ms)
    by_class: dict[str, int] = {}
    for op in errors:
        name = names.get(op[3], f"error {op[3]}")
        by_class[name] = by_class.get(name, 0) + 1
    return FailoverFigures(
        nodes=len(routing.seen), failed_node=at.failed, keys=len(routing.homes), failed_keys=len(failed_keys),
        homes_known=len(routing.homes), ops=len(ops), ops_skipped=batch.skipped, errors=by_class,
        errors_before_fault=sum(1 for op in errors if op[1] < at.fault_ms),
        errors_late_in_outage=sum(1 for op in errors if half_ms <= op[1] < at.outage_end_ms),
        errors_after_ejection=0 if ejected is None else sum(
            1 for op in errors if ejected + EJECTING_MS <= op[1] < at.outage_end_ms),
        errors_after_settled=errors_after_settled(ops, at.back_ms),
        errors_at_end=sum(1 for op in errors if at.back_ms and op[1] >= max(at.back_ms, tail_from)),
        restored_s=None if readmitted is None else restored(routing, at, readmitted),
        last_error_s=seconds(max(op[1] for op in after_fault) - at.fault_ms) if after_fault else None,
        misses_failed_keys=failed_misses, misses_other_keys=len(misses) - failed_misses,
        stale_reads=sum(1 for op in ops if op[3] == STALE),
        stale_after_back=sum(1 for op in ops if op[3] == STALE and at.back_ms and op[0] >= at.back_ms),
        exposed_reads=exposed_reads(ops, failed_keys, at, readmitted) if moved else 0,
        written_in_outage=len(written_in_outage(ops, failed_keys, at)),
        wrong_values=sum(1 for op in ops if op[3] == WRONG),
        lost_writes=sum(1 for op in ops if op[3] == NOT_STORED),
        ejected_s=None if ejected is None else seconds(ejected - at.fault_ms),
        readmitted_s=None if readmitted is None else seconds(readmitted - at.back_ms),
        moved_keys=moved, seen_keys=seen, moved_after=round(tail_moved / tail_seen, 4) if tail_seen else None,
        failed_key_ops=len(in_outage), longest_op_s=round(max((op[4] for op in ops), default=0) / 1e6, 4),
        longest_failed_key_op_s=round(max((op[4] for op in in_outage), default=0) / 1e6, 4),
        unread_connections=unread, other_misses=tuple(
            (seconds(op[1] - at.t0_ms), op[2], routing.homes.get(op[2], -1) + 1) for op in misses
            if not (op[2] in failed_keys and op[1] >= at.fault_ms))[:OTHER_MISSES_KEPT])


def errors_after_settled(ops: list[tuple[int, int, int, int, int]], back_ms: int) -> int:
    """Errors, once the node was back, after the load had run SETTLE_S without any: the outage was over for every
    client by then, so the fault does not explain them. 0 when the node never came back."""
    if not back_ms:
        return 0
    ends = sorted(op[1] for op in ops if op[3] >= FIRST_ERROR and op[1] >= back_ms)
    last = back_ms
    for index, end in enumerate(ends):
        if end - last >= SETTLE_S * 1000:
            return len(ends) - index
        last = end
    return 0


def restored(routing: Routing, at: Moments, readmitted: int, window_ms: int = 250,
             share: float = 0.75) -> float | None:
    """From the node's return to the first quarter second in which it got `share` of the keys a second it got
    before the fault (from the first key in it): every client sends to it again. None when that never happened."""
    if not at.back_ms or at.fault_ms <= at.t0_ms:
        return None
    before = len(routing.between(at.failed, at.t0_ms, at.fault_ms)) / (at.fault_ms - at.t0_ms)
    if not before:
        return None
    for start in range(at.back_ms, at.end_ms - window_ms + 1, window_ms // 5):
        window = routing.between(at.failed, start, start + window_ms)
        if len(window) >= share * before * window_ms:
            return seconds(max(window[0][0], readmitted) - at.back_ms)
    return None


def seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def first_rerouted(routing: Routing, at: Moments, failed_keys: set[int]) -> int | None:
    """The first ms, from the fault to the node's return, that a key of the failed node went to another node."""
    firsts = [next((ms for ms, key in routing.between(node, at.fault_ms, at.outage_end_ms) if key in failed_keys),
                   None) for node in range(len(routing.seen)) if node != at.failed]
    found = [ms for ms in firsts if ms is not None]
    return min(found) if found else None


def first_seen(routing: Routing, node: int, start_ms: int, end_ms: int) -> int | None:
    entries = routing.between(node, start_ms, end_ms + 1)
    return entries[0][0] if entries else None


def exposed_reads(ops: list[tuple[int, int, int, int, int]], failed_keys: set[int], at: Moments,
                  readmitted: int | None) -> int:
    """Gets, after re-admission, of the failed node's keys written during the outage (so elsewhere): each could
    have read an old value the node kept (an upper bound: a later write may have reached the node first)."""
    if readmitted is None:
        return 0
    written = written_in_outage(ops, failed_keys, at)
    return sum(1 for op in ops if op[3] in (GET_OK, STALE, MISS) and op[2] in written and op[0] >= readmitted)


def written_in_outage(ops: list[tuple[int, int, int, int, int]], failed_keys: set[int], at: Moments) -> set[int]:
    """Keys of the failed node whose set returned while it was out (so, when keys moved, elsewhere)."""
    return {op[2] for op in ops if op[3] == SET_OK and op[2] in failed_keys and at.fault_ms <= op[1] < at.outage_end_ms}


def interval_for(duration_s: float) -> float:
    return next((length for length in INTERVALS_S if duration_s >= MIN_INTERVALS * length), INTERVALS_S[-1])


def over_time(batch: OpBatch, routing: Routing, at: Moments, interval_s: float) -> list[dict[str, Any]]:
    """Per interval from the load's start: ops by outcome, p99 and max of the ok ones, and keys sent to each
    node. Each op is counted where it completed; each key where its proxy forwarded it."""
    step = round(interval_s * 1000)
    count = max(1, -(-(at.end_ms - at.t0_ms) // step))
    rows = [{"t_s": round(i * interval_s, 3), "length_s": interval_s, "ok": 0, "misses": 0, "stale": 0,
             "wrong": 0, "lost": 0, "errors": 0, "took_us": [], "nodes": [0] * len(routing.seen)} for i in range(count)]
    for _, end, _, code, took in zip(batch.start_ms, batch.end_ms, batch.key, batch.code, batch.took_us):
        row = rows[min(count - 1, max(0, (end - at.t0_ms) // step))]
        name = "errors" if code >= FIRST_ERROR else {MISS: "misses", STALE: "stale", WRONG: "wrong",
                                                      NOT_STORED: "lost"}.get(code, "ok")
        row[name] += 1
        if name == "ok":
            row["took_us"].append(took)
    for node, entries in enumerate(routing.seen):
        for ms, _ in routing.between(node, at.t0_ms, at.end_ms + 1):
            rows[min(count - 1, (ms - at.t0_ms) // step)]["nodes"][node] += 1
    for row in rows:
        took = sorted(row.pop("took_us"))
        row["p99_us"] = took[max(0, math.ceil(len(took) * 0.99) - 1)] if took else None  # the nearest rank
        row["max_us"] = took[-1] if took else None
    return rows


@dataclass(frozen=True)
class RouteProbe:
    """Where the configuration's client sends each of `keys` probe keys with every node, and with the failed
    node taken out of its server list (as an operator who removes a dead node does)."""

    keys: int
    moved: int  # keys whose node changed
    moved_healthy: int  # of those, keys that were not on the failed node
    on_failed: int  # keys that were on the failed node

    @property
    def moved_share(self) -> float:
        return round(self.moved / self.keys, 4) if self.keys else 0.0

    @property
    def healthy_moved_share(self) -> float | None:
        healthy = self.keys - self.on_failed
        return round(self.moved_healthy / healthy, 4) if healthy else None

    def to_json(self) -> dict[str, Any]:
        return {"keys": self.keys, "moved": self.moved, "moved_healthy": self.moved_healthy,
                "on_failed": self.on_failed}

    @classmethod
    def compared(cls, before: dict[int, int], after: dict[int, int], failed: int) -> "RouteProbe":
        """From key -> node with every node (`before`) and without the failed one (`after`)."""
        common = [key for key in before if key in after]
        moved = [key for key in common if before[key] != after[key]]
        return cls(len(common), len(moved), sum(1 for key in moved if before[key] != failed),
                   sum(1 for key in common if before[key] == failed))


@dataclass
class FailoverStats:
    """The worker's snapshots, merged as they arrive (for the runner, and for the progress line)."""

    batch: OpBatch = field(default_factory=OpBatch)
    names: dict[int, str] = field(default_factory=dict)
    errors: Any = None
    t0_ns: int | None = None

    def __post_init__(self) -> None:
        import collections

        self.errors = collections.Counter()

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        batch = OpBatch.from_message(snap)
        self.names.update({int(code): name for code, name in snap["errors"].items()})
        if self.t0_ns is None:
            self.t0_ns = int(snap["t0_ns"])
        self.batch.add(batch)
        for code in batch.code:
            if code >= FIRST_ERROR:
                self.errors[self.names.get(code, str(code))] += 1

    def ok_ops(self) -> int:
        return len(self.batch)
