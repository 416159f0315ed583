"""bench in an HTML report: a card per run, then throughput and latency over time, latency by percentile
(overall, per op, pool acquire) and, for a sweep, latency against offered load.

Everything is read from the saved document, so an older file (no intervals, no uncorrected latency) draws
what it has and the page says what it lacks.
"""

from __future__ import annotations

import math
from typing import Any

from mcpool_cli.bench.kind import row_label
from mcpool_cli.engine.histograms import decode_histogram
from mcpool_cli.report.charts import Series, color, log_axis, nines_chart, nines_trace, timeline_chart, trace_values
from mcpool_cli.report.html import Chart, Source, Table, Verdict, label, rows_of
from mcpool_cli.units import format_duration_us, format_number, printable

OP_DASHES = {"get": "solid", "set": "dash", "delete": "dot", "get_multi": "dashdot"}


def runs_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    return rows_of(data, "runs")


def verdicts(data: dict[str, Any]) -> list[Verdict]:
    """A card per run: how it ended, its throughput and latency, errors and what the report explained."""
    return [run_card(data, run) for run in runs_of(data)]


def run_card(data: dict[str, Any], run: dict[str, Any]) -> Verdict:
    outcome = str(run.get("outcome") or "?")
    clean = outcome == "ok" and not run.get("error_count") and not run.get("wrong_values")
    verdict = "clean" if clean else ("not clean" if outcome == "ok" else outcome)
    lines = [figures_line(run)]
    if run.get("error_count"):
        errors = ", ".join(f"{printable(name)} {count:,}"
                           for name, count in sorted((run.get("errors") or {}).items(), key=lambda e: -e[1])[:4])
        lines.append(f"{run['error_count']:,} errors: {errors}")
    for name in ("wrong_values", "corrupt_values", "pool_exhausted"):
        if run.get(name):
            lines.append(f"{run[name]:,} {name.replace('_', ' ')}")
    rate = run.get("rate") or {}
    if rate.get("target_per_s"):
        lines.append(rate_words(rate))
    if outcome in ("crashed", "hung") and not run.get("ops") and run.get("ops_including_warmup"):
        lines.append(f"It {outcome} during the warm-up, before the measured window: "
                     f"{run['ops_including_warmup']:,} ops seen, none measured.")
    detail = run.get("outcome_detail") or {}
    if detail.get("explanation"):
        lines.append(str(detail["explanation"]))
    good = True if clean else (None if outcome == "interrupted" else False)
    return Verdict(row_label(data, run), verdict, good, tuple(lines))


def figures_line(run: dict[str, Any]) -> str:
    latency = run.get("latency_us") or {}
    parts = [f"{format_number(run.get('ops_per_s') or 0)} ops/s", f"{run.get('ops') or 0:,} ops"]
    parts += [f"{key} {format_duration_us(latency[key])}" for key in ("p50", "p99", "max")
              if latency.get(key) is not None]
    acquire = run.get("acquire") or {}
    if acquire.get("count") and (acquire.get("latency_us") or {}).get("p99") is not None:
        parts.append(f"acquire p99 {format_duration_us(acquire['latency_us']['p99'])}")
    return " · ".join(parts)


def rate_words(rate: dict[str, Any]) -> str:
    achieved = rate.get("achieved_ratio")
    shown = "?" if achieved is None else f"{achieved * 100:.1f}%"
    late = rate.get("late_ops") or 0
    return (f"offered {format_number(rate['target_per_s'])}/s ({printable(rate.get('arrival') or 'constant')}): "
            f"achieved {shown}, {late:,} ops sent ≥1 ms late")


def tables(data: dict[str, Any]) -> list[Table]:
    """Examples of wrong values, the evidence behind a crash or race."""
    rows = tuple((row_label(data, run), printable(example.get("kind")), printable(example.get("key")),
                  printable(example.get("got"))[:120])
                 for run in runs_of(data) for example in (run.get("examples") or [])[:5] if isinstance(example, dict))
    return [Table("Wrong values seen (examples)", ("run", "kind", "key", "got"), rows)] if rows else []


# ---------------------------------------------------------------- charts


def charts(sources: list[Source]) -> tuple[list[Chart], list[str]]:
    """The charts every source's runs share, and lines on what some run or file cannot show."""
    runs = [(source, run) for source in sources for run in runs_of(source.data)]
    missing = [nothing_measured(run_name(source, run), run) for source, run in runs
               if not (run.get("ops") or 0) - (run.get("failed_ops") or 0)]
    if not runs:
        return [], ["No runs in this document: nothing was measured."]
    built = [timeline(runs, missing), *spectra(runs, missing), *sweep_charts(sources)]
    return [chart for chart in built if chart is not None], missing


def nothing_measured(name: str, run: dict[str, Any]) -> str:
    """Why a run has no latency to draw: no op measured, or none that succeeded."""
    ended = f" (it {run.get('outcome')})" if run.get("outcome") not in (None, "ok") else ""
    if run.get("ops"):
        return f"{name}: no op succeeded ({run['ops']:,} measured, all failed), so there is no latency to draw{ended}."
    return f"{name}: no measured ops, so no latency to draw{ended}."


def run_name(source: Source, run: dict[str, Any]) -> str:
    return source.name(row_label(source.data, run))


def ended_early(run: dict[str, Any]) -> tuple[float, str] | None:
    """When (in the measured window) and how a crashed or hung run ended; None for one that finished."""
    outcome = run.get("outcome")
    if outcome not in ("crashed", "hung"):
        return None
    workers = [w for w in run.get("workers") or [] if isinstance(w, dict) and w.get("outcome") == outcome]
    times = [float(w["measured_s"]) for w in workers if isinstance(w.get("measured_s"), (int, float))]
    at_s = min(times) if times else float(run.get("duration_s") or 0)
    signal = next((w.get("signal") for w in workers if w.get("signal")), None)
    return at_s, f"{outcome}{' (' + str(signal) + ')' if signal else ''}"


def timeline(runs: list[tuple[Source, dict[str, Any]]], missing: list[str]) -> Chart | None:
    series = []
    for index, (source, run) in enumerate(runs):
        rows = [row for row in run.get("intervals") or [] if isinstance(row, dict)]
        if not rows:
            if run.get("ops"):
                missing.append(f"{run_name(source, run)}: no intervals in this file (written by an mcpool from "
                               "before latency over time was kept), so it is not on the timeline.")
            continue
        series.append(Series(run_name(source, run), rows, color(index), ended_early(run),
                             (run.get("rate") or {}).get("target_per_s")))
    return timeline_chart(series, "Throughput, failures and latency over time") if series else None


def spectra(runs: list[tuple[Source, dict[str, Any]]], missing: list[str]) -> list[Chart]:
    """Latency by percentile: overall (corrected and, when paced, uncorrected), per op, and pool acquire."""
    overall, by_op, acquire = [], [], []
    for index, (source, run) in enumerate(runs):
        name, line = run_name(source, run), {"color": color(index)}
        overall.append(curve(name, run.get("histogram"), {**line, "width": 2}, missing))
        if run.get("rate"):
            overall.append(curve(f"{name} uncorrected", run.get("uncorrected_histogram"),
                                 {**line, "dash": "dot", "width": 1.5}, missing))
        for op, block in sorted((run.get("by_op") or {}).items()):
            by_op.append(curve(f"{name} {op}", (block or {}).get("histogram"),
                               {**line, "dash": OP_DASHES.get(op, "solid")}, missing))
        if (run.get("acquire") or {}).get("count"):
            acquire.append(curve(f"{name} acquire", run["acquire"].get("histogram"), line, missing))
    paced = any(run.get("rate") for _, run in runs)
    built = [
        (overall, "Latency by percentile", OVERALL_CAPTION if paced else CLOSED_CAPTION, "latency-percentiles"),
        (by_op, "Latency by percentile, per operation", PER_OP_CAPTION, "latency-per-op"),
        (acquire, "Waiting for a pool client (acquire), by percentile", ACQUIRE_CAPTION, "acquire-percentiles")]
    return [nines_chart(title, [t for t in traces if t], caption, name)
            for traces, title, caption, name in built if any(traces)]


def curve(name: str, encoded: Any, line: dict[str, Any], missing: list[str]) -> dict[str, Any] | None:
    if not encoded:
        return None
    try:
        histogram = decode_histogram(str(encoded))
    except ValueError as exc:
        missing.append(f"{name}: {exc}; that curve is not drawn.")
        return None
    return nines_trace(name, histogram, line)


def sweep_charts(sources: list[Source]) -> list[Chart]:
    """p99 against the offered rate per strategy, with the budget as a line when it names a latency."""
    data, budgets = [], set()
    for source in sources:
        for index, strategy in enumerate(item for item in source.data.get("sweep") or [] if isinstance(item, dict)):
            points = [p for p in strategy.get("points") or [] if isinstance(p, dict)]
            name = source.name(str(strategy.get("strategy")))
            data.append({"type": "scatter", "mode": "lines+markers", "name": label(name),
                         "x": [p.get("rate_per_s") for p in points],
                         "y": [None if p.get("p99_us") is None else p["p99_us"] / 1000 for p in points],
                         "customdata": [round((p.get("achieved_ratio") or 0) * 100, 1) for p in points],
                         "marker": {"size": 9, "symbol": ["circle" if p.get("sustained") else "x" for p in points]},
                         "line": {"color": color(len(data))},
                         "hovertemplate": "%{x:,.0f}/s offered: p99 %{y:.3f} ms, %{customdata}% achieved"})
        budgets.add(str((source.data.get("options") or {}).get("budget") or ""))
    if not data:
        return []
    shapes, notes = budget_lines(budgets)
    layout = {"xaxis": {"title": {"text": "offered rate, ops/s (log)"}, "type": "log"},
              "yaxis": log_axis(trace_values(data) + [shape["y0"] for shape in shapes],
                                "p99 from the intended start, ms (log)"),
              "shapes": shapes, "annotations": notes}
    return [Chart("Sweep: p99 against offered load", data, layout, name="sweep",
                  caption="Each point is one run at that rate; ○ sustained (≥98% of the rate delivered, no error, "
                          "within the budget), × not.")]


def budget_lines(budgets: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A horizontal line per budget that bounds p99 (or another percentile) of the whole run."""
    from mcpool_cli.errors import UsageProblem
    from mcpool_cli.report.thresholds import parse_threshold

    shapes, notes = [], []
    for budget in sorted(b for b in budgets if b):
        try:
            threshold = parse_threshold(budget)
        except UsageProblem:
            continue
        if threshold.metric not in ("p50", "p90", "p99", "p99_9", "max"):
            continue  # a bound on another figure, or on one op's latency: not this chart's
        value_ms = threshold.limit * 1000  # a time threshold's limit is in seconds
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": value_ms,
                       "y1": value_ms, "line": {"color": "#cf222e", "dash": "dash", "width": 1.5}})
        notes.append({"xref": "paper", "x": 0, "xanchor": "left", "yref": "y", "y": math.log10(value_ms),
                      "yanchor": "bottom",  # an annotation on a log axis is placed by the log of its value
                      "text": label(f"budget {budget}"), "showarrow": False, "font": {"color": "#cf222e"}})
    return shapes, notes


CLOSED_CAPTION = ("A closed loop: each thread sends its next op when the last returns, so latency runs from "
                  "sending to the reply, and a stall delays the ops behind it unseen (use --rate to see them). "
                  "Each curve ends at its highest measured value: with N ops the last point is p(1 - 1/N).")
OVERALL_CAPTION = ("Solid: from each op's intended start (what a request arriving at the steady rate waits); "
                   "dotted: from the moment it was sent (uncorrected, as closed-loop tools report). "
                   "Each curve ends at its highest measured value.")
PER_OP_CAPTION = "Each operation of the mix on its own; line style by operation (get solid, set dashed)."
ACQUIRE_CAPTION = ("Time to get a client from the pool before each op. A pool with fewer clients than "
                   "threads makes them queue here.")
