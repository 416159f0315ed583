"""One bench run, parent side: worker snapshots merged into counters and histograms, and its JSON."""

from __future__ import annotations

import math
import sys
from array import array
from collections import Counter
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from hdrh.histogram import HdrHistogram

from mcpool_cli.bench.loop import TIMED, Batch, slot_grid
from mcpool_cli.engine.histograms import (decode_histogram, encode_histogram, latency_block,
                                          latency_summary_us, new_histogram, quantize_counts)
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.session import fields_of
from mcpool_cli.engine.timeline import Timeline
from mcpool_cli.engine.workload import OP_NAMES

OPS = OP_NAMES
BASE_OPS = ("get", "set")  # always in by_op and the latency table; the other ops only when a run did them


def counts(mapping: dict[str, Any]) -> Counter:
    """Saved counts by name as a Counter, zeros left out."""
    return Counter({str(name): int(count) for name, count in mapping.items() if count})


PENDING_LIMIT = 500_000  # raw latencies held before folding them into the histograms (4 MB): a steady parent
SENT = "uncorrected:"  # the prefix of the open model's uncorrected histograms: uncorrected:get, ...
LATE = "late"  # the open model's lateness of each op's start
LATE_NS = 1_000_000  # an op that started this much after its intended start counts as late
HISTOGRAMS = (*TIMED, *(SENT + name for name in TIMED), LATE)


@dataclass
class RunStats:
    """Everything measured for one strategy, merged across workers as snapshots arrive (parent side).

    Raw latencies are kept as received and folded into the histograms only when many have piled up or a
    histogram is read, so that the parent spends little CPU while the load runs on the same cores. Each batch
    belongs to one slot of the run's timeline: its counts go to that interval at once, its latencies when
    they are folded.
    """

    interval_s: float = 1.0
    _histograms: dict[str, HdrHistogram] = field(default_factory=lambda: {name: new_histogram() for name in HISTOGRAMS})
    _pending: list[tuple[str, int, array]] = field(default_factory=list)  # (histogram, slot, values)
    _pending_values: int = 0
    succeeded: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    site_errors: dict[str, Counter] = field(default_factory=dict)  # reserve, release: errors by class
    wrong_values: int = 0
    corrupt_values: int = 0
    misses: int = 0
    pool_exhausted: int = 0
    due_at_end: int = 0
    completed: int = 0  # every finished op, warm-up included
    _out_of_range: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)
    timeline: Timeline | None = None
    started_unix: float = 0.0  # when measuring started, on the wall clock (the earliest worker's)
    raw_latencies_path: str = ""  # a test hook: append every op latency received here (int64 ns, little-endian)

    def __post_init__(self) -> None:
        if self.timeline is None:
            self.timeline = Timeline(self.interval_s, slot_grid(self.interval_s)[1])

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        batch = Batch.from_message(snap)
        if self.raw_latencies_path:
            self._append_raw(batch)
        if snap.get("t0_unix"):
            self.started_unix = min(self.started_unix or math.inf, float(snap["t0_unix"]))
        for name, values in batch.latencies().items():
            self._pending.append((name, batch.slot, values))
            self._pending_values += len(values)
            self.succeeded[name] += len(values)
        for name, values in zip(TIMED, batch.sent):
            self._pending.append((SENT + name, batch.slot, values))
            self._pending_values += len(values)
        if batch.late_ns:
            self._pending.append((LATE, batch.slot, batch.late_ns))
            self._pending_values += len(batch.late_ns)
        if self._pending_values > PENDING_LIMIT:
            self._fold()
        failed = dict(zip(OPS, batch.failed))
        succeeded = sum(len(values) for values in batch.latencies().values()) - len(batch.acquire_ns)
        self.timeline.count(batch.slot, succeeded, sum(failed.values()), sum(batch.errors.values()))
        self.completed += batch.completed
        self.failed.update(failed)
        self.errors.update(batch.errors)
        for site, by_name in batch.site_errors.items():
            self.site_errors.setdefault(site, Counter()).update(by_name)
        self.wrong_values += batch.wrong_values
        self.corrupt_values += batch.corrupt_values
        self.misses += batch.misses
        self.pool_exhausted += batch.exhausted
        self.due_at_end += batch.due_at_end
        self.examples += batch.examples[: 5 - len(self.examples)]

    def _append_raw(self, batch: Batch) -> None:
        values = array("q")
        for name, latencies in batch.latencies().items():
            if name in OPS:
                values.extend(latencies)
        if sys.byteorder != "little":
            values.byteswap()
        with open(self.raw_latencies_path, "ab") as handle:
            handle.write(values.tobytes())

    def _fold(self) -> None:
        counts: dict[str, Counter] = {name: Counter() for name in self._histograms}
        for name, slot, values in self._pending:
            quantized = quantize_counts(values)
            counts[name].update(quantized)
            if name in OPS:  # the timeline's latency: every op's (from the intended start, when paced); a value
                self.timeline.record(slot, quantized)  # out of range is counted once, by the run's histograms
        self._pending, self._pending_values = [], 0
        for name, by_value in counts.items():
            record = self._histograms[name].record_value
            for value, count in by_value.items():
                if not record(value, count):
                    self._out_of_range += count
        self.timeline.seal_old()

    @property
    def out_of_range(self) -> int:
        """Values HdrHistogram could not hold (1 ns to 1 h): counted, never silently dropped."""
        self._fold()
        return self._out_of_range

    def histogram(self, name: str) -> HdrHistogram:
        """The histogram of an op in OPS, of `acquire`, of their uncorrected times (`uncorrected:get`, ...) or of
        `late`, with every value received so far."""
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

    def all_ops_histogram(self, prefix: str = "") -> HdrHistogram:
        """Every op's latencies in one histogram (empty ones left out: HdrHistogram.add would take their min, 0);
        `prefix` SENT for their uncorrected times."""
        merged = new_histogram()
        for name in OPS:
            if self.histogram(prefix + name).get_total_count():
                merged.add(self.histogram(prefix + name))
        return merged

    def late_ops(self) -> int:
        """Ops that started LATE_NS or more after their intended start."""
        histogram = self.histogram(LATE)
        return sum(item.count_at_value_iterated_to for item in histogram.get_recorded_iterator()
                   if item.value_iterated_to >= LATE_NS)

    def errors_by_site(self) -> dict[str, dict[str, int]]:
        """Errors by where they were raised: the pool's reserve(), the op, giving the client back."""
        sites = {site: dict(self.site_errors.get(site, Counter()).most_common()) for site in ("reserve", "release")}
        in_ops = self.errors - sum(self.site_errors.values(), Counter())
        return {"reserve": sites["reserve"], "op": dict(in_ops.most_common()), "release": sites["release"]}

    def __eq__(self, other: object) -> bool:
        """Equal counts and equal histograms (HdrHistogram itself compares by identity)."""
        if not isinstance(other, RunStats):
            return NotImplemented
        mine, theirs = self._comparable(), other._comparable()
        return mine == theirs

    def _comparable(self) -> tuple[Any, ...]:
        histograms = {name: encode_histogram(self.histogram(name)) for name in self._histograms
                      if self.histogram(name).get_total_count()}
        return (histograms, +self.succeeded, +self.failed, +self.errors, self.errors_by_site(), self.wrong_values,
                self.corrupt_values, self.misses, self.pool_exhausted, self.due_at_end, self.completed,
                self.out_of_range, self.examples, self.timeline, self.started_unix)

    @classmethod
    def from_json(cls, run: dict[str, Any]) -> "RunStats":
        """The counters and histograms of one saved bench run (a run saved before the timeline has none)."""
        interval_s = float(run.get("interval_s") or 1.0)
        stats = cls(interval_s=interval_s, _out_of_range=int(run.get("out_of_range_values") or 0),
                    started_unix=float(run.get("measure_started_unix") or 0.0),
                    timeline=Timeline.from_json(run.get("intervals") or [], interval_s, slot_grid(interval_s)[1]))
        for op, block in run["by_op"].items():
            if op in OPS:
                stats.succeeded[op] = stats.add_histogram(op, block["histogram"])
                stats.failed[op] = int(block["count"]) - stats.succeeded[op]
                if block.get("uncorrected_histogram"):
                    stats.add_histogram(SENT + op, block["uncorrected_histogram"])
        stats.add_histogram("acquire", run["acquire"]["histogram"])
        if run["acquire"].get("uncorrected_histogram"):
            stats.add_histogram(SENT + "acquire", run["acquire"]["uncorrected_histogram"])
        stats.succeeded["acquire"] = int(run["acquire"]["count"])
        rate = run.get("rate") or {}
        if rate.get("lateness_histogram"):
            stats.add_histogram(LATE, rate["lateness_histogram"])
        stats.due_at_end = int(rate.get("due_at_end") or 0)
        stats.completed, stats.errors = int(run["ops_including_warmup"]), counts(run["errors"])
        for site in ("reserve", "release"):
            if (run.get("errors_by_site") or {}).get(site):
                stats.site_errors[site] = counts(run["errors_by_site"][site])
        stats.wrong_values, stats.corrupt_values = int(run["wrong_values"]), int(run["corrupt_values"])
        stats.misses, stats.pool_exhausted = int(run["misses"]), int(run["pool_exhausted"])
        stats.examples = [{str(k): str(v) for k, v in example.items()} for example in run["examples"]][:5]
        return stats

    def add_histogram(self, name: str, encoded: str) -> int:
        """Add a saved histogram to this one's; its count. An empty one is left out: HdrHistogram.add would take
        its minimum, 0."""
        histogram = decode_histogram(encoded)
        if histogram.get_total_count():
            self.histogram(name).add(histogram)
        return histogram.get_total_count()


@dataclass(frozen=True)
class RunResult:
    """A finished (or broken off) strategy run, judged once: outcome, throughput and explanation are stored."""

    strategy: str
    threads: int
    processes: int
    pool_size: int | None
    duration_s: float  # asked for
    stats: RunStats
    workers: tuple[WorkerOutcome, ...]
    outcome: WorkerOutcome  # the worst worker's; for a saved run, as saved
    measured_s: float  # the time actually measured (a crash cuts it short)
    ops_per_s: float  # successful ops per second over measured_s (failed ops are not throughput)
    explanation: str = ""
    interrupted: bool = False  # Ctrl-C reached this run (whatever else its workers did)
    rate: float = 0.0  # the open model's target ops/s; 0 for the closed loop
    arrival: str = ""  # the open model's arrivals: constant or poisson
    achieved: float | None = field(default=None, compare=False)  # ops/s completed, when not stats.ops() / measured_s (a merge sums its sources')
    start_at_unix: float = 0.0  # --start-at: when the measured window was asked to start, on the wall clock

    @classmethod
    def measured(cls, strategy: str, threads: int, processes: int, pool_size: int | None, duration_s: float,
                 stats: RunStats, workers: tuple[WorkerOutcome, ...], interrupted: bool = False,
                 rate: float = 0.0, arrival: str = "") -> "RunResult":
        """A result whose outcome, measured time and throughput are worked out once from its workers and stats."""
        measured_s = round(max((w.measured_s for w in workers), default=0.0), 3)
        ops_per_s = round(stats.ok_ops() / measured_s, 1) if measured_s > 0 else 0.0
        return cls(strategy, threads, processes, pool_size, duration_s, stats, workers, worst_outcome(list(workers)),
                   measured_s, ops_per_s, interrupted=interrupted, rate=rate, arrival=arrival if rate else "")

    @classmethod
    def judged(cls, plan: Any, stats: RunStats, workers: tuple[WorkerOutcome, ...], interrupted: bool,
               explain: Callable[["RunResult", float], str]) -> "RunResult":
        """The result of a run that just ended, with its figures and its explanation worked out once."""
        result = cls.measured(plan.strategy, plan.threads, plan.processes,
                              plan.effective_pool_size if plan.strategy == "fifo" else None, plan.duration_s,
                              stats, workers, interrupted, plan.rate, plan.arrival)
        return dataclasses.replace(result, explanation=explain(result, plan.hang_timeout_s))

    @property
    def achieved_per_s(self) -> float:
        """Ops (successful or not) completed per second: what the open model offered and got through."""
        if self.achieved is not None:
            return self.achieved
        return round(self.stats.ops() / self.measured_s, 1) if self.measured_s > 0 else 0.0

    def rate_block(self) -> dict[str, Any] | None:
        """The open model's figures: target against achieved, lateness and the backlog left at the end."""
        if not self.rate:
            return None
        stats = self.stats
        return {"target_per_s": self.rate, "arrival": self.arrival, "achieved_per_s": self.achieved_per_s,
                "achieved_ratio": round(self.achieved_per_s / self.rate, 4), "late_ops": stats.late_ops(),
                "late_threshold_us": LATE_NS / 1000, "due_at_end": stats.due_at_end,
                "lateness_us": latency_summary_us(stats.histogram(LATE)),
                "lateness_histogram": encode_histogram(stats.histogram(LATE))}

    @property
    def error_count(self) -> int:
        return sum(self.stats.errors.values())

    @property
    def clean(self) -> bool:
        """Finished, did work, and saw no error and no wrong value."""
        return (self.outcome.outcome == "ok" and self.stats.ok_ops() > 0 and self.error_count == 0
                and self.stats.wrong_values == 0 and self.stats.corrupt_values == 0)

    @property
    def verdict(self) -> str:
        """clean, or how it was not: the outcome when a worker did not finish, else `unclean`."""
        if self.clean:
            return "clean"
        return self.outcome.outcome if self.outcome.outcome != "ok" else "unclean"

    def to_json(self) -> dict[str, Any]:
        stats, outcome = self.stats, self.outcome
        all_hist = stats.all_ops_histogram()
        paced = bool(self.rate)

        def block(name: str, count: int) -> dict[str, Any]:
            data = latency_block(stats.histogram(name), count)
            if paced:
                data["uncorrected_latency_us"] = latency_summary_us(stats.histogram(SENT + name))
                data["uncorrected_histogram"] = encode_histogram(stats.histogram(SENT + name))
            return data

        uncorrected = {}
        if paced:
            sent_hist = stats.all_ops_histogram(SENT)
            uncorrected = {"uncorrected_latency_us": latency_summary_us(sent_hist),
                           "uncorrected_histogram": encode_histogram(sent_hist)}
        return {
            "strategy": self.strategy, "threads": self.threads, "processes": self.processes,
            "pool_size": self.pool_size, "outcome": outcome.outcome,
            "outcome_detail": {"signal": outcome.signal, "stderr_tail": outcome.stderr_tail,
                               "message": outcome.message, "explanation": self.explanation},
            "duration_s": self.measured_s, "duration_asked_s": self.duration_s, "interrupted": self.interrupted,
            "ops": stats.ops(), "failed_ops": stats.ops() - stats.ok_ops(),
            "ops_including_warmup": stats.completed, "ops_per_s": self.ops_per_s,
            "rate": self.rate_block(),
            "error_count": self.error_count, "errors": dict(stats.errors.most_common()),
            "errors_by_site": stats.errors_by_site(),
            "wrong_values": stats.wrong_values, "corrupt_values": stats.corrupt_values,
            "misses": stats.misses, "pool_exhausted": stats.pool_exhausted,
            "out_of_range_values": stats.out_of_range, "examples": stats.examples,
            "latency_us": latency_summary_us(all_hist), "histogram": encode_histogram(all_hist),
            "histogram_unit": "ns", **uncorrected,
            "by_op": {op: block(op, stats.ops(op)) for op in stats.ops_done()},
            "acquire": block("acquire", stats.succeeded["acquire"]),
            "measure_started_unix": stats.started_unix, "interval_s": stats.interval_s,
            "intervals": stats.timeline.to_json(self.measured_s),
            "workers": [dataclasses.asdict(w) for w in self.workers],
            **self.start_block(),
        }

    def start_block(self) -> dict[str, Any]:
        """With --start-at: the moment asked for, and how much later measuring started (workers not ready in
        time, or the few milliseconds a `go` takes)."""
        if not self.start_at_unix:
            return {}
        late_s = self.stats.started_unix - self.start_at_unix if self.stats.started_unix else 0.0
        return {"start_at_unix": self.start_at_unix, "start_late_s": round(late_s, 3)}

    @classmethod
    def from_json(cls, run: dict[str, Any]) -> "RunResult":
        """A saved run, as the object it was written from."""
        detail = run["outcome_detail"]
        measured_s = float(run["duration_s"])
        outcome = WorkerOutcome(str(run["outcome"]), detail.get("signal"), detail.get("stderr_tail"),
                                detail.get("message"), measured_s)
        workers = tuple(WorkerOutcome(**fields_of(WorkerOutcome, worker)) for worker in run["workers"])
        worst = worst_outcome(list(workers))
        if worst.outcome == outcome.outcome:
            outcome = worst  # the saved outcome is the worst worker's, whole
        rate = run.get("rate") or {}
        return cls(str(run["strategy"]), int(run["threads"]), int(run["processes"]), run.get("pool_size"),
                   float(run.get("duration_asked_s", measured_s)), RunStats.from_json(run), workers, outcome,
                   measured_s, float(run["ops_per_s"]), detail.get("explanation") or "",
                   bool(run.get("interrupted")), float(rate.get("target_per_s") or 0.0), str(rate.get("arrival") or ""),
                   float(rate["achieved_per_s"]) if rate.get("achieved_per_s") is not None else None,
                   float(run.get("start_at_unix") or 0.0))
