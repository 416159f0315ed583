"""`mcpool check-stale` as a library: what the workers saw of a fault, laid against its times.

The workers' batches are merged as they arrive (`StaleStats`); once the run is over, `analyse` reads false
misses, the outage window and the recovery time off them, on the clock of the fault's `FaultTimes`.

The run's timeline (`OverTime`) is an `engine.timeline.Timeline` of whole-millisecond intervals whose origin is
the moment the worker's load started (`t0_ns`, the moment the fault's `--before` counts from), floored to the
millisecond. Every op is filed under the interval of the millisecond it completed in — the same millisecond the
analysis reads from `ok_ms` and `fail_ms` — so each interval's counts are exactly the sums of those ms counts,
and the outage and recovery keep their millisecond precision: the timeline is a view over them, not their
source. The fault's moments are saved on the timeline's clock (`fault_at_s`, `back_at_s`: seconds from the
origin). With `--before` a multiple of the interval (the defaults), the fault is planned for an interval
boundary and strikes within the parent's poll (a few ms) after it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli.engine.faults import FaultTimes
from mcpool_cli.checks.stale.loop import StaleBatch
from mcpool_cli.engine.histograms import quantize_counts
from mcpool_cli.engine.timeline import Timeline

SETTLED_S = 1.0  # failure-free load after the server was back: failures later than that the fault does not explain
MS = 1_000_000
INTERVALS_S = (1.0, 0.5, 0.25, 0.2, 0.1)  # whole milliseconds, longest first
MIN_INTERVALS = 16  # a shorter run gets shorter intervals, so the fault and the recovery fall in different ones


@dataclass(frozen=True)
class StaleFigures:
    """One strategy's run through the fault, from the worker's batches and the fault's times."""

    false_misses: int  # keys (a get_multi may miss four)
    false_miss_ops: int
    unverified_misses: int
    errors: dict[str, int]
    wrong_values: int
    ops_scheduled: int
    ops_ok: int
    ops_skipped: int
    outage_s: float
    recovery_s: float | None
    longest_op_s: float
    first_failure_s: float | None  # after the fault struck
    errors_before_fault: int = 0  # failed ops that ended before the fault struck: the fault cannot explain them
    errors_after_settled: int = 0  # failed ops after the load ran SETTLED_S without a failure once the server was back

    @property
    def unexplained_errors(self) -> int:
        """Failed ops outside the fault and its outage: a client that fails against a healthy server."""
        return self.errors_before_fault + self.errors_after_settled

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def ops_failed(self) -> int:
        return self.error_count + self.wrong_values + self.false_miss_ops

    @property
    def ops_lost(self) -> int:
        return self.ops_failed + self.ops_skipped


def analyse(batch: StaleBatch, times: FaultTimes) -> StaleFigures:
    """False misses, the outage window and the recovery time, on the fault's clock.

    A miss is false unless the fault really removed the key: only a restart does, and only until the keys
    are written back. The outage runs from the first failed or stalled op touched by the fault to the first
    success after the last failure; recovery is that first success minus the moment the server was back.
    A stall that began SETTLED_S or more after both the last failure and the server's return is not the
    fault's (a busy machine can hold any op 50 ms): it does not stretch the outage.
    """
    ms = 1_000_000
    false, unverified = split_misses(batch, times)
    failures = sorted([t * ms for t, n in batch.fail_ms.items() if n and t * ms >= times.start_ns - ms] +
                      [end for _, end in false if end >= times.start_ns])
    settled_from = max([times.back_ns, *failures[-1:]]) + int(SETTLED_S * 1e9) if times.back_ns else None
    stalls = [start for start, end in batch.slow  # each ends in its own success
              if end >= times.start_ns and (settled_from is None or start < settled_from)]
    bad = failures + stalls
    first_failure = min(bad) if bad else None
    if first_failure is None:
        after = [t * ms for t in batch.ok_ms if t * ms >= times.back_ns]
        recovered, outage = (min(after) if after else None), 0.0
    else:
        last_bad = max(bad)
        after = [t * ms for t in batch.ok_ms if t * ms > last_bad]
        recovered = min(after) if after else None
        end = recovered if recovered is not None else max([last_bad, *(t * ms for t in batch.ok_ms)])
        outage = (end - first_failure) / 1e9
    if not times.back_ns:  # the fault never ended (Ctrl-C, or the server would not start again)
        recovered = None
    recovery = None if recovered is None else max(0.0, (recovered - times.back_ns) / 1e9)
    before = sum(n for t, n in batch.fail_ms.items() if t * ms < times.start_ns - ms)
    return StaleFigures(errors_before_fault=before, errors_after_settled=failed_after_settled(batch, times.back_ns),
                        false_misses=len(false), false_miss_ops=len(set(false)), unverified_misses=unverified,
                        errors=dict(batch.errors), wrong_values=batch.wrong, ops_scheduled=batch.scheduled,
                        ops_ok=batch.ok, ops_skipped=batch.skipped, outage_s=round(outage, 4),
                        recovery_s=None if recovery is None else round(recovery, 4),
                        longest_op_s=round(batch.max_op_ns / 1e9, 4),
                        first_failure_s=None if first_failure is None else
                        round(max(0, first_failure - times.start_ns) / 1e9, 4))


def split_misses(batch: StaleBatch, times: FaultTimes) -> tuple[list[tuple[int, int]], int]:
    """The false misses (start, end), and how many misses landed while a restart wrote the keys back (real
    ones, maybe)."""
    false, unverified = [], 0
    for start, end in batch.misses:
        if times.refill is not None and end >= times.refill[0] and start <= times.refill[1]:
            unverified += 1
        else:
            false.append((start, end))
    return false, unverified


def interval_for(duration_s: float) -> float:
    """The timeline's interval: 1 s, or the longest shorter one that still cuts the run into MIN_INTERVALS."""
    return next((length for length in INTERVALS_S if duration_s >= MIN_INTERVALS * length), INTERVALS_S[-1])


@dataclass(frozen=True)
class OverTime:
    """One run's intervals, and when the fault struck and ended on their clock (s from the origin; see the
    module's docstring). `measured_s`: from the origin to the millisecond the last op completed in."""

    timeline: Timeline = field(hash=False)
    measured_s: float = 0.0
    fault_at_s: float | None = None
    back_at_s: float | None = None  # when the server was usable again; None if it never was

    def to_json(self) -> dict[str, Any]:
        return {"interval_s": self.timeline.interval_s, "fault_at_s": self.fault_at_s, "back_at_s": self.back_at_s,
                "intervals": self.timeline.to_json(self.measured_s)}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "OverTime | None":
        """A saved result's timeline; None for a result saved before check-stale kept one."""
        if row.get("intervals") is None:
            return None
        rows = list(row["intervals"])
        measured_s = round(rows[-1]["t_s"] + rows[-1]["length_s"], 3) if rows else 0.0  # whole ms
        return cls(Timeline.from_json(rows, float(row["interval_s"]), 1), measured_s,
                   none_or_float(row.get("fault_at_s")), none_or_float(row.get("back_at_s")))


def none_or_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class StaleStats:
    """The worker's batches, merged as they arrive; each op is filed at once under its interval of the
    timeline (check-stale runs one worker process: its `t0_ns` is the origin)."""

    interval_s: float = 1.0
    total: StaleBatch = field(default_factory=StaleBatch)
    errors: dict[str, int] = field(default_factory=dict)  # for the progress line
    origin_ms: int | None = None  # t0_ns floored to the millisecond: the timeline's origin
    last_ms: int | None = None  # the last millisecond an op completed in
    timeline: Timeline = field(init=False)

    def __post_init__(self) -> None:
        self.timeline = Timeline(self.interval_s, 1)  # slot = interval: an op's is read off its millisecond

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        batch = StaleBatch.from_message(snap)
        if self.origin_ms is None:
            self.origin_ms = int(snap["t0_ns"]) // MS
        self.file(batch)
        batch.ok_end_ms, batch.ok_ns = [], []  # filed: the total keeps counts by the ms, not every latency
        self.total.add(batch)
        for name, count in batch.errors.items():
            self.errors[name] = self.errors.get(name, 0) + count

    def ok_ops(self) -> int:
        return self.total.ok

    def interval_of(self, ms: int) -> int:
        """The index of the interval a millisecond (of the monotonic clock) lies in."""
        assert self.origin_ms is not None
        return (ms - self.origin_ms) // round(self.interval_s * 1000)

    def file(self, batch: StaleBatch) -> None:
        """A batch's ops under their intervals: counts, and the latencies of the successful ones."""
        for counts, ok, failed, errors in ((batch.ok_ms, 1, 0, 0), (batch.fail_ms, 0, 1, 0), (batch.error_ms, 0, 0, 1)):
            for ms, n in counts.items():
                self.timeline.count(self.interval_of(ms), n * ok, n * failed, n * errors)
        latencies: dict[int, list[int]] = {}
        for ms, took in zip(batch.ok_end_ms, batch.ok_ns):
            latencies.setdefault(self.interval_of(ms), []).append(took)
        for index, values in latencies.items():
            self.timeline.record(index, quantize_counts(values))  # an op lasts less than the run: never out of range
        ends = [*batch.ok_ms, *batch.fail_ms, *(end // MS for _, end in batch.misses)]
        if ends:
            self.last_ms = max(self.last_ms or 0, *ends)
        self.timeline.seal_old()

    def over_time(self, times: FaultTimes | None, load_s: float | None) -> OverTime:
        """The timeline once the run is over: false misses filed as failed ops (only now can they be told),
        ops that completed after the load's end (`load_s` from its start, the idle pause included; None when
        not known) filed under its last interval, and the fault's moments on its clock. Call it once."""
        if self.origin_ms is None or self.last_ms is None:  # nothing came, or nothing completed
            return OverTime(self.timeline)
        origin_ns, interval_ms = self.origin_ms * MS, round(self.interval_s * 1000)
        if times is not None:
            for _, end in set(split_misses(self.total, times)[0]):  # a get_multi's false misses are one failed op
                self.timeline.count(self.interval_of(end // MS), 0, 1, 0)
        end_ms = self.last_ms + 1
        if load_s is not None:
            load_end_ms = self.origin_ms + round(load_s * 1000)  # so the last interval ends at load_s
            self.timeline.fold_after((load_end_ms - 1 - self.origin_ms) // interval_ms)
            end_ms = min(end_ms, load_end_ms)
        measured_s = (end_ms - self.origin_ms) / 1000
        if times is None:
            return OverTime(self.timeline, measured_s)
        return OverTime(self.timeline, measured_s, round((times.start_ns - origin_ns) / 1e9, 4),
                        round((times.back_ns - origin_ns) / 1e9, 4) if times.back_ns else None)


def failed_after_settled(batch: StaleBatch, back_ns: int) -> int:
    """Failed ops after the load, once the server was back, went SETTLED_S from a success without any failure:
    the outage was over by then, so the fault does not explain them. 0 when the server never came back."""
    if not back_ns:
        return 0
    ms, settled_ns = 1_000_000, int(SETTLED_S * 1e9)
    oks = sorted(t * ms for t, n in batch.ok_ms.items() if n and t * ms >= back_ns)
    fails = sorted(t * ms for t, n in batch.fail_ms.items() if n and t * ms >= back_ns)
    at = bisect.bisect_left(oks, back_ns)
    for fail in fails:
        if at >= len(oks):
            return 0  # nothing succeeded after this failure: the outage never ended
        if fail < oks[at]:
            continue
        if fail - oks[at] >= settled_ns:
            return sum(n for t, n in batch.fail_ms.items() if t * ms >= fail)
        at = bisect.bisect_right(oks, fail)
    return 0
