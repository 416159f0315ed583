"""check-leaks in the registry: the connection figures thresholds may name, and its verdicts."""

from __future__ import annotations

from typing import Any

from mcpool_cli.kinds import CHECK_SCHEMA, Kind

UNKNOWN_WHY = {"time_wait_after": "n/a: TIME_WAIT unknown here (no /proc/net/tcp)",
               "connections_opened_per_s": "n/a: the churn was not timed"}


def not_applicable(row: dict[str, Any], metric: str) -> str:
    """Why a figure the churn could not measure has no value ("" when it has one): TIME_WAIT off Linux, and either
    in a file written before mcpool recorded it. A churn that never reported (crashed, hung) is not exempt."""
    if metric not in UNKNOWN_WHY or "threads_started" not in row or row.get(metric) is not None:
        return ""
    return UNKNOWN_WHY[metric] if metric in row else "n/a: not in this file (written by an older mcpool)"


KIND = Kind(
    name="leaks", command="check-leaks", package="mcpool_cli.checks.leaks", schema=CHECK_SCHEMA,
    metrics=("leaked_connections", "connections_opened", "connections_opened_per_s", "connections_per_thread",
             "time_wait_after", "peak_connections", "after_connections", "held_by_pool", "dead_thread_clients",
             "threads_started"),
    good_verdicts=("clean", "churn"),
    verdict_styles={"clean": "bold green", "churn": "bold yellow", "inconclusive": "bold yellow"},
    modes=("leaks",), not_applicable=not_applicable, words=f'check-leaks results ({CHECK_SCHEMA} "leaks")')
