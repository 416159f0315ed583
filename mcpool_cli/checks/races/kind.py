"""check-races in the registry: the anomaly classes thresholds may name, and its verdicts."""

from __future__ import annotations

from typing import Any

from mcpool_cli.checks.races.stamps import ANOMALIES
from mcpool_cli.kinds import CHECK_SCHEMA, Kind, plain_metric

VERDICT_STYLE = {"safe": "bold green", "racy": "bold red", "crashed": "bold red", "hung": "bold red",
                 "error": "bold red", "inconclusive": "bold yellow", "interrupted": "bold yellow"}


def metric_value(row: dict[str, Any], metric: str) -> float | None:
    """An anomaly class counts that class; `anomalies` counts them all."""
    if metric in ANOMALIES:
        return (row.get("anomalies") or {}).get(metric, 0)
    if metric == "anomalies":
        return row.get("anomaly_count")
    return plain_metric(row, metric)


KIND = Kind(
    name="races", command="check-races", package="mcpool_cli.checks.races", schema=CHECK_SCHEMA,
    metrics=("anomalies", "errors", "trials_affected", "first_anomaly_s", *ANOMALIES),
    good_verdicts=("safe",), verdict_styles=VERDICT_STYLE, modes=("races", "races-fork"),
    quick_keys=("duration",), metric_value=metric_value, words=f'check-races results ({CHECK_SCHEMA} "races")')
