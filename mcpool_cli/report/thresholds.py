"""Thresholds with k6's meaning: each expression is a condition that must hold, checked on the JSON document.

`p99<2ms`, `get.p99_9<5ms`, `errors==0`, `ops_per_s>20000`, `false_misses==0`, `recovery_s<3s`. Every run
(or check result) of the document is held to every threshold that names one of its metrics; a metric with
no value (no successful op, never recovered) fails the threshold.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

from mcpool_cli.errors import UsageProblem
from mcpool_cli.kinds import Kind, of_document, registered

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}
UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_EXPR = re.compile(r"^\s*([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)\s*(<=|>=|==|!=|<|>)\s*"
                   r"(-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*(us|µs|ms|s)?\s*$")


def is_time(metric: str) -> bool:
    """Whether a metric is a time (it then takes a unit): one a kind says is, or one named *_s."""
    name = metric.rsplit(".", 1)[-1]
    return (any(name in kind.time_metrics for kind in registered())
            or (metric.endswith("_s") and not metric.endswith("_per_s")))


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    limit: float  # seconds for time metrics
    unit: str  # the unit it was written in ("" for counts and rates)

    def holds(self, value: float | None) -> bool:
        return value is not None and COMPARE[self.op](value, self.limit)

    def shown(self, value: float | None) -> str:
        """A measured value in the expression's own unit."""
        if value is None:
            return "no value"
        if self.unit:  # four significant digits, so the shown value never contradicts the verdict
            return f"{value / UNITS[self.unit]:.4g} {self.unit}"
        if value == int(value):
            return f"{int(value):,}"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def parse_threshold(text: str) -> Threshold:
    """Parse one expression; UsageProblem (exit 2) says what is wrong with it."""
    match = _EXPR.match(str(text))
    if not match:
        raise UsageProblem(f"threshold {text!r} is not METRIC OP VALUE[UNIT] (e.g. p99<2ms, errors==0, "
                           "ops_per_s>20000)")
    metric, op, raw, unit = match.groups()
    if is_time(metric) and not unit:
        raise UsageProblem(f"threshold {text!r}: {metric} is a time; give a unit: us, ms or s (e.g. {metric}{op}{raw}ms)")
    if unit and not is_time(metric):
        raise UsageProblem(f"threshold {text!r}: {metric} is a count or a rate; it takes no unit")
    limit = float(raw) * UNITS[unit] if unit else float(raw)
    return Threshold(text.strip(), metric, op, limit, unit or "")


def check_metrics(thresholds: tuple[Threshold, ...], kind: Kind) -> None:
    """Before any load: every threshold must name a metric this kind measures."""
    for threshold in thresholds:
        if threshold.metric not in kind.metrics:
            plain = [m for m in kind.metrics if "." not in m]
            raise UsageProblem(f"threshold {threshold.text!r}: {kind.name} has no metric {threshold.metric!r}; it has "
                               f"{', '.join(plain)}{kind.metrics_hint}")


def subjects(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, run or result) for each strategy the document holds."""
    kind = of_document(document)
    if kind is None:
        return []
    return [(kind.row_label(document, row), row) for row in document.get(kind.rows) or []]


def evaluate(document: dict[str, Any], thresholds: tuple[Threshold, ...]) -> list[dict[str, Any]]:
    """One entry per threshold and strategy: the expression, the measured value and whether it held."""
    kind = of_document(document)
    results = []
    for threshold in thresholds:
        rows = subjects(document)
        if not rows:  # nothing ran (Ctrl-C before the first run): the threshold cannot hold
            results.append({"expr": threshold.text, "subject": "-", "value": None, "shown": "no value",
                            "unit": threshold.unit, "ok": False})
        for label, row in rows:
            skipped = kind.not_applicable(row, threshold.metric) if kind else ""
            value = None if skipped or kind is None else kind.metric_value(row, threshold.metric)
            results.append({"expr": threshold.text, "subject": label, "value": value,
                            "shown": skipped or threshold.shown(value), "unit": threshold.unit,
                            "ok": bool(skipped) or threshold.holds(value), "skipped": bool(skipped)})
    return results


def render(results: list[dict[str, Any]]) -> Any:
    """The report's closing lines: each threshold, ✓ or ✗, and the measured value."""
    from rich.table import Table
    from rich.text import Text

    from mcpool_cli.units import outside

    table = Table(title="thresholds", title_justify="left", box=None, pad_edge=False, show_header=False)
    for wraps in (False, True, True, False):  # the mark and the measured value whole; expression and subject fold
        table.add_column(no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
    for result in results:
        mark = (Text("-", style="dim") if result.get("skipped") else
                Text("✓", style="bold green") if result["ok"] else Text("✗", style="bold red"))
        table.add_row(mark, outside(result["expr"]), outside(result["subject"]), outside(result["shown"]))
    return table
