"""check-stale in an HTML report: a card per strategy, then per strategy its ops over time with the fault, the
outage and the recovery shaded, and its failures told apart: errors raised against silent ones (false misses
and wrong values)."""

from __future__ import annotations

from typing import Any

from mcpool_cli.checks.stale.kind import KIND
from mcpool_cli.report.charts import middle_s, ms, per_s
from mcpool_cli.report.html import Chart, Source, Table, Verdict, label, passed, rows_of
from mcpool_cli.units import format_seconds, printable

SOLID = {"down": "#8c959f", "outage": "#cf222e", "recovery": "#d4a72c"}


def row_name(row: dict[str, Any]) -> str:
    variant = row.get("variant")
    return f"{row.get('strategy', '?')}" + (f" ({variant})" if variant and variant != "defaults" else "")


def verdicts(data: dict[str, Any]) -> list[Verdict]:
    return [card(row) for row in rows_of(data)]


def card(row: dict[str, Any]) -> Verdict:
    verdict = str(row.get("verdict") or "?")
    good = passed(KIND, verdict)
    figures = (f"{row.get('false_misses', 0):,} false misses · {row.get('error_count', 0):,} errors · "
               f"outage {format_seconds(row.get('outage_s'))} · recovery {format_seconds(row.get('recovery_s'))}")
    lines = [figures, *(str(row[key]) for key in ("fault_detail", "advice") if row.get(key))]
    return Verdict(row_name(row), verdict, good, tuple(printable(line) for line in lines))


def tables(data: dict[str, Any]) -> list[Table]:
    rows = tuple((row_name(row), printable(name), f"{count:,}") for row in rows_of(data)
                 for name, count in sorted((row.get("errors") or {}).items(), key=lambda e: -e[1]))
    return [Table("Errors the callers saw, by class", ("strategy", "error", "count"), rows)] if rows else []


def charts(sources: list[Source]) -> tuple[list[Chart], list[str]]:
    built, missing = [], []
    for source in sources:
        for row in rows_of(source.data):
            name = source.name(row_name(row))
            intervals = [r for r in row.get("intervals") or [] if isinstance(r, dict)]
            if intervals:
                built.append(fault_chart(name, row, intervals))
            elif row.get("ops_scheduled"):
                missing.append(f"{name}: no intervals in this file (written by an mcpool from before check-stale "
                               "kept a timeline): its figures are in the card, with no chart.")
            else:
                missing.append(f"{name}: no op ran, so there is nothing over time to draw.")
    return built, missing


def moments(row: dict[str, Any]) -> dict[str, float | None]:
    """The fault's moments in seconds from the load's start (None when they did not happen)."""
    def number(key: str) -> float | None:
        value = row.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    fault, back, first = number("fault_at_s"), number("back_at_s"), number("first_failure_s")
    outage, recovery = number("outage_s"), number("recovery_s")
    outage_from = None if fault is None or first is None else fault + first
    return {"fault": fault, "back": back, "outage_from": outage_from,
            "outage_to": None if outage_from is None or not outage else outage_from + outage,
            "recovered": None if back is None or recovery is None else back + recovery}


def fault_chart(name: str, row: dict[str, Any], intervals: list[dict[str, Any]]) -> Chart:
    x = [round(middle_s(r), 4) for r in intervals]
    width = [float(r["length_s"]) * 0.9 for r in intervals]
    silent = [max(0.0, per_s(r, "failed_ops") - per_s(r, "errors")) for r in intervals]
    bars = {"type": "bar", "x": x, "width": width}
    data = [
        {**bars, "name": "ok ops/s", "y": [round(per_s(r, "ops"), 1) for r in intervals],
         "marker": {"color": "#2da44e"}, "hovertemplate": "%{y:,.0f} ok/s at %{x:.2f} s"},
        {**bars, "name": "errors/s (raised)", "y": [round(per_s(r, "errors"), 1) for r in intervals],
         "marker": {"color": "#cf222e"}, "hovertemplate": "%{y:,.0f} errors/s at %{x:.2f} s"},
        {**bars, "name": "silent failures/s (false misses, wrong values)", "y": [round(v, 1) for v in silent],
         "marker": {"color": "#8250df"}, "hovertemplate": "%{y:,.0f} silent failures/s at %{x:.2f} s"},
        {"type": "scatter", "mode": "lines+markers", "name": "p99 of ok ops", "x": x, "yaxis": "y2",
         "y": [ms((r.get("latency_us") or {}).get("p99")) for r in intervals], "line": {"color": "#24292f"},
         "marker": {"size": 4}, "hovertemplate": "p99 %{y:.3f} ms at %{x:.2f} s"}]
    events = [(xi, r) for xi, r in zip(x, intervals) if r.get("failed_ops", 0) > r.get("errors", 0)]
    if events:  # silent failures are few and easy to miss in a bar: marked as events
        data.append({"type": "scatter", "mode": "markers+text", "name": "false misses / wrong values",
                     "x": [xi for xi, _ in events], "y": [per_s(r, "ops") + per_s(r, "failed_ops") for _, r in events],
                     "text": [f"{r['failed_ops'] - r.get('errors', 0):,}" for _, r in events], "textposition": "top center",
                     "marker": {"symbol": "x", "size": 11, "color": "#8250df"},
                     "hovertemplate": "%{text} silent failures in the interval at %{x:.2f} s<extra></extra>"})
    shapes, notes = fault_shapes(moments(row), str(row.get("fault") or "fault"))
    layout = {"barmode": "stack", "bargap": 0, "shapes": shapes, "annotations": notes,
              "margin": {"t": 40, "l": 110}, "xaxis": {"title": {"text": "seconds from the load's start"},
                                                      "rangemode": "tozero"},
              "yaxis": {"title": {"text": "ops/s"}, "rangemode": "tozero", "domain": [0, PLOT_TOP - 0.02]},
              "yaxis2": {"title": {"text": "p99 of ok ops, ms"}, "overlaying": "y", "side": "right",
                         "rangemode": "tozero", "tickformat": ",.3~r", "showgrid": False}}
    return Chart(f"{name}: ops around the fault", data, layout, height_px=500, name=f"stale-{name}",
                 caption="Bands above the chart, in the card's words. fault: from the fault's start until the server "
                         "was usable again (a restarted server may serve on for a while after its SIGTERM); outage: "
                         "from the first failed or stalled op to the first success after the last failure; "
                         "recovery: from the server's return to that success. Each op is counted where it "
                         "completed; × marks ops that failed silently (false misses, wrong values: a get_multi "
                         "missing four keys is one op).")


BANDS = (("down", "fault", "back", "fault"), ("outage", "outage_from", "outage_to", "outage"),
         ("recovery", "back", "recovered", "recovery"))
PLOT_TOP = 0.76  # the bars and the p99 line below this share of the height; the bands above it


def fault_shapes(at: dict[str, float | None], fault: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Above the plot, a band per span (server down, callers failing, recovering), then a dotted line at each
    moment (fault, server back, recovered) through bands and plot."""
    shapes, notes = [], []
    height = (1 - PLOT_TOP) / len(BANDS)
    for row, (kind, start_key, end_key, words) in enumerate(BANDS):
        y0 = 1 - (row + 1) * height + 0.01
        notes.append({"x": 0, "xref": "paper", "xanchor": "right", "y": y0 + height / 2 - 0.005, "yref": "paper",
                      "showarrow": False, "text": label(f"fault: {fault}" if kind == "down" else words),
                      "font": {"size": 11}})
        start, end = at[start_key], at[end_key]
        if start is None:
            continue
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": start, "x1": start if end is None else end,
                       "y0": y0, "y1": y0 + height - 0.01, "fillcolor": SOLID[kind], "line": {"width": 0}})
    for key, words, y in (("fault", "▼ fault", 1.0), ("back", "▲ server back", 1.06), ("recovered", "✓ recovered", 1.0)):
        if at[key] is not None:
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at[key], "x1": at[key], "y0": 0,
                           "y1": 1, "line": {"color": "#57606a", "width": 1, "dash": "dot"}})
            notes.append({"x": at[key], "xref": "x", "yref": "paper", "y": y, "yanchor": "bottom", "showarrow": False,
                          "text": label(f"{words} +{at[key]:.2f} s")})
    if at["fault"] is not None and at["recovered"] is None:
        notes.append({"x": 1, "xref": "paper", "xanchor": "right", "yref": "paper", "y": 1.0, "yanchor": "bottom",
                      "showarrow": False, "text": "never recovered", "font": {"color": "#cf222e"}})
    return shapes, notes
