"""Rich renderables for bench results; nothing here prints by itself."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mcpool_cli.bench.kind import OUTCOME_STYLE
from mcpool_cli.bench.results import LATE, SENT, RunResult
from mcpool_cli.bench.sweep import SUSTAINED_SHARE, sweep
from mcpool_cli.engine.histograms import PERCENTILES, latency_summary_us
from mcpool_cli.report.compare import grouped, option_notes
from mcpool_cli.units import (Fitted, format_duration_us, format_number, format_seconds_short, outside, p99_spread,
                              per_second, pick_unit, printable, sparkline, sparkline_rows, timeline_marks, unit_for,
                              worst_p99)

COLUMNS = (("min", "min"), ("mean", "mean"), *((key, key.replace("_", ".")) for key, _ in PERCENTILES), ("max", "max"))
BAR_WIDTH = 40
LATENCY_DROPPED = ("min", "p90", "mean", "max", "count", "p99.9")  # in this order, when narrow
COMPARISON_DROPPED = ("wrong", "p50", "relative", "errors", "p99")
COMPARE_DROPPED = ("p50", "p99.9", "errors", "p99", "speed")


def latency_table(result: RunResult) -> Table:
    """min, mean, percentiles and max for get, set (and delete, get_multi when run), all ops and pool acquire;
    one unit per column, the one that suits the all-ops row."""
    stats = result.stats
    rows = {op: stats.histogram(op) for op in stats.ops_done()}
    rows["all ops"] = stats.all_ops_histogram()
    rows["acquire"] = stats.histogram("acquire")
    if result.rate:
        rows["all ops uncorrected"] = stats.all_ops_histogram(SENT)
        if rows["acquire"].get_total_count():
            rows["acquire uncorrected"] = stats.histogram(SENT + "acquire")
        rows["start lateness"] = stats.histogram(LATE)
    summaries = {name: latency_summary_us(hist) for name, hist in rows.items()}
    title = "latency from the intended start (successful ops)" if result.rate else "latency (successful ops)"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, collapse_padding=True)
    table.add_column("op")
    table.add_column("count", justify="right", no_wrap=True)
    units = {key: unit_for(summaries["all ops"][key]) for key, _ in COLUMNS}  # the main row sets the unit
    for key, label in COLUMNS:
        table.add_column(f"{label} {units[key][0]}", justify="right", no_wrap=True)
    for name, summary in summaries.items():
        cells = ["-" if summary[key] is None else format_number(summary[key] / units[key][1]) for key, _ in COLUMNS]
        table.add_row(outside(name), f"{rows[name].get_total_count():,}", *cells)
    notes = []
    if result.rate:
        notes.append("corrected: from when each op was due, so waiting for a client or behind a stalled op counts; "
                     "uncorrected: from when it was sent; lateness: how long after its due time it was sent")
    if rows["acquire"].get_total_count() == 0 and rows["all ops"].get_total_count():
        notes.append("acquire: none — each thread keeps one client for its life")
    if notes:
        table.caption, table.caption_justify = "\n".join(notes), "left"
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


class Distribution:
    """The distribution's table with bars as long as the width allows (BAR_WIDTH at most)."""

    def __init__(self, histogram: HdrHistogram) -> None:
        self.histogram = histogram

    def __rich_console__(self, console: Any, options: Any) -> Any:
        narrow = options.max_width < 29  # then the cumulative share goes: the rest fits in 22 columns
        yield histogram_drawing(self.histogram, max(1, min(BAR_WIDTH, options.max_width - 28)), not narrow)


def histogram_drawing(histogram: HdrHistogram, bar_width: int = BAR_WIDTH,
                      cumulative_share: bool = True) -> RenderableType:
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
    for justify in ("right", "left", "right", "right")[:4 if cumulative_share else 3]:
        table.add_column(justify=justify, no_wrap=True, overflow="crop" if justify == "left" else "ellipsis")
    peak, cumulative = max(counts), 0
    for bound, count in zip(bounds, counts):
        cumulative += count
        bar = "█" * round(bar_width * count / peak) if count else ""
        unit, scale = pick_unit([bound])
        share = f"{100 * count / total:5.1f}%" if count * 1000 >= total or not count else " <0.1%"
        table.add_row(f"≤ {format_number(bound / scale)} {unit}", Text(bar, style="cyan"), share,
                      *([f"{100 * cumulative / total:5.1f}%"] if cumulative_share else []))
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
    rate = f" · {format_rate(result.rate)} ops/s offered ({result.arrival})" if result.rate else ""
    return (outside(result.strategy, "bold")
            .append_text(outside(f" · {result.threads} threads{processes}{pool}{rate} · "))
            .append(printable(outcome), style=OUTCOME_STYLE.get(outcome, "bold")))


def format_rate(rate: float) -> str:
    """5,000 or 20k: as a rate was most likely written."""
    if rate >= 10_000 and rate % 1000 == 0:
        return f"{rate / 1000:g}k"
    return f"{rate:,.0f}" if rate == int(rate) else f"{rate:,.1f}"


def rate_line(result: RunResult) -> Text | None:
    """The open model: target against achieved, late starts and the backlog left at the end."""
    block = result.rate_block()
    if block is None:
        return None
    short = block["achieved_ratio"] < SUSTAINED_SHARE
    ops = result.stats.ops()
    late = block["late_ops"]
    text = Text()
    text.append("rate ", style="dim").append(f"target {format_rate(result.rate)}/s", style="bold")
    text.append(" · achieved ", style="dim").append(f"{block['achieved_per_s']:,.0f}/s "
                                                     f"({100 * block['achieved_ratio']:.1f}%)",
                                                     style="bold yellow" if short else "bold")
    text.append(" · started ≥1 ms late ", style="dim").append(
        f"{late:,}" + (f" ({100 * late / ops:.1f}%)" if ops else ""), style="bold yellow" if late else "bold")
    lateness = block["lateness_us"]["p99"]
    if lateness is not None:
        text.append(" · lateness p99 ", style="dim").append(format_duration_us(lateness), style="bold")
    text.append(" · still due at the end ", style="dim").append(f"{block['due_at_end']:,}",
                                                                 style="bold yellow" if block["due_at_end"] else "bold")
    if short and result.outcome.outcome == "ok":
        text.append(f"\nthe threads could not keep up with {format_rate(result.rate)} ops/s: the latency above is that "
                    f"of an overloaded client (more --threads or --processes, or a lower --rate)", style="yellow")
    return text


def timeline(result: RunResult) -> RenderableType | None:
    """Throughput and p99 per interval, as two sparklines (intervals grouped when there are many)."""
    rows = result.stats.timeline.to_json(result.measured_s)
    if len(rows) < 2:
        return None
    group, marks = timeline_marks(rows)
    ops_per_s, p99s = per_second(marks, "ops"), worst_p99(marks)
    mark = group * result.stats.interval_s
    worst = ", p99 the worst interval's" if group > 1 else ""
    title = (f"over time ({format_seconds_short(mark)} per mark, "
             f"0–{format_seconds_short(len(rows) * result.stats.interval_s)}{worst})")
    table = sparkline_rows([
        ("ops/s", sparkline(ops_per_s), f"{format_number(min(ops_per_s))}–{format_number(max(ops_per_s))}"),
        ("p99", sparkline(p99s, log=True), p99_spread(p99s, "no successful op"))])
    return Group(Text(title, style="italic"), table)


SITE_WORDS = {"reserve": "in the pool's reserve()", "op": "in the op", "release": "giving the client back"}


def errors_table(result: RunResult) -> RenderableType | None:
    if not result.stats.errors and not result.stats.examples:
        return None
    lines = Text()
    for site, by_name in result.stats.errors_by_site().items():
        for name, count in by_name.items():
            lines.append(f"  {printable(name)} {SITE_WORDS[site]}: {count:,}\n", style="red")
    for example in result.stats.examples:
        lines.append(f"  {printable(example['kind'])} value for {printable(example['key'])}: "
                     f"got {printable(example['got'])}\n", style="yellow")
    return Group(Text("errors and anomalies", style="italic"), lines)


def run_report(result: RunResult, compact: bool = False) -> RenderableType:
    """Everything about one strategy run; `compact` (a sweep's many runs) leaves out the tables."""
    parts: list[RenderableType] = [run_header(result), counts_line(result)]
    rate = rate_line(result)
    if rate is not None:
        parts.append(rate)
    if result.explanation:
        parts.append(outside(result.explanation, "yellow", lines=True))
    errors = errors_table(result)
    if errors is not None:
        parts.append(errors)
    if result.stats.out_of_range:
        parts.append(Text(f"{result.stats.out_of_range:,} latencies were outside the histogram's range "
                          "(1 ns to 1 h) and are not in the table", style="yellow"))
    if result.stats.ops():
        if not compact:
            parts += [Fitted(latency_table(result), LATENCY_DROPPED), Distribution(result.stats.all_ops_histogram())]
        over_time = timeline(result)
        if over_time is not None:
            parts.append(over_time)
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
        table.add_column(name, justify="left" if name in ("strategy", "outcome") else "right",
                         no_wrap=name not in ("strategy", "outcome"))
    for result, summary in zip(ranked, summaries):
        cells = ["-" if summary[k] is None else format_number(summary[k] / units[k][1]) for k in ("p50", "p99")]
        relative = f"{finished[0].ops_per_s / result.ops_per_s:.2f}" if result in finished else "-"
        outcome = result.outcome.outcome
        table.add_row(outside(result.strategy), outside(outcome, OUTCOME_STYLE.get(outcome, "")),
                      f"{result.ops_per_s:,.0f}", relative, *cells, f"{result.error_count:,}",
                      f"{result.stats.wrong_values:,}")
    sentences = Text()
    for other in finished[1:]:
        sentences.append(f"{printable(finished[0].strategy)} ran {finished[0].ops_per_s / other.ops_per_s:.2f}× "
                         f"faster than {printable(other.strategy)}\n")
    for broken in (r for r in ranked if r.outcome.outcome != "ok"):
        sentences.append(f"{printable(broken.strategy)} {printable(broken.outcome.outcome)}: its figures cover only "
                         "what it did before that\n", style="yellow")
    legend = Text("relative: the fastest finished strategy's ops/s divided by each one's", style="dim")
    return Group(Fitted(table, COMPARISON_DROPPED), legend, sentences)


def paced_comparison(results: list[RunResult]) -> RenderableType:
    """Open-model runs side by side, lowest p99 from the intended start first: at one offered rate, latency is
    what tells strategies apart (each delivers the rate, or says it could not)."""
    def p99(result: RunResult) -> float:
        value = latency_summary_us(result.stats.all_ops_histogram())["p99"]
        return math.inf if value is None else value

    ranked = sorted(results, key=lambda r: (r.outcome.outcome != "ok", p99(r)))
    table = Table(title="comparison", title_justify="left", box=None, pad_edge=False)
    corrected = [latency_summary_us(r.stats.all_ops_histogram()) for r in ranked]
    uncorrected = [latency_summary_us(r.stats.all_ops_histogram(SENT)) for r in ranked]
    units = {"p50": pick_unit(s["p50"] for s in corrected), "p99": pick_unit(s["p99"] for s in corrected),
             "u": pick_unit(s["p99"] for s in uncorrected)}
    for name in ("strategy", "outcome", "offered/s", "achieved", f"p50 {units['p50'][0]}", f"p99 {units['p99'][0]}",
                 f"p99 uncorr. {units['u'][0]}", "late", "errors"):
        table.add_column(name, justify="left" if name in ("strategy", "outcome") else "right",
                         no_wrap=name not in ("strategy", "outcome"))
    for result, mine, sent in zip(ranked, corrected, uncorrected):
        block = result.rate_block() or {}
        outcome = result.outcome.outcome

        def cell(summary: dict[str, Any], key: str, unit: tuple[str, float]) -> str:
            return "-" if summary[key] is None else format_number(summary[key] / unit[1])

        table.add_row(outside(result.strategy), outside(outcome, OUTCOME_STYLE.get(outcome, "")),
                      format_rate(result.rate), f"{100 * block.get('achieved_ratio', 0):.1f}%",
                      cell(mine, "p50", units["p50"]), cell(mine, "p99", units["p99"]), cell(sent, "p99", units["u"]),
                      f"{block.get('late_ops', 0):,}", f"{result.error_count:,}")
    sentences = Text()
    finished = [r for r in ranked if r.outcome.outcome == "ok" and p99(r) < math.inf]
    for other in finished[1:]:
        if p99(finished[0]) > 0:
            sentences.append(f"at {format_rate(other.rate)} ops/s, {printable(other.strategy)}'s p99 was "
                             f"{p99(other) / p99(finished[0]):.2f}× {printable(finished[0].strategy)}'s\n")
    legend = Text("p99: from each op's intended start; uncorr.: from when it was sent; late: ops sent ≥1 ms after "
                  "they were due", style="dim")
    return Group(Fitted(table, COMPARISON_DROPPED), legend, sentences)


def sweep_view(session: Any) -> RenderableType:
    """Latency against offered load per strategy: p99 from the intended start at each rate, the knee, and the
    highest rate sustained within the budget."""
    budget = session.options.budget
    sweeps = sweep(session.results, budget)
    rates = sorted({point.rate for one in sweeps for point in one.points})
    unit = pick_unit(point.p99_us for one in sweeps for point in one.points)
    table = Table(title=f"latency against offered load: p99 in {unit[0]}", title_justify="left", box=None,
                  pad_edge=False)
    table.add_column("strategy")
    for rate in rates:
        table.add_column(f"{format_rate(rate)}/s", justify="right", no_wrap=True)
    table.add_column("sustained", justify="right", no_wrap=True)
    sentences = Text()
    for one in sweeps:
        by_rate = {point.rate: point for point in one.points}
        cells: list[Any] = []
        for rate in rates:
            point = by_rate.get(rate)
            if point is None:
                cells.append("")
            else:
                shown = "-" if point.p99_us is None else format_number(point.p99_us / unit[1])
                cells.append(Text(shown, style="" if point.sustained else "bold red"))
        best = one.max_sustained
        table.add_row(outside(one.strategy), *cells, format_rate(best) + "/s" if best else "none")
        words = f"{printable(one.strategy)}: "
        words += (f"sustained up to {format_rate(best)} ops/s" if best else "sustained none of the rates")
        words += f" within {budget}" if budget else " (no --budget: delivered ≥98% of the rate, cleanly)"
        knee = one.knee
        if knee is not None and one.floor_us:
            after = "no successful op" if knee.p99_us is None else format_duration_us(knee.p99_us)
            words += (f"; p99 left its floor ({format_duration_us(one.floor_us)}) at {format_rate(knee.rate)} ops/s "
                      f"({after})")
        elif one.floor_us:
            words += f"; p99 stayed within 2× its floor ({format_duration_us(one.floor_us)})"
        sentences.append(words + "\n")
    legend = Text("p99 from each op's intended start; red: not sustained (under 98% of the rate delivered, an "
                  "unclean run, or over the budget)", style="dim")
    return Group(Fitted(table, ()), legend, sentences)


def workload_words(options: Any) -> str:
    """The key space, key distribution and op mix, as the report's header says them."""
    keys = f"keys {options.keys:,}"
    if options.distribution == "zipf":
        keys += f" zipf s={options.zipf_s:g}"
    weights = dict(options.mix)
    if set(weights) <= {"get", "set"}:
        return f"{keys} · get:set {weights.get('get', 0)}:{weights.get('set', 0)}"
    return f"{keys} · mix {','.join(f'{op}={weight}' for op, weight in options.mix)}"


def render(session: Any, console: Any, saved: bool = False) -> None:
    """bench's report: the header line, each run, and the runs side by side."""
    servers = session.servers
    where = "embedded memcached" if servers.embedded else "memcached"
    options = session.options
    console.print(outside(f"mcpool bench · {where} {servers.version} at "
                          f"{', '.join(s.spec for s in servers.addresses)} · {options.duration_s:g} s measured after "
                          f"{options.warmup_s:g} s warm-up · {workload_words(options)}", "dim"))
    is_sweep = len(getattr(options, "rates", ())) > 1
    for result in session.results:
        console.print(run_report(result, compact=is_sweep))
    if is_sweep:
        console.print(sweep_view(session))
    elif len(session.results) > 1:
        paced = any(result.rate for result in session.results)
        console.print(paced_comparison(session.results) if paced else comparison(session.results))


# ---------------------------------------------------------------- saved documents side by side (mcpool compare)


@dataclass(frozen=True)
class BenchRow:
    label: str
    result: RunResult
    latency_us: dict[str, float | None]

    @property
    def name(self) -> str:
        return f"{self.label} {self.strategy}"

    @property
    def strategy(self) -> str:
        """The strategy, with its offered rate in the open model."""
        rate = f" @{format_rate(self.result.rate)}/s" if self.result.rate else ""
        return f"{self.result.strategy}{rate}"

    @property
    def finished(self) -> bool:
        return self.result.outcome.outcome == "ok" and self.result.ops_per_s > 0


def bench_rows(docs: list[Any]) -> list[BenchRow]:
    """One row per (document, strategy), grouped by strategy, documents in order."""
    rows = [BenchRow(doc.label, result, latency_summary_us(result.stats.all_ops_histogram()))
            for doc in docs for result in doc.content.results]
    return [row for group in grouped(rows, lambda row: row.strategy) for row in group]


def bench_baseline(row: BenchRow, rows: list[BenchRow], first_label: str) -> BenchRow:
    """The first document's run of the same strategy and rate, else of the same strategy, else its first run."""
    firsts = [r for r in rows if r.label == first_label]
    return next((r for r in firsts if r.strategy == row.strategy),
                next((r for r in firsts if r.result.strategy == row.result.strategy), rows[0]))


def compare(docs: list[Any]) -> RenderableType:
    """bench runs of several files side by side, with a relative column and what changed, hyperfine-style."""
    rows = bench_rows(docs)
    if not rows:
        return outside(f"bench: no runs in {', '.join(doc.label for doc in docs)}", "yellow")
    units = {key: pick_unit(row.latency_us[key] for row in rows) for key in ("p50", "p99", "p99_9")}
    show_outcome = any(row.result.outcome.outcome != "ok" for row in rows)
    table = Table(title=outside(f"bench: {' · '.join(doc.label for doc in docs)}"), title_justify="left", box=None,
                  pad_edge=False)
    label_width = max(len(doc.label) for doc in docs)
    headers = ["run", "strategy", *(["outcome"] if show_outcome else []), "ops/s", "speed",
               *(f"{key.replace('_', '.')} {units[key][0]}" for key in units), "errors"]
    for name in headers:
        table.add_column(name, justify="left" if name in ("run", "strategy", "outcome") else "right",
                         no_wrap=name not in ("run", "strategy", "outcome"),
                         min_width=label_width if name == "run" else None)
    for row in rows:
        base = bench_baseline(row, rows, docs[0].label)
        comparable = row.finished and base.finished and not (row.result.rate or base.result.rate)
        relative = f"{row.result.ops_per_s / base.result.ops_per_s:.2f}" if comparable else "-"
        outcome = row.result.outcome.outcome
        latency = ["-" if row.latency_us[k] is None else format_number(row.latency_us[k] / units[k][1]) for k in units]
        table.add_row(outside(row.label), outside(row.strategy),
                      *([outside(outcome, OUTCOME_STYLE.get(outcome, ""))] if show_outcome else []),
                      f"{row.result.ops_per_s:,.0f}", relative, *latency, f"{row.result.error_count:,}")
    legend = Text(f"speed: ops/s divided by those of {printable(docs[0].label)}'s run of the same strategy (or of the first "
                  "run); above 1 is faster (bench's own `relative` column is the other way round: how many times "
                  "slower than the fastest); none for runs at an offered --rate, whose ops/s is what was asked",
                  style="dim")
    return Group(Fitted(table, COMPARE_DROPPED), legend, *bench_changes(rows, docs[0].label), *option_notes(docs),
                 Text(""))


def bench_changes(rows: list[BenchRow], first_label: str) -> list[Text]:
    """`b.json fifo ran 1.31× faster than a.json fifo; p99 …`, and which runs did not finish."""
    lines = []
    for row in rows:
        base = bench_baseline(row, rows, first_label)
        if not row.finished:
            lines.append(Text(f"{printable(row.name)} {printable(row.result.outcome.outcome)}: its figures cover only "
                              "what it did before that", style="yellow"))
        elif row is not base and base.finished:
            lines.append(outside(speed_sentence(row, base)))
    return lines


def speed_sentence(row: BenchRow, base: BenchRow) -> str:
    """How a run compares with its baseline: speed, then p99 and errors. Runs at an offered rate (the open model)
    ran as fast as they were asked to: only their latency and errors are compared."""
    if row.result.rate or base.result.rate:
        sentence = f"{row.name} against {base.name}"
    else:
        ratio = row.result.ops_per_s / base.result.ops_per_s
        words = ("as fast as" if f"{ratio:.2f}" == "1.00" else f"{ratio:.2f}× faster than" if ratio > 1
                 else f"{1 / ratio:.2f}× slower than")
        sentence = f"{row.name} ran {words} {base.name}"
    before, after = base.latency_us["p99"], row.latency_us["p99"]
    if before and after is not None:
        sentence += (f"; p99 {format_duration_us(before)} → {format_duration_us(after)} "
                     f"({100 * (after - before) / before:+.1f}%)")
    if row.result.error_count != base.result.error_count:
        sentence += f"; errors {base.result.error_count:,} → {row.result.error_count:,}"
    return sentence
