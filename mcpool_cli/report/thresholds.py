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

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt}
UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
LATENCY = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")
LATENCY_SCOPES = ("get", "set", "delete", "get_multi", "acquire")
RACE_CLASSES = ("other_key", "stale_own", "false_miss", "corrupt", "protocol_desync")

# Metrics by document kind: the bench document's runs, or a check's results.
METRICS: dict[str, tuple[str, ...]] = {
    "bench": ("ops_per_s", "ops", "errors", "failed_ops", "wrong_values", "corrupt_values", "misses",
              "pool_exhausted", *LATENCY, *(f"{scope}.{name}" for scope in LATENCY_SCOPES for name in LATENCY)),
    "races": ("anomalies", "errors", "trials_affected", "first_anomaly_s", *RACE_CLASSES),
    "leaks": ("leaked_connections", "connections_opened", "peak_connections", "after_connections",
              "held_by_pool", "dead_thread_clients", "threads_started"),
    "stale": ("false_misses", "errors", "outage_s", "recovery_s", "ops_lost", "ops_failed", "ops_skipped",
              "longest_op_s", "wrong_values", "unverified_misses", "first_failure_s"),
}
_EXPR = re.compile(r"^\s*([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)\s*(<=|>=|==|!=|<|>)\s*"
                   r"(-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)\s*(us|µs|ms|s)?\s*$")


def is_time(metric: str) -> bool:
    return metric.rsplit(".", 1)[-1] in LATENCY or (metric.endswith("_s") and not metric.endswith("_per_s"))


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


def check_metrics(thresholds: tuple[Threshold, ...], kind: str) -> None:
    """Before any load: every threshold must name a metric this command measures."""
    known = METRICS[kind]
    for threshold in thresholds:
        if threshold.metric not in known:
            plain = [m for m in known if "." not in m]
            raise UsageProblem(f"threshold {threshold.text!r}: {kind} has no metric {threshold.metric!r}; it has "
                               f"{', '.join(plain)}" + (" (and get./set./acquire. latencies)" if kind == "bench" else ""))


def document_kind(document: dict[str, Any]) -> str:
    return document["check"] if document.get("schema", "").startswith("mcpool.check/") else "bench"


def subjects(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, run or result) for each strategy the document holds."""
    rows = document.get("runs") if document_kind(document) == "bench" else document.get("results")
    labelled = []
    for row in rows or []:
        label = row.get("strategy", "?")
        if row.get("variant") and document.get("options", {}).get("compare_behaviors"):
            label += f" · {row['variant']}"
        labelled.append((label, row))
    return labelled


def not_applicable(kind: str, row: dict[str, Any], metric: str) -> str:
    """Why a latency scope does not apply to this run ("" when it does): a strategy without an acquire step,
    or an op the mix never made. Like k6's thresholds on a metric without samples, those are not failed."""
    scope = metric.rpartition(".")[0]
    if kind != "bench" or not scope:
        return ""
    source = row.get("acquire") if scope == "acquire" else (row.get("by_op") or {}).get(scope)
    if (source or {}).get("count"):
        return ""
    return "n/a: no acquire step" if scope == "acquire" else f"n/a: no {scope} ops"


def metric_value(kind: str, row: dict[str, Any], metric: str) -> float | None:
    """The metric's value for one run or result, in seconds for times; None when it has none."""
    scope, _, name = metric.rpartition(".")
    if kind == "bench" and name in LATENCY:
        source = row if not scope else (row.get("acquire") if scope == "acquire" else row.get("by_op", {}).get(scope))
        micros = ((source or {}).get("latency_us") or {}).get(name)
        return None if micros is None else micros / 1e6
    if metric == "errors":
        if "error_count" in row:
            return row["error_count"]
        return sum((row.get("errors") or {}).values())
    if kind == "races" and metric in RACE_CLASSES:
        return (row.get("anomalies") or {}).get(metric, 0)
    if kind == "races" and metric == "anomalies":
        return row.get("anomaly_count")
    if kind == "races" and metric == "trials_affected":
        return row.get("trials_affected")
    value = row.get(metric)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def evaluate(document: dict[str, Any], thresholds: tuple[Threshold, ...]) -> list[dict[str, Any]]:
    """One entry per threshold and strategy: the expression, the measured value and whether it held."""
    kind = document_kind(document)
    results = []
    for threshold in thresholds:
        rows = subjects(document)
        if not rows:  # nothing ran (Ctrl-C before the first run): the threshold cannot hold
            results.append({"expr": threshold.text, "subject": "-", "value": None, "shown": "no value",
                            "unit": threshold.unit, "ok": False})
        for label, row in rows:
            skipped = not_applicable(kind, row, threshold.metric)
            value = None if skipped else metric_value(kind, row, threshold.metric)
            results.append({"expr": threshold.text, "subject": label, "value": value,
                            "shown": skipped or threshold.shown(value), "unit": threshold.unit,
                            "ok": bool(skipped) or threshold.holds(value), "skipped": bool(skipped)})
    return results


def render(results: list[dict[str, Any]]) -> Any:
    """The report's closing lines: each threshold, ✓ or ✗, and the measured value."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="thresholds", title_justify="left", box=None, pad_edge=False, show_header=False)
    for _ in range(4):
        table.add_column(no_wrap=True)
    for result in results:
        mark = (Text("-", style="dim") if result.get("skipped") else
                Text("✓", style="bold green") if result["ok"] else Text("✗", style="bold red"))
        table.add_row(mark, result["expr"], result["subject"], result["shown"])
    return table
