"""check-leaks in the registry: the connection figures thresholds may name, and its verdicts."""

from __future__ import annotations

from mcpool_cli.kinds import CHECK_SCHEMA, Kind

KIND = Kind(
    name="leaks", command="check-leaks", package="mcpool_cli.checks.leaks", schema=CHECK_SCHEMA,
    metrics=("leaked_connections", "connections_opened", "peak_connections", "after_connections",
             "held_by_pool", "dead_thread_clients", "threads_started"),
    good_verdicts=("clean", "churn"), verdict_styles={"clean": "bold green", "churn": "bold yellow", "inconclusive": "bold yellow"},
    modes=("leaks",), words=f'check-leaks results ({CHECK_SCHEMA} "leaks")')
