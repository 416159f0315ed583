"""Rich renderables for check-races; nothing here prints by itself."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mcpool_cli.checks.races.kind import KIND
from mcpool_cli.checks.races.session import FORK, StrategyCheck
from mcpool_cli.checks.races.stamps import ANOMALY_WORDS
from mcpool_cli.report.compare import CheckRow, check_comparison
from mcpool_cli.units import Fitted, outside, printable


def check_report(check: StrategyCheck, threads: int, duration_s: float) -> RenderableType:
    """The verdict on one strategy, with evidence and one line of advice."""
    verdict = check.verdict
    who = "a parent and its forked child" if check.strategy == FORK else f"{threads} threads"
    head = (outside(check.strategy, "bold")
            .append(f" · {who} · {len(check.trials)} trial{'s' if len(check.trials) != 1 else ''} × {duration_s:g} s · ")
            .append(printable(verdict.upper()), style=KIND.style(verdict)))
    ops = sum(t.stats.completed for t in check.trials)
    checked = sum(t.stats.checked for t in check.trials)
    parts: list[RenderableType] = [head, outside(f"{check.summary} · {ops:,} ops, {checked:,} replies checked",
                                                 lines=True)]
    counts = [(ANOMALY_WORDS[name], count) for name, count in check.anomalies.items() if count]
    if counts:
        table = Table(box=None, pad_edge=False, show_header=False)
        table.add_column(justify="right")
        table.add_column()
        for words, count in counts:
            table.add_row(f"{count:,}", outside(words))
        parts.append(table)
    if check.errors:
        parts.append(outside("errors: " + ", ".join(f"{n} {c:,}" for n, c in check.errors.most_common(5)), "red"))
        for site, count in list(check.error_sites.items())[:5]:
            parts.append(outside(f"  {count:,} × {site}", "red"))
        if check.errors and not check.unexplained_errors:
            parts.append(Text("the server evicted, flushed or restarted during every trial with errors: they are "
                              "shown but not counted toward the verdict", style="yellow"))
    if any(t.evictions or t.flushed for t in check.trials) and check.anomalies["false_miss"]:
        parts.append(Text("the server evicted, flushed or restarted during a trial: that trial's false misses "
                          "are shown but not counted toward the verdict", style="yellow"))
    for example in check.examples:
        parts.append(outside(f"  {example['kind']}: key {example['key']}: expected {example['expected']!r}, "
                             f"got {example['got']!r}", "yellow"))
    parts += [outside(check.advice, "italic", lines=True), Text("")]
    return Group(*parts)


def checks_summary(checks: list[StrategyCheck]) -> Table:
    table = Table(title="check-races", title_justify="left", box=None, pad_edge=False)
    for name in ("strategy", "verdict", "trials affected", "first anomaly", "anomalies", "errors"):
        table.add_column(name, justify="left" if name in ("strategy", "verdict") else "right",
                         no_wrap=name not in ("strategy", "verdict"))
    for check in checks:
        first = "-" if check.first_anomaly_s is None else f"{check.first_anomaly_s * 1000:,.1f} ms"
        table.add_row(outside(check.strategy), outside(check.verdict, KIND.style(check.verdict)),
                      f"{check.affected}/{len(check.trials)}", first, f"{sum(check.anomalies.values()):,}",
                      f"{sum(check.errors.values()):,}")
    return table


def render(session: Any, console: Any, saved: bool = False) -> None:
    """check-races' report: each strategy's verdict with its evidence, then all of them in one table (for one
    strategy only in `mcpool report`, `saved`)."""
    options = session.options
    for check in session.results:
        console.print(check_report(check, options.threads, options.duration_s))
    if saved or len(session.results) > 1:
        console.print(Fitted(checks_summary(session.results), ("errors", "first", "trials")))


def race_rows(doc: Any) -> list[CheckRow]:
    return [CheckRow(doc.label, check.strategy, check.verdict, {
        "trials affected": f"{check.affected}/{len(check.trials)}",
        "first anomaly": "-" if check.first_anomaly_s is None else f"{check.first_anomaly_s * 1000:,.1f} ms",
        "anomalies": f"{sum(check.anomalies.values()):,}", "errors": f"{sum(check.errors.values()):,}"})
        for check in doc.content.results]


def compare(docs: list[Any]) -> RenderableType:
    """check-races results of several files side by side; what changed is told by the anomalies."""
    return check_comparison(KIND, docs, race_rows, ("anomalies",))
