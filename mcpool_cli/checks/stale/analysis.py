"""`mcpool check-stale` as a library: what the workers saw of a fault, laid against its times.

The workers' batches are merged as they arrive (`StaleStats`); once the run is over, `analyse` reads false
misses, the outage window and the recovery time off them, on the clock of the fault's `FaultTimes`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli.checks.stale.faults import FaultTimes
from mcpool_cli.checks.stale.loop import StaleBatch

SETTLED_S = 1.0  # failure-free load after the server was back: failures later than that the fault does not explain


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
    """
    ms = 1_000_000
    false, unverified = [], 0
    for start, end in batch.misses:
        if times.refill is not None and end >= times.refill[0] and start <= times.refill[1]:
            unverified += 1
        else:
            false.append((start, end))
    failures = sorted([t * ms for t, n in batch.fail_ms.items() if n and t * ms >= times.start_ns - ms] +
                      [end for _, end in false if end >= times.start_ns])
    stalls = [start for start, end in batch.slow if end >= times.start_ns]  # each ends in its own success
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


@dataclass
class StaleStats:
    """The worker's batches, merged as they arrive."""

    total: StaleBatch = field(default_factory=StaleBatch)
    errors: dict[str, int] = field(default_factory=dict)  # for the progress line

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        batch = StaleBatch.from_message(snap)
        self.total.add(batch)
        for name, count in batch.errors.items():
            self.errors[name] = self.errors.get(name, 0) + count

    def ok_ops(self) -> int:
        return self.total.ok


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
