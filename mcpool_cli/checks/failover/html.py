"""check-failover in an HTML report (a first version: cards; charts come with the HTML module's pass)."""

from __future__ import annotations

from typing import Any

from mcpool_cli.report.html import Chart, Source, Table, Verdict, passed, rows_of


def verdicts(data: dict[str, Any]) -> list[Verdict]:
    return [Verdict(str(row.get("config", "?")), str(row.get("verdict") or "?"),
                    passed_verdict(row), tuple(str(line) for line in [*(row.get("findings") or []), row.get("advice", "")]
                                               if line)) for row in rows_of(data)]


def passed_verdict(row: dict[str, Any]) -> bool:
    from mcpool_cli.checks.failover.kind import KIND

    return passed(KIND, str(row.get("verdict") or ""))


def charts(sources: list[Source]) -> tuple[list[Chart], list[str]]:
    return [], []


def tables(data: dict[str, Any]) -> list[Table]:
    return []
