"""A run's timeline: ops, failures and a latency histogram per interval, filed by the slot a batch belongs to.

Workers flush at the boundaries of a grid of slots that tile each interval (`bench.loop.slot_grid`), so every
batch belongs to exactly one interval. Histograms of intervals the run has left behind are encoded and
summarised (`seal`), so a long run holds a few hundred bytes per interval, not a live HdrHistogram each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from mcpool_cli.engine.histograms import decode_histogram, encode_histogram, latency_summary_us, new_histogram

LIVE_INTERVALS = 3  # intervals kept as live histograms behind the newest; older ones are sealed
SUMMARY = ("p50", "p99", "max")


@dataclass
class Interval:
    """One interval's figures; its histogram live while batches may still arrive, else encoded."""

    ops: int = 0  # successful ops
    failed_ops: int = 0
    errors: int = 0
    live: HdrHistogram | None = None
    encoded: str = ""
    latency_us: dict[str, float | None] = field(default_factory=lambda: {name: None for name in SUMMARY})

    def histogram(self) -> HdrHistogram:
        """The live histogram, decoded again if the interval was sealed (a batch that came late)."""
        if self.live is None:
            self.live = decode_histogram(self.encoded) if self.encoded else new_histogram()
        return self.live

    def seal(self) -> None:
        if self.live is None and not self.encoded:  # nothing completed in it: an empty histogram says so
            self.live = new_histogram()
        if self.live is not None:
            summary = latency_summary_us(self.live)
            self.latency_us = {name: summary[name] for name in SUMMARY}
            self.encoded, self.live = encode_histogram(self.live), None


class Timeline:
    """Intervals of `interval_s` from the start of measurement; `slots_per_interval` slots make one."""

    def __init__(self, interval_s: float, slots_per_interval: int) -> None:
        self.interval_s = interval_s
        self.slots_per_interval = slots_per_interval
        self.intervals: dict[int, Interval] = {}

    def at(self, slot: int) -> Interval | None:
        """The interval a slot lies in; None for a warm-up slot."""
        if slot < 0:
            return None
        index = slot // self.slots_per_interval
        if index not in self.intervals:
            self.intervals[index] = Interval()
        return self.intervals[index]

    def count(self, slot: int, ok: int, failed: int, errors: int) -> None:
        interval = self.at(slot)
        if interval is not None:
            interval.ops += ok
            interval.failed_ops += failed
            interval.errors += errors

    def record(self, slot: int, by_value: Counter) -> int:
        """Add quantized latencies (value: count) to a slot's interval; how many did not fit the histogram."""
        interval = self.at(slot)
        if interval is None:
            return 0
        record, dropped = interval.histogram().record_value, 0
        for value, count in by_value.items():
            if not record(value, count):
                dropped += count
        return dropped

    def fold_after(self, last: int) -> None:
        """File every interval after `last` under it: ops that completed after a run's end belong to its last
        interval (bench's workers file them so; check-stale's parent, which files by the millisecond, here)."""
        later = sorted(index for index in self.intervals if index > last)
        if not later:
            return
        target = self.at(last)
        assert target is not None
        for index in later:
            late = self.intervals.pop(index)
            target.ops, target.failed_ops = target.ops + late.ops, target.failed_ops + late.failed_ops
            target.errors += late.errors
            if late.live is not None or late.encoded:
                histogram = late.histogram()
                if histogram.get_total_count():  # an empty one would lower the target's min to 0
                    target.histogram().add(histogram)

    def add(self, other: "Timeline", shift: int = 0) -> None:
        """Add another timeline of the same interval to this one, its interval i filed under i + `shift`
        (several machines' runs aligned on the wall clock): counts summed, histograms added."""
        for index, interval in other.intervals.items():
            target = self.intervals.setdefault(index + shift, Interval())
            target.ops, target.failed_ops = target.ops + interval.ops, target.failed_ops + interval.failed_ops
            target.errors += interval.errors
            if interval.live is not None or interval.encoded:
                histogram = interval.histogram()
                if histogram.get_total_count():  # an empty one would lower the target's min to 0
                    target.histogram().add(histogram)

    def seal_old(self) -> None:
        """Encode the intervals well behind the newest (batches reach the parent within a second or so)."""
        if self.intervals:
            newest = max(self.intervals)
            for index, interval in self.intervals.items():
                if index < newest - LIVE_INTERVALS:
                    interval.seal()

    def to_json(self, measured_s: float) -> list[dict[str, Any]]:
        """Every interval from the start of measurement to the last one with data, empty ones included
        (an interval in which nothing completed is a stall, and must show)."""
        rows = []
        last = max(self.intervals, default=-1)
        for index in range(last + 1):
            interval = self.intervals.get(index, Interval())
            interval.seal()
            start_s = round(index * self.interval_s, 6)
            length_s = round(max(0.0, min(self.interval_s, measured_s - start_s)) or self.interval_s, 6)
            rows.append({"t_s": start_s, "length_s": length_s, "ops": interval.ops,
                         "failed_ops": interval.failed_ops, "errors": interval.errors,
                         "ops_per_s": round(interval.ops / length_s, 1), "latency_us": dict(interval.latency_us),
                         "histogram": interval.encoded})
        return rows

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]], interval_s: float, slots_per_interval: int) -> "Timeline":
        timeline = cls(interval_s, slots_per_interval)
        for index, row in enumerate(rows):
            interval = Interval(int(row["ops"]), int(row["failed_ops"]), int(row["errors"]),
                                encoded=str(row.get("histogram") or ""),
                                latency_us={name: (row.get("latency_us") or {}).get(name) for name in SUMMARY})
            if interval.encoded:
                decode_histogram(interval.encoded)  # a damaged one is found on loading, not on drawing
            timeline.intervals[index] = interval
        return timeline

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timeline):
            return NotImplemented
        return self.to_json(0) == other.to_json(0)
