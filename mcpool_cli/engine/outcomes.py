"""Merging worker snapshots into run results, and the versioned JSON schema built from them."""

from __future__ import annotations

import base64
import sys
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

RESULT_SCHEMA = "mcpool.result/1"
LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES = 1, 3_600_000_000_000, 3  # 1 ns .. 1 h, 3 digits
OPS = ("get", "set", "delete", "get_multi")
BASE_OPS = ("get", "set")  # always in by_op and the latency table; the other ops only when a run did them
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))
SEVERITY = ("ok", "interrupted", "error", "hung", "crashed")  # the worst worker outcome is the run's


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)


def quantize_counts(values_ns: array) -> Counter:
    """Count values by the lowest value HdrHistogram would file them under (3 digits: 2048 sub-buckets).

    Lossless at the histogram's precision and about 4x cheaper than recording each value.
    """
    return Counter(v >> (s := max(0, v.bit_length() - 11)) << s for v in values_ns)


def decode_ns(text: str) -> array:
    data = array("q")
    data.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        data.byteswap()
    return data


@dataclass
class WorkerOutcome:
    """How one worker process ended."""

    outcome: str = "ok"
    signal: str | None = None
    stderr_tail: str | None = None
    message: str | None = None
    measured_s: float = 0.0
    lifetime_s: float = 0.0  # from spawn to the end of its output


PENDING_LIMIT = 2_000_000  # raw latencies held before folding them into the histograms (16 MB)


@dataclass
class RunStats:
    """Everything measured for one strategy, merged across workers as snapshots arrive (parent side).

    Raw latencies are kept as received and folded into the histograms only when many have piled up or a
    histogram is read, so that the parent spends little CPU while the load runs on the same cores.
    """

    _histograms: dict[str, HdrHistogram] = field(
        default_factory=lambda: {name: new_histogram() for name in (*OPS, "acquire")})
    _pending: list[tuple[str, array]] = field(default_factory=list)
    _pending_values: int = 0
    succeeded: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    wrong_values: int = 0
    corrupt_values: int = 0
    misses: int = 0
    pool_exhausted: int = 0
    completed: int = 0  # every finished op, warm-up included
    _out_of_range: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        for name, encoded in snap["lat_ns"].items():
            values = decode_ns(encoded)
            self._pending.append((name, values))
            self._pending_values += len(values)
            self.succeeded[name] += len(values)
        if self._pending_values > PENDING_LIMIT:
            self._fold()
        self.completed += snap["completed"]
        self.failed.update(snap["failed"])
        self.errors.update(snap["errors"])
        self.wrong_values += snap["wrong_values"]
        self.corrupt_values += snap["corrupt_values"]
        self.misses += snap["misses"]
        self.pool_exhausted += snap["exhausted"]
        self.examples += snap["examples"][: 5 - len(self.examples)]

    def _fold(self) -> None:
        counts: dict[str, Counter] = {name: Counter() for name in self._histograms}
        for name, values in self._pending:
            counts[name].update(quantize_counts(values))
        self._pending, self._pending_values = [], 0
        for name, by_value in counts.items():
            record = self._histograms[name].record_value
            for value, count in by_value.items():
                if not record(value, count):
                    self._out_of_range += count

    @property
    def out_of_range(self) -> int:
        """Values HdrHistogram could not hold (1 ns to 1 h): counted, never silently dropped."""
        self._fold()
        return self._out_of_range

    def histogram(self, name: str) -> HdrHistogram:
        """The histogram of an op in OPS or of `acquire`, with every value received so far."""
        self._fold()
        return self._histograms[name]

    def ok_ops(self) -> int:
        """Measured operations that succeeded."""
        return sum(self.succeeded[n] for n in OPS)

    def ops(self, op: str | None = None) -> int:
        """Measured operations (successful and failed) of one op type, or of all."""
        names = OPS if op is None else (op,)
        return sum(self.succeeded[n] + self.failed[n] for n in names)

    def ops_done(self) -> tuple[str, ...]:
        """The ops to report: get and set, and any other op the run did."""
        return tuple(op for op in OPS if op in BASE_OPS or self.ops(op))

    def all_ops_histogram(self) -> HdrHistogram:
        """Every op's latencies in one histogram (empty ones left out: HdrHistogram.add would take their min, 0)."""
        merged = new_histogram()
        for name in OPS:
            if self.histogram(name).get_total_count():
                merged.add(self.histogram(name))
        return merged


def latency_summary_us(histogram: HdrHistogram) -> dict[str, float | None]:
    """min, mean, percentiles and max in µs (null for an empty histogram)."""
    if histogram.get_total_count() == 0:
        return {key: None for key in ("min", "mean", *(p for p, _ in PERCENTILES), "max")}
    summary = {"min": histogram.get_min_value() / 1000, "mean": round(histogram.get_mean_value() / 1000, 3)}
    for name, percentile in PERCENTILES:
        summary[name] = histogram.get_value_at_percentile(percentile) / 1000
    summary["max"] = histogram.get_max_value() / 1000
    return summary


def encode_histogram(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def latency_block(histogram: HdrHistogram, count: int) -> dict[str, Any]:
    return {"count": count, "latency_us": latency_summary_us(histogram), "histogram": encode_histogram(histogram)}


def worst_outcome(outcomes: list[WorkerOutcome]) -> WorkerOutcome:
    return max(outcomes, key=lambda o: SEVERITY.index(o.outcome)) if outcomes else WorkerOutcome()


@dataclass(frozen=True)
class RunResult:
    """A finished (or broken off) strategy run, ready to report."""

    strategy: str
    threads: int
    processes: int
    pool_size: int | None
    duration_s: float
    stats: RunStats
    workers: tuple[WorkerOutcome, ...]
    explanation: str = ""
    interrupted: bool = False  # Ctrl-C reached this run (whatever else its workers did)

    @property
    def outcome(self) -> WorkerOutcome:
        return worst_outcome(list(self.workers))

    @property
    def error_count(self) -> int:
        return sum(self.stats.errors.values())

    @property
    def measured_s(self) -> float:
        return max((w.measured_s for w in self.workers), default=0.0)

    @property
    def ops_per_s(self) -> float:
        """Successful ops per second over the time actually measured (failed ops are not throughput)."""
        return self.stats.ok_ops() / self.measured_s if self.measured_s > 0 else 0.0

    @property
    def clean(self) -> bool:
        """Finished, did work, and saw no error and no wrong value."""
        return (self.outcome.outcome == "ok" and self.stats.ok_ops() > 0 and self.error_count == 0
                and self.stats.wrong_values == 0 and self.stats.corrupt_values == 0)

    def to_json(self) -> dict[str, Any]:
        stats, outcome = self.stats, self.outcome
        all_hist = stats.all_ops_histogram()
        return {
            "strategy": self.strategy, "threads": self.threads, "processes": self.processes,
            "pool_size": self.pool_size, "outcome": outcome.outcome,
            "outcome_detail": {"signal": outcome.signal, "stderr_tail": outcome.stderr_tail,
                               "message": outcome.message, "explanation": self.explanation},
            "duration_s": round(self.measured_s, 3),
            "ops": stats.ops(), "failed_ops": stats.ops() - stats.ok_ops(),
            "ops_including_warmup": stats.completed, "ops_per_s": round(self.ops_per_s, 1),
            "error_count": self.error_count, "errors": dict(stats.errors.most_common()),
            "wrong_values": stats.wrong_values, "corrupt_values": stats.corrupt_values,
            "misses": stats.misses, "pool_exhausted": stats.pool_exhausted,
            "out_of_range_values": stats.out_of_range, "examples": stats.examples,
            "latency_us": latency_summary_us(all_hist), "histogram": encode_histogram(all_hist),
            "histogram_unit": "ns",
            "by_op": {op: latency_block(stats.histogram(op), stats.ops(op)) for op in stats.ops_done()},
            "acquire": latency_block(stats.histogram("acquire"), stats.succeeded["acquire"]),
            "workers": [vars(w) for w in self.workers],
        }
