"""check-stale in the registry: the outage figures thresholds may name, and its verdicts."""

from __future__ import annotations

from typing import Any

from mcpool_cli.kinds import CHECK_SCHEMA, Kind


def row_label(document: dict[str, Any], row: dict[str, Any]) -> str:
    """The strategy, and the behavior set when several were compared."""
    label = str(row.get("strategy", "?"))
    if row.get("variant") and (document.get("options") or {}).get("compare_behaviors"):
        label += f" · {row['variant']}"
    return label


KIND = Kind(
    name="stale", command="check-stale", package="mcpool_cli.checks.stale", schema=CHECK_SCHEMA,
    metrics=("false_misses", "errors", "outage_s", "recovery_s", "ops_lost", "ops_failed", "ops_skipped",
             "longest_op_s", "wrong_values", "unverified_misses", "first_failure_s"),
    good_verdicts=("recovered",), verdict_styles={"recovered": "bold green"}, modes=("stale",),
    quick_keys=("before",), row_label=row_label, words=f'check-stale results ({CHECK_SCHEMA} "stale")')
