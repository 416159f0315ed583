"""check-failover in the registry: the figures thresholds may name, and its verdicts."""

from __future__ import annotations

from typing import Any

from mcpool_cli.kinds import CHECK_SCHEMA, Kind


def row_label(document: dict[str, Any], row: dict[str, Any]) -> str:
    return str(row.get("config", "?"))


KIND = Kind(
    name="failover", command="check-failover", package="mcpool_cli.checks.failover", schema=CHECK_SCHEMA,
    metrics=("errors", "stale_reads", "stale_after_back", "exposed_reads", "lost_writes", "wrong_values",
             "misses_failed_keys", "misses_other_keys", "ejected_s", "readmitted_s", "restored_s", "moved_during",
             "moved_after", "moved_if_removed", "healthy_moved_if_removed", "failed_share", "errors_late_in_outage",
             "errors_after_ejection", "errors_before_fault", "errors_after_settled", "errors_at_end",
             "written_in_outage", "longest_op_s", "longest_failed_key_op_s", "last_error_s", "failed_key_ops",
             "ops", "ops_skipped"),
    good_verdicts=("transparent",), verdict_styles={"transparent": "bold green", "inconclusive": "bold yellow"},
    modes=("failover",), quick_keys=("before", "outage"), row_label=row_label,
    words=f'check-failover results ({CHECK_SCHEMA} "failover")')
