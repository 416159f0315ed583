"""Rich renderables for check-failover: the report of a session, and saved documents side by side."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mcpool_cli.checks.failover.kind import KIND
from mcpool_cli.checks.failover.session import FailoverCheck, FailoverSession
from mcpool_cli.report.compare import CheckRow, check_comparison
from mcpool_cli.units import Fitted, format_number, format_seconds, outside, sparkline, sparkline_rows

COLUMNS = ("verdict", "errors", "stale\nreads", "lost\nwrites", "rerouted", "used\nagain", "moved\nout",
           "moved if\nremoved")
LEGEND = ("lost writes: sets that returned False and raised nothing · rerouted (ejected_s): fault to "
          "the first of its keys sent elsewhere · used again (readmitted_s): node back to the first key sent to it "
          "again · moved out: share of keys sent "
          "away from their node while it was out · moved if removed: "
          "share of keys the client maps elsewhere once the failed node is out of its server list")
TOLD = ("stale reads", "errors", "used again")  # what `mcpool compare` says changed, in this order


def render(session: FailoverSession, console: Any, saved: bool = False) -> None:
    console.print(report(session))
    if session.stopped_early:
        console.print(Text("stopped early: ", style="bold red").append_text(outside(session.stopped_early, lines=True)))


def report(session: FailoverSession) -> RenderableType:
    """The results table, each configuration's notes and advice, and the legend."""
    parts: list[RenderableType] = [Fitted(results_table(session), ("moved", "used", "rerouted")), Text("")]
    for check in session.results:
        parts += check_notes(check)
    parts.append(Text(LEGEND, style="dim"))
    return Group(*parts)


def results_table(session: FailoverSession) -> Table:
    options = session.options
    nodes = len(session.servers.addresses) or options.nodes
    title = (f"check-failover · {nodes} nodes · node {options.node} {options.fault} for {options.outage_s:g} s, "
             f"rejoins {options.rejoin} · {options.threads} threads × {options.rate:g} ops/s")
    table = Table(title=outside(title), title_justify="left", box=None, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("config", no_wrap=True)
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "verdict" else "right", no_wrap=True)
    for check in session.results:
        table.add_row(outside(check.config.name), Text(check.verdict, style=KIND.style(check.verdict)),
                      *figure_cells(check))
    return table


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def figure_cells(check: FailoverCheck) -> list[str]:
    f = check.figures
    removed = "-" if check.probe is None else share(check.probe.moved_share)
    if f is None:
        return ["-"] * 6 + [removed]
    never = "never" if check.outcome == "ok" else "-"  # a run cut short did not watch long enough to say never
    return [f"{f.error_count:,}", f"{f.stale_reads:,}", f"{f.lost_writes:,}",
            never if f.ejected_s is None else format_seconds(f.ejected_s),
            never if f.readmitted_s is None else format_seconds(f.readmitted_s), share(f.moved_during), removed]


def check_notes(check: FailoverCheck) -> list[RenderableType]:
    """What the configuration is, what the fault did, the findings, the figures over time and the advice."""
    title = outside(f"{check.config.name}: ", "bold").append_text(outside(check.config.summary, "dim"))
    lines: list[RenderableType] = [outside(check.detail or "the fault was not injected", "dim", lines=True)]
    f = check.figures
    if f is not None:
        lines.append(Text(f"ops {f.ops:,} ({f.ops_skipped:,} due while their thread was busy, never started) · "
                          f"the failed node held "
                          f"{share(f.failed_share)} of the keys · {f.failed_key_ops:,} ops on them while it was "
                          f"out, the longest {format_seconds(f.longest_failed_key_op_s)} · exposed reads "
                          f"{f.exposed_reads:,}"))
        lines.append(Text(f"keys sent away from their node: {share(f.moved_during)} while it was out, "
                          f"{share(f.moved_after)} over the load's last second · {moments(f)}"))
        lines.append(Text(f"misses: {f.misses_failed_keys:,} of the failed node's keys after the fault, "
                          f"{f.misses_other_keys:,} of other keys"))
        if f.errors:
            errors = sorted(f.errors.items(), key=lambda item: -item[1])
            lines.append(outside("errors: " + ", ".join(f"{name} {count:,}" for name, count in errors), "red"))
    if check.probe is not None and check.probe.healthy_moved_share is not None:
        lines.append(Text(f"with the failed node out of the server list, {share(check.probe.moved_share)} of "
                          f"{check.probe.keys} probe keys map elsewhere, {share(check.probe.healthy_moved_share)} "
                          "of those the other nodes held"))
    lines += [outside("✗ " + finding, "red") for finding in check.findings if check.verdict != "inconclusive"]
    lines += [outside("? " + finding, "yellow") for finding in check.findings if check.verdict == "inconclusive"]
    over = timeline(check)
    if over is not None:
        lines.append(over)
    lines.append(outside(check.advice, "italic", lines=True))
    return [title, *(Padding(line, (0, 0, 0, 2)) for line in lines), Text("")]


def moments(f: Any) -> str:
    """When its keys went elsewhere, and when the node was used again (first by one client, then by all)."""
    rerouted = "never rerouted" if f.ejected_s is None else f"rerouted +{format_seconds(f.ejected_s)} from the fault"
    if f.readmitted_s is None:
        return f"{rerouted}; not used again"
    restored = ("never 3/4 of its load again" if f.restored_s is None
                else f"3/4 of its load +{format_seconds(f.restored_s)}")
    return f"{rerouted}; used again +{format_seconds(f.readmitted_s)} from its return, {restored}"


def timeline(check: FailoverCheck) -> RenderableType | None:
    """Per mark: keys sent to each node, ok ops, failures; ▼ where the fault struck and ▲ where the node was back."""
    rows = list(check.intervals)
    if len(rows) < 2:
        return None
    group = -(-len(rows) // 48)
    marks = [rows[i:i + group] for i in range(0, len(rows), group)]
    seconds = [sum(r["length_s"] for r in mark) for mark in marks]
    lines = []
    for node in range(len(rows[0]["nodes"])):
        values = [sum(r["nodes"][node] for r in mark) / s for mark, s in zip(marks, seconds)]
        lines.append((f"node {node + 1}", sparkline(values), f"up to {format_number(max(values))}/s"))
    failed = [sum(r["errors"] + r["stale"] + r["wrong"] for r in mark) / s for mark, s in zip(marks, seconds)]
    misses = [sum(r["misses"] for r in mark) / s for mark, s in zip(marks, seconds)]
    for label, values in (("errors+stale", failed), ("misses", misses)):
        line = sparkline(values) if any(values) else Text(" " * len(values))
        line.stylize("red" if label != "misses" else "yellow")
        lines.append((label, line, f"up to {format_number(max(values))}/s" if any(values) else "none"))
    cells = [" "] * len(marks)
    mark_s = seconds[0]
    for at, sign in ((check.fault_at_s, "▼"), (check.back_at_s, "▲")):
        if at is not None:
            cells[min(len(cells) - 1, int(at / mark_s))] = sign
    table = sparkline_rows(lines)
    table.add_row("fault", Text("".join(cells), style="bold yellow"), "▼ failed ▲ back")
    return Group(Text(f"over time: {mark_s:g} s a mark; keys sent to each node a second", style="italic"), table)


# ---------------------------------------------------------------- saved documents side by side (mcpool compare)


def failover_rows(doc: Any) -> list[CheckRow]:
    rows = []
    for check in doc.content.results:
        f = check.figures
        rows.append(CheckRow(doc.label, check.config.name, check.verdict, {
            "stale reads": "-" if f is None else f"{f.stale_reads:,}",
            "errors": "-" if f is None else f"{f.error_count:,}",
            "used again": "-" if f is None else ("never" if f.readmitted_s is None else format_seconds(f.readmitted_s)),
            "moved out": "-" if f is None else share(f.moved_during)}))
    return rows


def compare(docs: list[Any]) -> RenderableType:
    return check_comparison(KIND, docs, failover_rows, TOLD, subject="config")
