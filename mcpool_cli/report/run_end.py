"""The closing lines of `mcpool run`, and of `mcpool report` on a run document: phases passed or not, thresholds."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text

from mcpool_cli.errors import ExitCode
from mcpool_cli.report.thresholds import render
from mcpool_cli.units import outside

WORDS = {0: "passed", ExitCode.INTERRUPTED: "interrupted"}  # any other exit code is a failed phase


def run_end(scenario: str, phases: list[tuple[str, int]], judged: list[dict[str, Any]],
            table: bool = True) -> list[RenderableType]:
    """`scenario NAME: bench passed, check-leaks FAILED`, then every threshold with its phase (the table only when
    `table`: a run of one phase has just printed its own) and how many held."""
    passed = all(code == 0 for _, code in phases)
    lines: list[RenderableType] = [outside(f"scenario {scenario}: " + ", ".join(
        f"{command} {WORDS.get(code, 'FAILED')}" for command, code in phases),
        "bold green" if passed else "bold red")]
    if judged:
        if table:
            lines.append(render([{**t, "subject": f"{t['phase']} · {t['subject']}" if t.get("phase") else t["subject"]}
                                 for t in judged]))
        lines.append(Text(f"{sum(t['ok'] for t in judged)}/{len(judged)} thresholds held"))
    return lines
