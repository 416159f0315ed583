"""check-leaks in an HTML report: a card per strategy, the server's connections over the churn, and the
connection counts side by side (opened, peak, left after the threads ended)."""

from __future__ import annotations

from typing import Any

from mcpool_cli.checks.leaks.kind import KIND
from mcpool_cli.report.charts import color
from mcpool_cli.report.html import Chart, Source, Verdict, label, passed, rows_of
from mcpool_cli.units import printable

COUNTS = (("connections_opened", "opened during the churn"), ("peak_connections", "peak at once"),
          ("leaked_connections", "left open after (leaked)"))


def row_name(row: dict[str, Any]) -> str:
    relinquish = row.get("relinquish")
    suffix = " (no relinquish)" if relinquish is False and row.get("strategy") == "thread-mapped" else ""
    return f"{row.get('strategy', '?')}{suffix}"


def verdicts(data: dict[str, Any]) -> list[Verdict]:
    return [card(row) for row in rows_of(data)]


def card(row: dict[str, Any]) -> Verdict:
    verdict = str(row.get("verdict") or "?")
    good = passed(KIND, verdict)
    figures = (f"{row.get('threads_started', 0):,} threads, {row.get('concurrency', '?')} at once · "
               f"{row.get('connections_opened', 0):,} connections opened · peak {row.get('peak_connections', 0):,} · "
               f"{row.get('leaked_connections', 0):,} leaked")
    lines = [figures, *rates(row), *([str(row["advice"])] if row.get("advice") else [])]
    if row.get("churn_errors"):
        lines.append(f"{row['churn_errors']:,} errors in the churn threads")
    return Verdict(row_name(row), verdict, good, tuple(printable(line) for line in lines))


def shown(value: Any, spec: str, unknown: str = "-") -> str:
    """A saved number in a format, or `unknown` when it is missing or null."""
    return unknown if value is None else format(value, spec)


def rates(row: dict[str, Any]) -> list[str]:
    """Connections opened a second and a thread, and TIME_WAIT after the churn; none for an older file."""
    if row.get("churn_s") is None:
        return []
    return [f"{shown(row.get('connections_opened_per_s'), ',.0f')} connections opened a second · "
            f"{shown(row.get('connections_per_thread'), '.2f')} a thread · "
            f"{shown(row.get('time_wait_after'), ',', 'unknown')} sockets in TIME_WAIT after the churn "
            f"({shown(row.get('time_wait_before'), ',', 'unknown')} before)"]


def tables(data: dict[str, Any]) -> list:
    return []


def charts(sources: list[Source]) -> tuple[list[Chart], list[str]]:
    rows = [(source.name(row_name(row)), row) for source in sources for row in rows_of(source.data)]
    if not rows:
        return [], ["No results in this file: the check ran nothing."]
    built, missing = [], []
    over_time = [(name, row) for name, row in rows if row.get("connections_over_time")]
    if over_time:
        built.append(connections_chart(over_time))
    missing += [f"{name}: no connections over time in this file (written by an mcpool from before they were "
                "sampled): only its totals are drawn." for name, row in rows if not row.get("connections_over_time")]
    built.append(counts_chart(rows))
    return built, missing


def connections_chart(rows: list[tuple[str, dict[str, Any]]]) -> Chart:
    data = []
    for index, (name, row) in enumerate(rows):
        points = [p for p in row["connections_over_time"] if isinstance(p, dict)]
        data.append({"type": "scatter", "mode": "lines", "name": label(name), "line": {"color": color(index),
                     "shape": "hv"}, "x": [p.get("t_s") for p in points], "y": [p.get("connections") for p in points],
                     "hovertemplate": f"{label(name)}: %{{y}} connections at %{{x:.3f}} s<extra></extra>"})
        if any("threads_started" in p for p in points):
            data.append({"type": "scatter", "mode": "lines", "name": label(f"{name}: threads started"),
                         "yaxis": "y2", "line": {"color": color(index), "dash": "dot", "width": 1, "shape": "hv"},
                         "x": [p.get("t_s") for p in points], "y": [p.get("threads_started") for p in points],
                         "hovertemplate": "%{y} threads started by %{x:.3f} s<extra></extra>"})
    layout = {"xaxis": {"title": {"text": "seconds from the churn's start"}, "rangemode": "tozero"},
              "yaxis": {"title": {"text": "server connections (curr_connections)"}, "rangemode": "tozero"},
              "yaxis2": {"title": {"text": "churn threads started (dotted)"}, "overlaying": "y", "side": "right",
                         "rangemode": "tozero", "showgrid": False}}
    return Chart("Server connections over the churn", data, layout, name="leaks-connections",
                 caption="Solid: the server's open connections, read from its stats every 20 ms (mcpool's own probe "
                         "left out); dotted: churn threads started so far. Connections that stay up after every "
                         "thread has ended are leaked; a flat line at the pool's size is reuse.")


def counts_chart(rows: list[tuple[str, dict[str, Any]]]) -> Chart:
    data = [{"type": "bar", "name": words, "x": [label(name) for name, _ in rows],
             "y": [row.get(key) or 0 for _, row in rows], "marker": {"color": color(index)},
             "hovertemplate": f"%{{y:,}} {words}<extra></extra>"} for index, (key, words) in enumerate(COUNTS)]
    layout = {"barmode": "group", "yaxis": {"title": {"text": "connections"}, "rangemode": "tozero"}}
    return Chart("Connections per strategy", data, layout, name="leaks-counts", height_px=360,
                 caption="opened: new connections the server accepted during the churn; peak: the most open at once; "
                         "leaked: still open once every churn thread had ended.")
