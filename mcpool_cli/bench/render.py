"""Rich renderables for bench results; nothing here prints by itself."""

from __future__ import annotations

import math
from typing import Iterable

from hdrh.histogram import HdrHistogram
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mcpool_cli.engine.outcomes import PERCENTILES, RunResult, latency_summary_us

COLUMNS = (("min", "min"), ("mean", "mean"), *((key, key.replace("_", ".")) for key, _ in PERCENTILES), ("max", "max"))
UNITS = (("s", 1_000_000.0), ("ms", 1000.0), ("µs", 1.0))
OUTCOME_STYLE = {"ok": "bold green", "crashed": "bold red", "hung": "bold red", "error": "bold red",
                 "interrupted": "bold yellow"}
BAR_WIDTH = 40


def format_number(value: float) -> str:
    """At least 3 significant digits, never in scientific notation."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    if value <= 0:
        return "0"
    return f"{value:.{2 - math.floor(math.log10(value))}f}"


def unit_for(value_us: float | None) -> tuple[str, float]:
    """The largest unit in which `value_us` is at least 1."""
    if value_us is None:
        return UNITS[-1]
    return next(((name, scale) for name, scale in UNITS if value_us >= scale), UNITS[-1])


def pick_unit(values_us: Iterable[float | None]) -> tuple[str, float]:
    """One unit for a whole column, chosen by the column's median value."""
    present = sorted(v for v in values_us if v is not None)
    return unit_for(present[len(present) // 2] if present else None)


def latency_table(result: RunResult) -> Table:
    """min, mean, percentiles and max for get, set (and delete, get_multi when run), all ops and pool acquire;
    one unit per column, the one that suits the all-ops row."""
    rows = {op: result.stats.histogram(op) for op in result.stats.ops_done()}
    rows["all ops"] = result.stats.all_ops_histogram()
    rows["acquire"] = result.stats.histogram("acquire")
    summaries = {name: latency_summary_us(hist) for name, hist in rows.items()}
    table = Table(title="latency (successful ops)", title_justify="left", box=None, pad_edge=False,
                  collapse_padding=True)
    table.add_column("op")
    table.add_column("count", justify="right")
    units = {key: unit_for(summaries["all ops"][key]) for key, _ in COLUMNS}  # the main row sets the unit
    for key, label in COLUMNS:
        table.add_column(f"{label} {units[key][0]}", justify="right", no_wrap=True)
    for name, summary in summaries.items():
        cells = ["-" if summary[key] is None else format_number(summary[key] / units[key][1]) for key, _ in COLUMNS]
        table.add_row(name, f"{rows[name].get_total_count():,}", *cells)
    if rows["acquire"].get_total_count() == 0 and rows["all ops"].get_total_count():
        table.caption, table.caption_justify = "acquire: none — each thread keeps one client for its life", "left"
    return table


def bucket_bounds_us(low_us: float, high_us: float) -> list[float]:
    """Upper bounds on a 1-2-5 scale that cover [low_us, high_us]."""
    bounds, exponent = [], math.floor(math.log10(max(low_us, 0.001)))
    while not bounds or bounds[-1] < high_us:
        for step in (1, 2, 5):
            bound = step * 10.0 ** exponent
            if bound >= low_us and (not bounds or bounds[-1] < high_us):
                bounds.append(bound)
        exponent += 1
    return bounds


def histogram_drawing(histogram: HdrHistogram) -> RenderableType:
    """Bars of the latency distribution on a 1-2-5 scale, with share and cumulative share."""
    total = histogram.get_total_count()
    if total == 0:
        return Text("no successful ops were measured", style="dim")
    bounds = bucket_bounds_us(histogram.get_min_value() / 1000, histogram.get_max_value() / 1000)
    counts = [0] * len(bounds)
    for item in histogram.get_recorded_iterator():
        value_us = item.value_iterated_to / 1000
        index = next((i for i, bound in enumerate(bounds) if value_us <= bound), len(bounds) - 1)
        counts[index] += item.count_added_in_this_iter_step
    table = Table(title="distribution (all ops)", title_justify="left", box=None, pad_edge=False, show_header=False)
    for justify in ("right", "left", "right", "right"):
        table.add_column(justify=justify)
    peak, cumulative = max(counts), 0
    for bound, count in zip(bounds, counts):
        cumulative += count
        bar = "█" * round(BAR_WIDTH * count / peak) if count else ""
        unit, scale = pick_unit([bound])
        share = f"{100 * count / total:5.1f}%" if count * 1000 >= total or not count else " <0.1%"
        table.add_row(f"≤ {format_number(bound / scale)} {unit}", Text(bar, style="cyan"), share,
                      f"{100 * cumulative / total:5.1f}%")
    return table


def counts_line(result: RunResult) -> Text:
    stats = result.stats
    text = Text()
    items = [("ops", f"{stats.ops():,}"), ("ops/s", f"{result.ops_per_s:,.0f}"),
             ("errors", f"{result.error_count:,}"), ("wrong values", f"{stats.wrong_values:,}"),
             ("corrupt", f"{stats.corrupt_values:,}"), ("misses", f"{stats.misses:,}"),
             ("pool exhausted", f"{stats.pool_exhausted:,}")]
    for label, value in items:
        bad = label in ("errors", "wrong values", "corrupt") and value != "0"
        text.append(f"{label} ", style="dim").append(value, style="bold red" if bad else "bold").append("   ")
    return text


def run_header(result: RunResult) -> Text:
    outcome = result.outcome.outcome
    pool = f", pool of {result.pool_size}" if result.pool_size else ""
    processes = f" × {result.processes} processes" if result.processes > 1 else ""
    return (Text(result.strategy, style="bold").append(f" · {result.threads} threads{processes}{pool} · ")
            .append(outcome, style=OUTCOME_STYLE.get(outcome, "bold")))


def errors_table(result: RunResult) -> RenderableType | None:
    if not result.stats.errors and not result.stats.examples:
        return None
    lines = Text()
    for name, count in result.stats.errors.most_common():
        lines.append(f"  {name}: {count:,}\n", style="red")
    for example in result.stats.examples:
        lines.append(f"  {example['kind']} value for {example['key']}: got {example['got']}\n", style="yellow")
    return Group(Text("errors and anomalies", style="italic"), lines)


def run_report(result: RunResult) -> RenderableType:
    """Everything about one strategy run."""
    parts: list[RenderableType] = [run_header(result), counts_line(result)]
    if result.explanation:
        parts.append(Text(result.explanation, style="yellow"))
    errors = errors_table(result)
    if errors is not None:
        parts.append(errors)
    if result.stats.out_of_range:
        parts.append(Text(f"{result.stats.out_of_range:,} latencies were outside the histogram's range "
                          "(1 ns to 1 h) and are not in the table", style="yellow"))
    if result.stats.ops():
        parts += [latency_table(result), histogram_drawing(result.stats.all_ops_histogram())]
    else:
        parts.append(Text("no operations were measured after the warm-up", style="dim"))
    parts.append(Text(""))
    return Group(*parts)


def comparison(results: list[RunResult]) -> RenderableType:
    """Side by side, fastest first, with a relative column and hyperfine-style sentences.

    Runs that did not finish (crashed, hung, error, interrupted) are listed last and left out of the
    relative figures: what they measured before they stopped is no throughput to compare.
    """
    ranked = sorted(results, key=lambda r: (r.outcome.outcome == "ok", r.ops_per_s), reverse=True)
    finished = [r for r in ranked if r.outcome.outcome == "ok" and r.ops_per_s]
    summaries = [latency_summary_us(r.stats.all_ops_histogram()) for r in ranked]
    units = {key: pick_unit(s[key] for s in summaries) for key in ("p50", "p99")}
    table = Table(title="comparison", title_justify="left", box=None, pad_edge=False)
    for name in ("strategy", "outcome", "ops/s", "relative", f"p50 {units['p50'][0]}", f"p99 {units['p99'][0]}",
                 "errors", "wrong"):
        table.add_column(name, justify="left" if name in ("strategy", "outcome") else "right", no_wrap=True)
    for result, summary in zip(ranked, summaries):
        cells = ["-" if summary[k] is None else format_number(summary[k] / units[k][1]) for k in ("p50", "p99")]
        relative = f"{finished[0].ops_per_s / result.ops_per_s:.2f}" if result in finished else "-"
        outcome = result.outcome.outcome
        table.add_row(result.strategy, Text(outcome, style=OUTCOME_STYLE.get(outcome, "")),
                      f"{result.ops_per_s:,.0f}", relative, *cells, f"{result.error_count:,}",
                      f"{result.stats.wrong_values:,}")
    sentences = Text()
    for other in finished[1:]:
        sentences.append(f"{finished[0].strategy} ran {finished[0].ops_per_s / other.ops_per_s:.2f}× faster "
                         f"than {other.strategy}\n")
    for broken in (r for r in ranked if r.outcome.outcome != "ok"):
        sentences.append(f"{broken.strategy} {broken.outcome.outcome}: its figures cover only what it did "
                         "before that\n", style="yellow")
    legend = Text("relative: the fastest finished strategy's ops/s divided by each one's", style="dim")
    return Group(table, legend, sentences)
