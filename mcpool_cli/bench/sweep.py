"""A rate sweep judged per strategy: the highest rate sustained within the budget, and the knee.

A rate is sustained when the run was clean, delivered at least SUSTAINED_SHARE of the offered rate, and met
the latency budget (`--budget p99<2ms`) when one was given. The knee is the first rate whose p99 (from the
intended start) is more than KNEE_FACTOR times the strategy's floor, its p99 at the lowest rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcpool_cli.bench.results import RunResult

SUSTAINED_SHARE = 0.98
KNEE_FACTOR = 2.0


@dataclass(frozen=True)
class SweepPoint:
    rate: float
    p99_us: float | None
    achieved_ratio: float
    within_budget: bool | None  # None: no budget given
    sustained: bool


@dataclass(frozen=True)
class StrategySweep:
    strategy: str
    points: tuple[SweepPoint, ...]

    @property
    def floor_us(self) -> float | None:
        return self.points[0].p99_us if self.points else None

    @property
    def max_sustained(self) -> float | None:
        """The highest rate sustained, below the first one that was not (a rate above a failed one is luck)."""
        best = None
        for point in self.points:
            if not point.sustained:
                break
            best = point.rate
        return best

    @property
    def knee(self) -> SweepPoint | None:
        floor = self.floor_us
        if not floor:
            return None
        return next((p for p in self.points[1:] if p.p99_us is None or p.p99_us > KNEE_FACTOR * floor), None)

    def to_json(self) -> dict[str, Any]:
        knee = self.knee
        return {"strategy": self.strategy, "floor_p99_us": self.floor_us, "max_sustained_per_s": self.max_sustained,
                "knee_per_s": knee.rate if knee else None,
                "points": [{"rate_per_s": p.rate, "p99_us": p.p99_us, "achieved_ratio": p.achieved_ratio,
                            "within_budget": p.within_budget, "sustained": p.sustained} for p in self.points]}


def sweep(results: list[RunResult], budget: str = "") -> list[StrategySweep]:
    """Each strategy's runs, by rate, judged."""
    from mcpool_cli.bench.kind import metric_value
    from mcpool_cli.bench.session import budget_threshold

    threshold = budget_threshold(budget) if budget else None
    by_strategy: dict[str, list[RunResult]] = {}
    for result in results:
        if result.rate:
            by_strategy.setdefault(result.strategy, []).append(result)
    sweeps = []
    for strategy, runs in by_strategy.items():
        points = []
        for run in sorted(runs, key=lambda r: r.rate):
            row = run.to_json()
            within = None if threshold is None else threshold.holds(metric_value(row, threshold.metric))
            ratio = run.achieved_per_s / run.rate
            points.append(SweepPoint(run.rate, row["latency_us"]["p99"], round(ratio, 4), within,
                                     run.verdict == "clean" and ratio >= SUSTAINED_SHARE and within is not False))
        sweeps.append(StrategySweep(strategy, tuple(points)))
    return sweeps
