"""Rich renderables for check-stale: the report of a session, and saved documents side by side."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mcpool_cli.checks.stale.analysis import OverTime, StaleFigures
from mcpool_cli.checks.stale.kind import KIND
from mcpool_cli.checks.stale.session import StaleCheck, StaleSession
from mcpool_cli.report.compare import CheckRow, check_comparison
from mcpool_cli.units import (Fitted, format_number, format_seconds, format_seconds_short, outside, p99_spread,
                              per_second, sparkline, sparkline_rows, timeline_marks, worst_p99)

COLUMNS = ("verdict", "false\nmisses", "errors", "outage", "recovery", "longest\nop")
LEGEND = ("outage: first failed or stalled op to the first success after the last failure · recovery: "
          "that success after the server was usable again")
TOLD = ("recovery", "outage", "false misses")  # what `mcpool compare` says changed, in this order
MARKS = {"fault": "▼", "back": "▲", "recovered": "✓", "during": "━"}
WORDS = {"fault": "fault struck", "back": "server usable again", "recovered": "recovered"}


def render(session: StaleSession, console: Any, saved: bool = False) -> None:
    """Print the report of a session, and why it stopped early when it did."""
    console.print(report(session))
    if session.stopped_early:
        console.print(Text("stopped early: ", style="bold red").append_text(outside(session.stopped_early, lines=True)))


def report(session: StaleSession) -> RenderableType:
    """The results table, each run's notes, the advice, the behavior comparisons and the legend."""
    checks = session.results
    notes = [note for check in checks for note in check_notes(check)]
    advice = list(dict.fromkeys(check.advice for check in checks))
    parts = [Fitted(results_table(session), ("longest", "errors", "outage")), Text(""), *notes,
             *(outside(line, "italic", lines=True) for line in advice)]
    comparisons = session.comparisons()
    if comparisons:
        parts += [Text(""), Text("Behaviors compared:", style="bold"),
                  *(outside("  " + line, lines=True) for line in comparisons)]
    parts.append(Text(LEGEND, style="dim"))
    return Group(*parts)


def results_table(session: StaleSession) -> Table:
    """A row per run; with behaviors compared, a strategy heading over a row per behavior set."""
    options = session.options
    compared = len(options.variants) > 1
    title = f"check-stale · fault {options.fault} · {options.threads} threads × {options.rate:g} ops/s"
    if not compared:
        title += f" · behaviors: {options.variants[0][0]}"
    table = Table(title=outside(title), title_justify="left", box=None, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("behaviors" if compared else "strategy", ratio=1)
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "verdict" else "right", no_wrap=name != "verdict")
    checks = session.results
    for index, check in enumerate(checks):
        if compared and (index == 0 or checks[index - 1].strategy != check.strategy):
            table.add_row(outside(check.strategy, "bold"))
        table.add_row(outside(f"  {check.variant}" if compared else check.strategy),
                      outside(check.verdict, KIND.style(check.verdict)), *figure_cells(check.figures))
    return table


def figure_cells(figures: StaleFigures | None) -> list[str]:
    """false misses, errors, outage, recovery and the longest op; dashes when the fault was not injected."""
    if figures is None:
        return ["-"] * 5
    return [f"{figures.false_misses:,}", f"{figures.error_count:,}", format_seconds(figures.outage_s),
            format_seconds(figures.recovery_s), format_seconds(figures.longest_op_s)]


def check_notes(check: StaleCheck) -> list[RenderableType]:
    """What the fault did to one run, then its ops, errors and unverified misses, indented."""
    title = outside(f"{check.strategy} · {check.variant}: ", "bold")
    heading = title.append_text(outside(check.detail or "the fault was not injected", "dim", lines=True))
    figures = check.figures
    over_time = [] if check.over_time is None else [timeline(check.over_time, figures)]
    notes = [] if figures is None else figure_notes(figures)
    return [heading, *(Padding(note, (0, 0, 0, 2)) for note in [*notes, *over_time] if note is not None)]


def figure_notes(figures: StaleFigures) -> list[Text]:
    """Ops due, ok, failed and lost; errors by class; misses that may be real."""
    first = ("" if figures.first_failure_s is None else
             f"; first failed or stalled op +{format_seconds(figures.first_failure_s)}")
    notes = [Text(f"ops: {figures.ops_scheduled + figures.ops_skipped:,} due, {figures.ops_ok:,} ok, "
                  f"{figures.ops_failed:,} failed, {figures.ops_skipped:,} never started (stuck)" + first)]
    if figures.errors:
        errors = sorted(figures.errors.items(), key=lambda item: -item[1])
        notes.append(outside("errors: " + ", ".join(f"{name} {count:,}" for name, count in errors), "red"))
    if figures.unexplained_errors:
        notes.append(Text(f"{figures.errors_before_fault:,} failed before the fault struck, "
                          f"{figures.errors_after_settled:,} after the load had settled again: not the fault's doing",
                          style="red"))
    if figures.unverified_misses:
        notes.append(outside(f"{figures.unverified_misses} misses while the keys were being written back to the "
                             "new server: real ones, not counted", "yellow"))
    return notes


def timeline(over_time: OverTime, figures: StaleFigures | None) -> RenderableType | None:
    """ok ops/s, failed ops/s and p99 per interval (grouped when there are many), and a row that marks where
    the fault struck (▼), lasted (━) and ended (▲), and where the load recovered (✓)."""
    rows = over_time.timeline.to_json(over_time.measured_s)
    if len(rows) < 2:
        return None
    group, chunks = timeline_marks(rows)
    mark_s = group * over_time.timeline.interval_s
    ok, failed, p99s = per_second(chunks, "ops"), per_second(chunks, "failed_ops"), worst_p99(chunks)
    failed_line = sparkline(failed) if any(failed) else Text(" " * len(failed))  # none: blank, not "no data"
    failed_line.stylize("red")
    table = sparkline_rows([
        ("ok/s", sparkline(ok), f"{format_number(min(ok))}–{format_number(max(ok))}"),
        ("failed/s", failed_line, f"up to {format_number(max(failed))}" if max(failed) else "none"),
        ("p99" if group == 1 else "p99 (worst)", sparkline(p99s, log=True), p99_spread(p99s, "no op succeeded"))])
    title = Text(f"over time: {format_seconds_short(mark_s)} a mark, "
                 f"0–{format_seconds(over_time.measured_s)} from the load's start", style="italic")
    marks = fault_marks(over_time, figures, mark_s, len(chunks))
    if marks is None:
        return Group(title, table)
    table.add_row("fault", marks[0], "")
    return Group(title, table, marks[1])


def fault_marks(over_time: OverTime, figures: StaleFigures | None, mark_s: float,
                width: int) -> tuple[Text, Text] | None:
    """The marks row of the timeline and what its marks stand for; None when the fault was not injected."""
    if over_time.fault_at_s is None:
        return None
    moments = {"fault": over_time.fault_at_s, "back": over_time.back_at_s,
               "recovered": None if figures is None or figures.recovery_s is None or over_time.back_at_s is None
               else over_time.back_at_s + figures.recovery_s}
    column = {name: None if at is None else min(width - 1, int(at / mark_s)) for name, at in moments.items()}
    cells = [" "] * width
    start, end = column["fault"], column["back"] if column["back"] is not None else width
    for index in range(start + 1, end):
        cells[index] = MARKS["during"]
    for name in ("fault", "back", "recovered"):  # a later moment in the same mark wins
        if column[name] is not None:
            cells[column[name]] = MARKS[name]
    words = [f"{MARKS[name]} {WORDS[name]} +{format_seconds(at)}" for name, at in moments.items() if at is not None]
    if moments["recovered"] is None:
        words.append("never recovered")
    return Text("".join(cells), style="bold yellow"), Text(" · ".join(words), style="dim")


# ---------------------------------------------------------------- saved documents side by side (mcpool compare)


def stale_rows(doc: Any) -> list[CheckRow]:
    """A row per result of a saved document, keyed by strategy (and behavior set when they were compared)."""
    rows = []
    for check in doc.content.results:
        figures = check.figures
        key = f"{check.strategy} · {check.variant}" if doc.content.options.compare_behaviors else check.strategy
        rows.append(CheckRow(doc.label, key, check.verdict, {
            "false misses": "-" if figures is None else f"{figures.false_misses:,}",
            "errors": "-" if figures is None else f"{figures.error_count:,}",
            "outage": "-" if figures is None else format_seconds(figures.outage_s),
            "recovery": "-" if figures is None else format_seconds(figures.recovery_s)}))
    return rows


def compare(docs: list[Any]) -> RenderableType:
    """Saved check-stale documents side by side: verdicts, key figures, and what changed."""
    return check_comparison(KIND, docs, stale_rows, TOLD)
