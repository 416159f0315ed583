"""bench in the registry: its schema, the metrics thresholds may name, and how a run is judged."""

from __future__ import annotations

from typing import Any

from mcpool_cli.kinds import LATENCY, Kind, plain_metric

RESULT_SCHEMA = "mcpool.result/1"
LATENCY_SCOPES = ("get", "set", "delete", "get_multi", "acquire")
RATE_METRICS = ("achieved_ratio", "achieved_per_s", "late_ops", "due_at_end")  # the open model's, from its rate block
OPEN_SCOPES = ("uncorrected", "lateness")  # all ops from the moment sent; how late each op was sent
OUTCOME_STYLE = {"ok": "bold green", "clean": "bold green", "crashed": "bold red", "hung": "bold red",
                 "error": "bold red", "interrupted": "bold yellow"}


def latency_source(row: dict[str, Any], scope: str) -> dict[str, Any] | None:
    """The block holding a scope's latency: the run itself, its acquire, or one op of by_op."""
    if not scope:
        return row
    if scope == "uncorrected":
        return {"latency_us": row.get("uncorrected_latency_us"), "count": row.get("ops")}
    if scope == "lateness":
        rate = row.get("rate") or {}
        return {"latency_us": rate.get("lateness_us"), "count": row.get("ops") if rate else 0}
    return row.get("acquire") if scope == "acquire" else (row.get("by_op") or {}).get(scope)


def metric_value(row: dict[str, Any], metric: str) -> float | None:
    """Latencies in seconds; the rest as the run's fields say."""
    scope, _, name = metric.rpartition(".")
    if name in LATENCY:
        micros = ((latency_source(row, scope) or {}).get("latency_us") or {}).get(name)
        return None if micros is None else micros / 1e6
    if metric in RATE_METRICS:
        return plain_metric(row.get("rate") or {}, metric)
    return plain_metric(row, metric)


def not_applicable(row: dict[str, Any], metric: str) -> str:
    """Why a latency scope does not apply to this run ("" when it does): a strategy without an acquire step,
    or an op the mix never made. Like k6's thresholds on a metric without samples, those are not failed."""
    scope = metric.rpartition(".")[0]
    if (metric in RATE_METRICS or scope in OPEN_SCOPES) and not row.get("rate"):
        return "n/a: a closed-loop run (no --rate)"
    if not scope or (latency_source(row, scope) or {}).get("count"):
        return ""
    return "n/a: no acquire step" if scope == "acquire" else f"n/a: no {scope} ops"


def row_label(document: dict[str, Any], row: dict[str, Any]) -> str:
    """The strategy, and in the open model its offered rate (a sweep has one run per strategy and rate)."""
    rate = (row.get("rate") or {}).get("target_per_s")
    return f"{row.get('strategy', '?')}" + (f" @{rate:g}/s" if rate else "")


def junit_case(kind: Kind, row: dict[str, Any]) -> tuple[str, str | None]:
    """A run passes when it finished, did work, and saw no error and no wrong value."""
    problems = [f"outcome {row.get('outcome')}"] if row.get("outcome") != "ok" else []
    problems += [f"{row.get(name)} {name.replace('_', ' ')}" for name in ("error_count", "wrong_values",
                                                                           "corrupt_values") if row.get(name)]
    if not row.get("ops_per_s"):
        problems.append("no successful op")
    return "run", "; ".join(problems) or None


KIND = Kind(
    name="bench", command="bench", package="mcpool_cli.bench", schema=RESULT_SCHEMA,
    metrics=("ops_per_s", "ops", "errors", "failed_ops", "wrong_values", "corrupt_values", "misses",
             "pool_exhausted", *RATE_METRICS, *LATENCY,
             *(f"{scope}.{name}" for scope in (*LATENCY_SCOPES, *OPEN_SCOPES) for name in LATENCY)),
    good_verdicts=("clean",), verdict_styles=OUTCOME_STYLE, modes=("bench",), rows="runs",
    quick_keys=("duration", "warmup"), time_metrics=LATENCY,
    metrics_hint=" (and get./set./acquire./uncorrected./lateness. latencies)",
    metric_value=metric_value, not_applicable=not_applicable, junit_case=junit_case, row_label=row_label,
    words=f"bench results ({RESULT_SCHEMA})")
