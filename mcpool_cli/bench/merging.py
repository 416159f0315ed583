"""Several machines' bench results of one run as one: counters summed, histograms added, timelines aligned.

HdrHistograms of the same settings add exactly (bucket counts summed), so the merged percentiles are those of
one histogram into which every machine's latencies had been recorded. Throughput is the fleet's: the sum of
each machine's ops/s over its own measured time.
"""

from __future__ import annotations

import dataclasses

import datetime
from typing import Any, Sequence

from mcpool_cli.bench.loop import slot_grid
from mcpool_cli.bench.results import HISTOGRAMS, RunResult, RunStats
from mcpool_cli.bench.session import BenchSession
from mcpool_cli.engine.outcomes import worst_outcome
from mcpool_cli.engine.timeline import Timeline

MAX_EXAMPLES = 5


def interval_shift(started_unix: float, earliest_unix: float, interval_s: float) -> int:
    """Intervals by which a source's timeline lies after the earliest source's, on the wall clock."""
    if not started_unix or not earliest_unix:
        return 0
    return max(0, round((started_unix - earliest_unix) / interval_s))


def aligned_timeline(sources: Sequence[RunStats], interval_s: float) -> Timeline:
    """The sources' timelines added interval by interval, each shifted to its place on the wall clock."""
    earliest = min((s.started_unix for s in sources if s.started_unix), default=0.0)
    merged = Timeline(interval_s, slot_grid(interval_s)[1])
    for source in sources:
        assert source.timeline is not None
        merged.add(source.timeline, interval_shift(source.started_unix, earliest, interval_s))
    return merged


def merge_stats(sources: Sequence[RunStats]) -> RunStats:
    """One RunStats holding every source's counts and latencies (the sources share one interval)."""
    interval_s = sources[0].interval_s
    merged = RunStats(interval_s=interval_s, timeline=aligned_timeline(sources, interval_s),
                      started_unix=min((s.started_unix for s in sources if s.started_unix), default=0.0))
    for source in sources:
        for name in HISTOGRAMS:
            histogram = source.histogram(name)
            if histogram.get_total_count():  # an empty one would lower the minimum to 0
                merged.histogram(name).add(histogram)
        for counter in ("succeeded", "failed", "errors"):
            getattr(merged, counter).update(getattr(source, counter))
        for site, by_name in source.site_errors.items():
            merged.site_errors.setdefault(site, type(by_name)()).update(by_name)
        for number in ("wrong_values", "corrupt_values", "misses", "pool_exhausted", "due_at_end", "completed",
                       "_out_of_range"):
            setattr(merged, number, getattr(merged, number) + getattr(source, number))
        merged.examples += source.examples[: MAX_EXAMPLES - len(merged.examples)]
    return merged


def merge_runs(runs: Sequence[RunResult]) -> RunResult:
    """The same strategy and rate run on several machines as one run of all their processes."""
    first = runs[0]
    workers = tuple(worker for run in runs for worker in run.workers)
    explanations = list(dict.fromkeys(run.explanation for run in runs if run.explanation))
    return RunResult(
        first.strategy, first.threads, sum(run.processes for run in runs), first.pool_size, first.duration_s,
        merge_stats([run.stats for run in runs]), workers, worst_outcome([run.outcome for run in runs]),
        max(run.measured_s for run in runs), round(sum(run.ops_per_s for run in runs), 1), " ".join(explanations),
        any(run.interrupted for run in runs), sum(run.rate for run in runs), first.arrival,
        round(sum(run.achieved_per_s for run in runs), 1) if first.rate else None,
        min((run.start_at_unix for run in runs if run.start_at_unix), default=0.0))


def _when(text: str | None) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def merge_sessions(sessions: Sequence[BenchSession]) -> BenchSession:
    """One session of every source's runs merged in order; the header is the first's, its times the widest."""
    first = sessions[0]
    results = [merge_runs(runs) for runs in zip(*(session.results for session in sessions))]
    started = min((s.started_at for s in sessions), key=_when)
    finished = max((s.finished_at or s.started_at for s in sessions), key=_when)
    stopped = next((s.stopped_early for s in sessions if s.stopped_early), "")
    processes = sum(session.options.processes for session in sessions)  # the fleet's: compare then says so
    options = dataclasses.replace(first.options, processes=processes)
    return BenchSession(options, first.servers, run_id=first.run_id, started_at=started, finished_at=finished,
                        interrupted=any(s.interrupted for s in sessions), results=results, stopped_early=stopped)


def source_entry(name: str, session: BenchSession) -> dict[str, Any]:
    """What `merged_from` keeps of one source: its file, start, and each run's own figures."""
    return {"file": name, "started_at": session.started_at, "run_id": session.run_id,
            "runs": [{"strategy": run.strategy, "rate": run.rate, "processes": run.processes,
                      "ops": run.stats.ops(), "ops_per_s": run.ops_per_s,
                      "p99_us": _p99_us(run), "error_count": run.error_count,
                      "measure_started_unix": run.stats.started_unix} for run in session.results]}


def _p99_us(run: RunResult) -> float | None:
    histogram = run.stats.all_ops_histogram()
    return histogram.get_value_at_percentile(99.0) / 1000 if histogram.get_total_count() else None
