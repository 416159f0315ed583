"""Plotly figures that several kinds draw: a run's intervals over time, and latency by percentile.

Latencies are drawn in milliseconds on log axes: a pool's tail is orders of magnitude above its median.
Colours follow the order in which runs are listed, the same in every chart of a page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mcpool_cli.report.html import Chart, label

COLORS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#f0e442", "#000000")  # Okabe–Ito
NINES_TICKS = ((1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1e3, "99.9%"), (1e4, "99.99%"),
               (1e5, "99.999%"), (1e6, "99.9999%"))
STEPS_PER_HALVING = 6  # points on the percentile curve between 50% and 75%, 75% and 87.5%, ...


def color(index: int) -> str:
    return COLORS[index % len(COLORS)]


@dataclass(frozen=True)
class Series:
    """One run drawn over time: its intervals (as JSON `intervals`), and when it died, if it did."""

    name: str
    intervals: list[dict[str, Any]]
    color: str
    ended: tuple[float, str] | None = None  # (seconds into the measured window, what happened)
    target_per_s: float | None = None  # the offered rate of a paced run


def log_axis(values: list[Any], title: str, **more: Any) -> dict[str, Any]:
    """A log axis with 1-2-5 ticks written out in full (0.2, 0.5, 1, 2, 5, 10…), spanning the values drawn."""
    drawn = [float(v) for v in values if isinstance(v, (int, float)) and v > 0]
    axis: dict[str, Any] = {"type": "log", "title": {"text": title}, **more}
    if not drawn:
        return axis
    low, high = math.floor(math.log10(min(drawn))), math.ceil(math.log10(max(drawn)))
    ticks = [m * 10.0 ** e for e in range(low, high + 1) for m in (1, 2, 5) if min(drawn) / 2 <= m * 10.0 ** e <= max(drawn) * 2]
    axis["tickvals"] = ticks
    axis["ticktext"] = [f"{tick:,.6g}" for tick in ticks]
    return axis


def trace_values(traces: list[dict[str, Any]], axis: str = "y") -> list[Any]:
    return [v for trace in traces if trace.get("yaxis", "y") == axis for v in trace.get("y") or []]


def middle_s(row: dict[str, Any]) -> float:
    return float(row["t_s"]) + float(row["length_s"]) / 2


def per_s(row: dict[str, Any], key: str) -> float:
    length = float(row["length_s"])
    return float(row.get(key) or 0) / length if length > 0 else 0.0


def ms(value_us: Any) -> float | None:
    return None if value_us is None else float(value_us) / 1000


def timeline_chart(series: list[Series], title: str = "Over time") -> Chart:
    """Three rows sharing the time axis: ops/s (and the target of a paced run), failed ops/s, and p50, p99
    and max latency per interval; a dotted line where a run ended early."""
    data: list[dict[str, Any]] = []
    shapes, notes = [], []
    for item in series:
        rows = item.intervals
        x = [round(middle_s(row), 4) for row in rows]
        group = {"legendgroup": item.name, "x": x, "type": "scatter"}
        line = {"color": item.color}
        data.append({**group, "name": label(item.name), "y": [round(per_s(r, "ops"), 1) for r in rows],
                     "mode": "lines+markers", "line": line, "marker": {"size": 5}, "yaxis": "y",
                     "hovertemplate": "%{y:,.0f} ops/s at %{x:.1f} s"})
        if item.target_per_s:
            data.append({"legendgroup": item.name, "type": "scatter", "showlegend": False, "yaxis": "y",
                         "x": [rows[0]["t_s"], rows[-1]["t_s"] + rows[-1]["length_s"]] if rows else [],
                         "y": [item.target_per_s, item.target_per_s], "mode": "lines",
                         "line": {**line, "dash": "dash", "width": 1}, "name": label(f"{item.name} target"),
                         "hovertemplate": "target %{y:,.0f} ops/s"})
        data.append({**group, "showlegend": False, "name": label(f"{item.name} failed"), "yaxis": "y2",
                     "y": [round(per_s(r, "failed_ops"), 1) for r in rows], "mode": "lines",
                     "line": {**line, "width": 1.5}, "fill": "tozeroy",
                     "hovertemplate": "%{y:,.0f} failed ops/s at %{x:.1f} s"})
        for key, dash, width in (("p50", "dot", 1.2), ("p99", "solid", 2), ("max", "dash", 0.8)):
            data.append({**group, "showlegend": False, "name": label(f"{item.name} {key}"), "yaxis": "y3",
                         "y": [ms((r.get("latency_us") or {}).get(key)) for r in rows], "mode": "lines",
                         "line": {**line, "dash": dash, "width": width}, "connectgaps": False,
                         "hovertemplate": f"{key} %{{y:.3f}} ms at %{{x:.1f}} s"})
        if item.ended is not None:
            at_s, what = item.ended
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at_s, "x1": at_s, "y0": 0, "y1": 1,
                           "line": {"color": item.color, "dash": "dot", "width": 2}})
            notes.append({"x": at_s, "y": 1.0, "xref": "x", "yref": "paper", "yanchor": "bottom",
                          "text": label(f"{item.name} {what} +{at_s:.1f} s"), "showarrow": False,
                          "font": {"color": item.color}})
    layout = {"xaxis": {"title": {"text": "seconds into the measured window"}, "anchor": "y3", "rangemode": "tozero"},
              "yaxis": {"domain": [0.62, 1], "title": {"text": "ops/s"}, "rangemode": "tozero"},
              "yaxis2": {"domain": [0.42, 0.56], "title": {"text": "failed/s"}, "rangemode": "tozero"},
              "yaxis3": log_axis(trace_values(data, "y3"), "ms (log)", domain=[0, 0.36]),
              "shapes": shapes, "annotations": notes, "margin": {"t": 40}}
    paced = any(item.target_per_s for item in series)
    return Chart(title, data, layout, height_px=560, name="timeline",
                 caption=f"Per interval: ops/s{' (thin dashed: the offered rate)' if paced else ''}, failed ops/s, "
                         "and latency in three line styles: p50 dotted, p99 solid, max dashed. An op is counted in "
                         "the interval in which it completed.")


def nines_points(histogram: Any) -> tuple[list[float], list[float], list[float]]:
    """(x = 1/(1-p), latency in ms, p in %) along a histogram's percentiles, as far as its samples reach:
    with N values the last point is the max, at p = 1 - 1/N; nothing is drawn beyond what was measured."""
    count = histogram.get_total_count()
    if count == 0:
        return [], [], []
    xs, ys, ps = [], [], []
    step = 0
    while True:
        share_left = 0.5 ** (step / STEPS_PER_HALVING)  # 1 - p
        if share_left < 1 / count:
            break
        percentile = 100 * (1 - share_left)
        xs.append(1 / share_left)
        ys.append(histogram.get_value_at_percentile(percentile) / 1e6)
        ps.append(percentile)
        step += 1
    xs.append(float(count))
    ys.append(histogram.get_max_value() / 1e6)
    ps.append(100 * (1 - 1 / count))
    return xs, ys, ps


def nines_trace(name: str, histogram: Any, line: dict[str, Any]) -> dict[str, Any] | None:
    """One curve of the percentile spectrum; None for an empty histogram."""
    xs, ys, ps = nines_points(histogram)
    if not xs:
        return None
    return {"type": "scatter", "mode": "lines", "name": label(name), "x": [round(x, 3) for x in xs],
            "y": [round(y, 4) for y in ys], "customdata": [round(p, 4) for p in ps], "line": line,
            "hovertemplate": f"{label(name)}<br>p%{{customdata}}: %{{y:.3f}} ms<extra></extra>"}


def nines_chart(title: str, traces: list[dict[str, Any]], caption: str, name: str) -> Chart:
    top = max((max(trace["x"]) for trace in traces), default=100)
    ticks = [(x, words) for x, words in NINES_TICKS if x <= max(top, 100) * 1.01]
    layout = {"xaxis": {"type": "log", "title": {"text": "percentile"}, "tickvals": [x for x, _ in ticks],
                        "ticktext": [words for _, words in ticks], "range": [0, math.log10(max(top, 100)) + 0.05]},
              "yaxis": log_axis(trace_values(traces), "latency, ms (log)")}
    return Chart(title, traces, layout, caption=caption, name=name)
