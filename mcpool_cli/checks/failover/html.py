"""check-failover in an HTML report: a card per configuration; the keys each configuration moved, side by side;
per configuration, the keys sent to each node and its ops by outcome over time, with the fault and the node's
return marked; and the errors callers saw, by class."""

from __future__ import annotations

from typing import Any

from mcpool_cli.checks.failover.kind import KIND
from mcpool_cli.report.charts import color, middle_s, per_s
from mcpool_cli.report.html import Chart, Source, Table, Verdict, label, passed, rows_of
from mcpool_cli.units import format_seconds, printable

OUTCOMES = (  # a stack of bars per interval: (its keys in the interval, its name, its colour)
    (("ok",), "ok", "#2da44e"), (("misses",), "misses", "#d4a72c"), (("errors",), "errors raised", "#cf222e"),
    (("stale", "wrong"), "stale or wrong values", "#8250df"), (("lost",), "lost writes (set returned False)", "#000000"))
MOVED = (("moved_during", "while the node was out", "#56b4e9"),
         ("moved_after", "after it was back (the load's last second)", "#0072b2"),
         ("moved_if_removed", "if it were removed from the server list", "#d55e00"))
FAULT_WORDS = {"kill": "killed", "freeze": "frozen", "drop": "cut off"}
MOMENT_LINE = {"color": "#57606a", "width": 1, "dash": "dot"}
NODES_TOP = 0.56  # the keys-per-node lines above this share of a timeline's height, the ops bars below it


def row_name(row: dict[str, Any]) -> str:
    return str(row.get("config", "?"))


def verdicts(data: dict[str, Any]) -> list[Verdict]:
    return [card(row) for row in rows_of(data)]


def card(row: dict[str, Any]) -> Verdict:
    verdict = str(row.get("verdict") or "?")
    mark = "? " if verdict == "inconclusive" else "✗ "
    lines = [figures_line(row), *(str(row[key]) for key in ("summary", "fault_detail") if row.get(key)),
             *(mark + str(finding) for finding in row.get("findings") or []),
             *([str(row["advice"])] if row.get("advice") else [])]
    return Verdict(row_name(row), verdict, passed(KIND, verdict), tuple(printable(line) for line in lines))


def has_figures(row: dict[str, Any]) -> bool:
    """Whether the row holds the run's figures (it does only when the fault was injected)."""
    return row.get("ops") is not None


def share(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "-"


def count(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return f"{value:,}" if isinstance(value, int) else "-"


def figures_line(row: dict[str, Any]) -> str:
    """The key figures in one line, as the terminal's table has them."""
    if not has_figures(row):
        return "no figures: the fault was not injected, or the run ended before it"
    errors = row.get("error_count", sum((row.get("errors") or {}).values()))
    misses = f"misses {count(row, 'misses_failed_keys')} failed / {count(row, 'misses_other_keys')} other keys"
    silent = [f"{row[key]:,} {words}" for key, words in (("wrong_values", "wrong values"),
                                                         ("lost_writes", "lost writes")) if row.get(key)]
    moved = (f"moved {share(row.get('moved_during'))} out / {share(row.get('moved_after'))} after / "
             f"{share(row.get('moved_if_removed'))} if removed")
    return " · ".join([f"{errors:,} errors", misses, f"{count(row, 'stale_reads')} stale reads", *silent,
                       f"rerouted {format_seconds(row.get('ejected_s'))}",
                       f"used again {format_seconds(row.get('readmitted_s'))}", moved])


def tables(data: dict[str, Any]) -> list[Table]:
    rows = tuple(line for row in rows_of(data) if has_figures(row) for line in error_lines(row))
    return [Table("Errors the callers saw, by class", ("config", "error", "count"), rows)] if rows else []


def error_lines(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A line per error class, most first; one line saying none for a configuration that raised nothing."""
    errors = sorted((row.get("errors") or {}).items(), key=lambda item: -item[1])
    name = printable(row_name(row))
    return [(name, printable(error), f"{number:,}") for error, number in errors] or [(name, "none", "0")]


# ---------------------------------------------------------------- charts


def charts(sources: list[Source]) -> tuple[list[Chart], list[str]]:
    rows = [(source.name(row_name(row)), row) for source in sources for row in rows_of(source.data)]
    if not rows:
        return [], ["No results in this file: the check ran no configuration (interrupted before the first?)."]
    moved = [(source, row) for source in sources for row in rows_of(source.data)
             if any(isinstance(row.get(key), (int, float)) for key, *_ in MOVED)]
    timelines, missing = [], []
    for name, row in rows:
        intervals = [r for r in row.get("intervals") or [] if isinstance(r, dict)]
        if intervals:
            timelines.append(timeline_chart(name, row, intervals, first=not timelines))
        line = missing_line(name, row, bool(intervals))
        if line:
            missing.append(line)
    return ([moved_chart(moved)] if moved else []) + timelines, missing


def missing_line(name: str, row: dict[str, Any], drawn: bool) -> str | None:
    """What the page cannot show of one configuration, and why; None when it shows everything."""
    why = printable(row.get("fault_detail") or row.get("verdict") or "no reason recorded")
    if drawn and not has_figures(row):
        return f"{name}: the fault was not injected ({why}): its chart shows the load alone, and it has no figures."
    if not drawn and has_figures(row):
        return f"{name}: no intervals in this file: its figures are in the card, with no chart over time."
    if not drawn:
        return f"{name}: nothing was measured ({why}): there is no chart and there are no figures."
    return None


def nodes_of(row: dict[str, Any]) -> int | None:
    """How many nodes the configuration ran over, from its figures or else its intervals."""
    if isinstance(row.get("nodes"), int):
        return row["nodes"]
    intervals = [r for r in row.get("intervals") or [] if isinstance(r, dict) and isinstance(r.get("nodes"), list)]
    return len(intervals[0]["nodes"]) if intervals else None


def moved_chart(rows: list[tuple[Source, dict[str, Any]]]) -> Chart:
    """Grouped bars of the three moved shares per configuration (grouped by file when several), and a dashed
    line at 1/N."""
    configs = [label(row_name(row)) for _, row in rows]
    x = [[label(source.label) for source, _ in rows], configs] if any(source.label for source, _ in rows) else configs
    data = [{"type": "bar", "name": words, "x": x, "marker": {"color": colour},
             "y": [row.get(key) if isinstance(row.get(key), (int, float)) else None for _, row in rows],
             "customdata": [label(source.name(row_name(row))) for source, row in rows],
             "texttemplate": "%{y:.0%}", "textposition": "outside", "cliponaxis": False,
             "hovertemplate": f"%{{customdata}}: %{{y:.1%}} of keys moved {words}<extra></extra>"}
            for key, words, colour in MOVED]
    shapes, notes = [], []
    for nodes in sorted({n for n in (nodes_of(row) for _, row in rows) if n}):
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 1 / nodes,
                       "y1": 1 / nodes, "line": {"color": "#1f2328", "width": 1.5, "dash": "dash"}, "layer": "below"})
        notes.append({"xref": "paper", "x": 1, "xanchor": "left", "yref": "y", "y": 1 / nodes, "showarrow": False,
                      "text": f"1/N = {1 / nodes:.0%}<br>({nodes} nodes)", "align": "left"})
    layout = {"barmode": "group", "shapes": shapes, "annotations": notes, "margin": {"t": 40, "r": 90},
              "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom"}, "xaxis": {"automargin": True},
              "yaxis": {"title": {"text": "share of keys moved"}, "tickformat": ".0%", "rangemode": "tozero"}}
    height_px = 380 if x is configs else 480  # room for the files' names under the configurations'
    return Chart("Keys moved to another node, per configuration", data, layout, height_px=height_px, name="failover-moved",
                 caption="Share of keys the client sent to a node other than their own: while the node was out; over "
                         "the load's last second, after it was back; and, asked of the client apart from the load, "
                         "once the failed node is removed from its server list. Removing one node of N, consistent "
                         "hashing (ketama, HashClient) should move about 1/N of the keys (the dashed line): only the "
                         "failed node's. Modula moves the most (about (N-1)/N). A client that never takes the node out "
                         "moves nothing while it is out, and raises errors instead; a share left after it was back "
                         "means the node was not used again. No bar: not measured.")


def timeline_chart(name: str, row: dict[str, Any], intervals: list[dict[str, Any]], first: bool = True) -> Chart:
    """Above, keys sent to each node a second; below, ops a second stacked by outcome; the fault marked.
    `first`: the page's first such chart, whose caption explains it in full (the others refer to it)."""
    x = [round(middle_s(r), 4) for r in intervals]
    end_s = float(intervals[-1]["t_s"]) + float(intervals[-1]["length_s"])
    shapes, notes = moment_marks(row, end_s)
    data = node_traces(row, intervals, x) + outcome_traces(intervals, x)
    layout = {"barmode": "stack", "bargap": 0, "shapes": shapes, "annotations": notes, "margin": {"t": 40},
              "legend": {"orientation": "h", "y": -0.18, "traceorder": "normal"},
              "xaxis": {"title": {"text": "seconds from the load's start"}, "anchor": "y2", "rangemode": "tozero"},
              "yaxis": {"domain": [NODES_TOP, 1], "title": {"text": "keys sent to a node /s"}, "rangemode": "tozero"},
              "yaxis2": {"domain": [0, NODES_TOP - 0.1], "title": {"text": "ops/s by outcome"},
                         "rangemode": "tozero"}}
    return Chart(f"{name}: keys per node and ops around the fault", data, layout, height_px=520,
                 name=f"failover-{printable(row_name(row))}", caption=timeline_caption(row, first))


def failed_index(row: dict[str, Any]) -> int | None:
    """The failed node, from 0 (None when the row has no figures to say)."""
    return row["failed_node"] if isinstance(row.get("failed_node"), int) else None


def node_traces(row: dict[str, Any], intervals: list[dict[str, Any]], x: list[float]) -> list[dict[str, Any]]:
    """A line per node: keys the proxies forwarded to it a second; the failed node's drawn thicker."""
    failed = failed_index(row)
    traces = []
    for node in range(max(len(r.get("nodes") or []) for r in intervals)):
        words = f"node {node + 1}" + (" (failed)" if node == failed else "")
        y = [round(((r.get("nodes") or [])[node:node + 1] or [0])[0] / r["length_s"], 1) for r in intervals]
        traces.append({"type": "scatter", "mode": "lines", "name": words, "x": x, "y": y, "yaxis": "y",
                       "line": {"color": color(node), "width": 3 if node == failed else 1.5},
                       "hovertemplate": f"{words}: %{{y:,.0f}} keys/s at %{{x:.2f}} s<extra></extra>"})
    return traces


def outcome_traces(intervals: list[dict[str, Any]], x: list[float]) -> list[dict[str, Any]]:
    """A bar trace per outcome, stacked: ops a second that ended ok, missed, raised, or read stale or wrong."""
    width = [float(r["length_s"]) * 0.9 for r in intervals]
    return [{"type": "bar", "name": f"{words} /s", "x": x, "width": width, "yaxis": "y2", "marker": {"color": colour},
             "y": [round(sum(per_s(r, key) for key in keys), 1) for r in intervals],
             "hovertemplate": f"%{{y:,.0f}} {words}/s at %{{x:.2f}} s<extra></extra>"}
            for keys, words, colour in OUTCOMES]


def moment_marks(row: dict[str, Any], end_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A dotted line through both plots where the node failed and where it was back, each labelled on the side
    away from the other (so the two labels never overlap), and the outage between them lightly shaded."""
    fault_at, back_at = (row.get(key) if isinstance(row.get(key), (int, float)) else None
                         for key in ("fault_at_s", "back_at_s"))
    failed = failed_index(row)
    node = "the node" if failed is None else f"node {failed + 1}"
    fault = str(row.get("fault") or "fault")
    shapes, notes = [], []
    marks = ((fault_at, f"{node} {FAULT_WORDS.get(fault, fault)} +{fault_at or 0:.2f} s ▼", "right"),
             (back_at, f"▲ {node} back +{back_at or 0:.2f} s", "left"))
    for at, words, side in marks:
        if at is None:
            continue
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1,
                       "line": MOMENT_LINE})
        notes.append({"x": at, "xref": "x", "xanchor": side, "y": 1.0, "yref": "paper", "yanchor": "bottom",
                      "showarrow": False, "text": label(words)})
    if fault_at is not None:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": fault_at, "x1": back_at or end_s,
                       "y0": 0, "y1": 1, "fillcolor": "#8c959f", "opacity": 0.12, "line": {"width": 0},
                       "layer": "below"})
    return shapes, notes


def timeline_caption(row: dict[str, Any], first: bool) -> str:
    lost = (" Lost writes: sets that returned False without raising." if row.get("lost_writes") else "")
    if not first:
        return ("Drawn as the first chart of this kind above: keys forwarded to each node a second; the callers' ops "
                f"a second by outcome; dotted, the fault and the node's return, with the outage shaded.{lost}")
    return ("Above: keys the proxies forwarded to each node, a second. While the node is out its line drops to zero; "
            "if the client moves its keys elsewhere the other nodes' lines rise; once the client uses it again its "
            "line comes back up. Below: the callers' ops a second, stacked by how they ended: ok, a miss, an error "
            "raised, or a value older than one already written (stale) or another key's (wrong). Dotted lines: "
            "when the node failed and when it was back; the shaded band between them is the outage. An op is "
            f"counted in the interval in which it completed, a key when its proxy forwarded it.{lost}")
