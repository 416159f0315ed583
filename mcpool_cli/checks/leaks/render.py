"""Rich renderables for check-leaks; nothing here prints by itself but `render`."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mcpool_cli.checks.leaks.kind import KIND
from mcpool_cli.checks.leaks.loop import ChurnFigures
from mcpool_cli.checks.leaks.session import LeakCheck, piles_up_time_wait
from mcpool_cli.report.compare import CheckRow, check_comparison
from mcpool_cli.units import Fitted, format_seconds, outside, printable, sparkline, sparkline_rows, timeline_marks


def connections_line(figures: ChurnFigures) -> RenderableType | None:
    """Server connections over the churn as one sparkline, a mark the highest of its points; None for a file
    written before they were recorded."""
    points = figures.connections_over_time
    if len(points) < 2:
        return None
    _, marks = timeline_marks(list(points))
    highs = [max(point.connections for point in mark) for mark in marks]
    legend = f"{min(highs)}–{max(highs)} over {format_seconds(points[-1].t_s)}"
    return sparkline_rows([("connections", sparkline([float(high) for high in highs]), legend)])


def time_wait_words(figures: ChurnFigures) -> str:
    """The client sockets in TIME_WAIT to the servers after the churn, and before it, or that they are unknown."""
    if figures.time_wait_after is None:
        return "sockets in TIME_WAIT: unknown (no /proc/net/tcp)"
    before = "unknown" if figures.time_wait_before is None else f"{figures.time_wait_before:,}"
    return f"{figures.time_wait_after:,} sockets in TIME_WAIT ({before} before)"


def rate_line(figures: ChurnFigures) -> RenderableType | None:
    """How fast the churn opened connections, how many a thread, and the sockets it left in TIME_WAIT (yellow when
    they pile up); None for a file written before the churn was timed."""
    if figures.churn_s is None:
        return None
    per_s, per_thread = figures.connections_opened_per_s, figures.connections_per_thread
    rates = ", ".join(("-/s" if per_s is None else f"{per_s:,.0f}/s",
                       "-" if per_thread is None else f"{per_thread:.2f} per thread"))
    return outside(f"opened {figures.connections_opened:,} connections in {format_seconds(figures.churn_s)} "
                   f"({rates}) · {time_wait_words(figures)}", "yellow" if piles_up_time_wait(figures) else "")


def figure_lines(check: LeakCheck, figures: ChurnFigures, embedded: bool) -> list[RenderableType]:
    """What the server and the worker counted; on someone else's server, how much other traffic moved it."""
    counted = outside(
        f"{figures.threads_started:,} threads (at most {figures.concurrency} alive) · server connections: "
        f"{figures.baseline_connections} before, {figures.peak_connections} at peak, "
        f"{figures.after_connections} after · {figures.connections_opened:,} opened · {check.leaked} leaked")
    held = outside(f"in the worker after the churn: {figures.held_by_pool} clients held by the strategy, "
                   f"{figures.dead_thread_clients} of them taken by threads that are gone; "
                   f"{figures.open_sockets_after} sockets open", "dim")
    optional = (rate_line(figures), connections_line(figures))
    lines: list[RenderableType] = [counted, *(line for line in optional if line is not None), held]
    if figures.churn_errors:
        sites = ", ".join(f"{site} {count:,}" for site, count in
                          sorted(figures.churn_error_sites.items(), key=lambda item: -item[1])[:5])
        lines.append(outside(f"{figures.churn_errors:,} churn threads raised: {sites}", "red"))
    if not embedded:
        lines.append(Text(f"other traffic: curr_connections moved by {figures.baseline_drift:+d} in a quiet "
                          "half second before the churn; counts may be off by about that much", style="yellow"))
    return lines


def check_report(check: LeakCheck, embedded: bool) -> RenderableType:
    """The verdict on one strategy, with the connections counted and one line of advice."""
    head = (outside(check.strategy, "bold")
            .append(f" · relinquish {'on' if check.relinquish else 'off'} · ")
            .append(printable(check.verdict.upper()), style=KIND.style(check.verdict)))
    parts: list[RenderableType] = [head]
    if check.figures is not None:
        parts += figure_lines(check, check.figures, embedded)
    parts += [outside(check.advice, "italic", lines=True), Text("")]
    return Group(*parts)


def checks_summary(checks: list[LeakCheck]) -> Table:
    """Every strategy's verdict and connection counts in one table."""
    table = Table(title="check-leaks", title_justify="left", box=None, pad_edge=False)
    for name in ("strategy", "relinquish", "verdict", "opened", "leaked", "peak", "after"):
        table.add_column(name, justify="left" if name in ("strategy", "relinquish", "verdict") else "right",
                         no_wrap=name not in ("strategy", "relinquish", "verdict"))
    for check in checks:
        figures = check.figures
        shown = ("-",) * 3 if figures is None else (
            f"{figures.connections_opened:,}", f"{figures.peak_connections:,}", f"{figures.after_connections:,}")
        table.add_row(outside(check.strategy), "on" if check.relinquish else "off",
                      outside(check.verdict, KIND.style(check.verdict)), shown[0], f"{check.leaked:,}", *shown[1:])
    return table


def render(session: Any, console: Any, saved: bool = False) -> None:
    """check-leaks' report: each strategy's verdict with its figures; `mcpool report` (saved) adds them all in one
    table."""
    for check in session.results:
        console.print(check_report(check, session.servers.embedded))
    if saved and session.results:
        console.print(Fitted(checks_summary(session.results), ("after", "peak", "relinquish", "opened")))


def leak_rows(doc: Any) -> list[CheckRow]:
    """One comparison row per result of a saved document."""
    rows = []
    for check in doc.content.results:
        figures = check.figures
        rows.append(CheckRow(doc.label, check.strategy, check.verdict, {
            "relinquish": "on" if check.relinquish else "off",
            "leaked": f"{check.leaked:,}",
            "opened": "-" if figures is None else f"{figures.connections_opened:,}",
            "peak": "-" if figures is None else f"{figures.peak_connections:,}"}))
    return rows


def compare(docs: list[Any]) -> RenderableType:
    """check-leaks results of several files side by side; what changed is told by leaked and opened."""
    return check_comparison(KIND, docs, leak_rows, ("leaked", "opened"))
