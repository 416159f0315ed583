"""Saved results side by side, for `mcpool compare`: tables, relative speed, what changed and option differences.

Documents come from `saved.load_file`; every figure shown is the one saved, as in `mcpool report`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mcpool_cli.checks.races.session import CHECK_SCHEMA
from mcpool_cli.errors import UsageProblem
from mcpool_cli.bench.render import OUTCOME_STYLE, format_number, pick_unit
from mcpool_cli.engine.outcomes import RESULT_SCHEMA, RunResult, latency_summary_us
from mcpool_cli.report.saved import CHECK_KINDS, SavedDocument, SavedFile, styled_verdict
from mcpool_cli.units import format_duration_us, format_seconds

KIND_WORDS = {"bench": f"bench results ({RESULT_SCHEMA})",
              **{kind: f'check-{kind} results ({CHECK_SCHEMA} "{kind}")' for kind in CHECK_KINDS}}
T = TypeVar("T")


def short_labels(paths: Iterable[str]) -> list[str]:
    """File names without their folders when those alone tell the files apart; a file given twice is `(2)`."""
    paths = list(paths)
    names = [os.path.basename(p) or p for p in paths]
    labels = names if len(set(names)) == len(names) else paths
    return [label if labels[:i].count(label) == 0 else f"{label} ({labels[:i].count(label) + 1})"
            for i, label in enumerate(labels)]


def common_kinds(files: list[SavedFile]) -> list[str]:
    """The kinds of result every file holds; a UsageProblem when files hold different kinds."""
    first = list(dict.fromkeys(doc.kind for doc in files[0].documents))
    for other in files[1:]:
        theirs = list(dict.fromkeys(doc.kind for doc in other.documents))
        if set(theirs) != set(first):
            raise UsageProblem(f"{other.path} holds {describe(theirs)}, but {files[0].path} holds {describe(first)}: "
                               "compare files of one kind (bench with bench, check-stale with check-stale, …)")
    if not first:
        raise UsageProblem(f"{files[0].path}: holds no results to compare")
    return first


def describe(kinds: list[str]) -> str:
    return " and ".join(KIND_WORDS[kind] for kind in kinds) or "no results"


def grouped(items: list[T], key: Callable[[T], str]) -> list[list[T]]:
    """Items grouped by key, groups in first-seen order, items in their order."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def option_notes(docs: list[SavedDocument]) -> list[Text]:
    """What each document ran with that the first one did not (strategies aside)."""
    notes = []
    base = settings(docs[0])
    for doc in docs[1:]:
        other = settings(doc)
        changed = [f"{key} {show_option(base.get(key))} → {show_option(other.get(key))}"
                   for key in dict.fromkeys([*base, *other]) if base.get(key) != other.get(key)]
        if changed:
            notes.append(Text(f"{doc.label} ran with other options than {docs[0].label}: {', '.join(changed)}",
                              style="dim"))
    return notes


def settings(doc: SavedDocument) -> dict[str, Any]:
    """A document's options but its strategies, and the memcached version it ran against."""
    options, server = doc.data.get("options"), doc.data.get("server")
    found = {key: value for key, value in (options if isinstance(options, dict) else {}).items() if key != "strategies"}
    return {**found, "memcached": server.get("version") if isinstance(server, dict) else None}


def show_option(value: Any) -> str:
    """An option as the command line takes it: pairs (behaviors, a mix) as `k=v,k=v`, none as `none`."""
    if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return ",".join(f"{key}={item}" for key, item in value) or "none"
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class BenchRow:
    label: str
    result: RunResult
    latency_us: dict[str, float | None]

    @property
    def name(self) -> str:
        return f"{self.label} {self.result.strategy}"

    @property
    def finished(self) -> bool:
        return self.result.outcome.outcome == "ok" and self.result.ops_per_s > 0


def bench_rows(docs: list[SavedDocument]) -> list[BenchRow]:
    """One row per (document, strategy), grouped by strategy, documents in order."""
    rows = [BenchRow(doc.label, result, latency_summary_us(result.stats.all_ops_histogram()))
            for doc in docs for result in doc.content.results]
    return [row for group in grouped(rows, lambda row: row.result.strategy) for row in group]


def bench_baseline(row: BenchRow, rows: list[BenchRow], first_label: str) -> BenchRow:
    """The first document's run of the same strategy, or else the first run."""
    return next((r for r in rows if r.label == first_label and r.result.strategy == row.result.strategy), rows[0])


def bench_comparison(docs: list[SavedDocument]) -> RenderableType:
    """bench runs of several files side by side, with a relative column and what changed, hyperfine-style."""
    rows = bench_rows(docs)
    if not rows:
        return Text(f"bench: no runs in {', '.join(doc.label for doc in docs)}", style="yellow")
    units = {key: pick_unit(row.latency_us[key] for row in rows) for key in ("p50", "p99", "p99_9")}
    show_outcome = any(row.result.outcome.outcome != "ok" for row in rows)
    table = Table(title=f"bench: {' · '.join(doc.label for doc in docs)}", title_justify="left", box=None,
                  pad_edge=False)
    label_width = max(len(doc.label) for doc in docs)
    headers = ["run", "strategy", *(["outcome"] if show_outcome else []), "ops/s", "speed",
               *(f"{key.replace('_', '.')} {units[key][0]}" for key in units), "errors"]
    for name in headers:
        table.add_column(name, justify="left" if name in ("run", "strategy", "outcome") else "right",
                         no_wrap=name == "run", min_width=label_width if name == "run" else None)
    for row in rows:
        base = bench_baseline(row, rows, docs[0].label)
        relative = f"{row.result.ops_per_s / base.result.ops_per_s:.2f}" if row.finished and base.finished else "-"
        outcome = row.result.outcome.outcome
        latency = ["-" if row.latency_us[k] is None else format_number(row.latency_us[k] / units[k][1]) for k in units]
        table.add_row(row.label, row.result.strategy,
                      *([Text(outcome, style=OUTCOME_STYLE.get(outcome, ""))] if show_outcome else []),
                      f"{row.result.ops_per_s:,.0f}", relative, *latency, f"{row.result.error_count:,}")
    legend = Text(f"speed: ops/s divided by those of {docs[0].label}'s run of the same strategy (or of the first "
                  "run); above 1 is faster (bench's own `relative` column is the other way round: how many times "
                  "slower than the fastest)", style="dim")
    return Group(table, legend, *bench_changes(rows, docs[0].label), *option_notes(docs), Text(""))


def bench_changes(rows: list[BenchRow], first_label: str) -> list[Text]:
    """`b.json fifo ran 1.31× faster than a.json fifo; p99 …`, and which runs did not finish."""
    lines = []
    for row in rows:
        base = bench_baseline(row, rows, first_label)
        if not row.finished:
            lines.append(Text(f"{row.name} {row.result.outcome.outcome}: its figures cover only what it did "
                              "before that", style="yellow"))
        elif row is not base and base.finished:
            lines.append(Text(speed_sentence(row, base)))
    return lines


def speed_sentence(row: BenchRow, base: BenchRow) -> str:
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


@dataclass(frozen=True)
class CheckRow:
    """One check result in a comparison: what it is compared by, its verdict and its key figures shown."""

    label: str
    key: str
    verdict: str
    figures: dict[str, str]


def race_rows(doc: SavedDocument) -> list[CheckRow]:
    return [CheckRow(doc.label, check.strategy, check.verdict, {
        "trials affected": f"{check.affected}/{len(check.trials)}",
        "first anomaly": "-" if check.first_anomaly_s is None else f"{check.first_anomaly_s * 1000:,.1f} ms",
        "anomalies": f"{sum(check.anomalies.values()):,}", "errors": f"{sum(check.errors.values()):,}"})
        for check in doc.content.checks]


def leak_rows(doc: SavedDocument) -> list[CheckRow]:
    rows = []
    for check in doc.content.checks:
        figures = check.figures
        rows.append(CheckRow(doc.label, check.strategy, check.verdict, {
            "relinquish": "on" if check.relinquish else "off",
            "leaked": f"{check.verdict_and_leaked[1]:,}",
            "opened": "-" if figures is None else f"{figures.connections_opened:,}",
            "peak": "-" if figures is None else f"{figures.peak_connections:,}"}))
    return rows


def stale_rows(doc: SavedDocument) -> list[CheckRow]:
    rows = []
    for check in doc.content.checks:
        figures = check.figures
        key = f"{check.strategy} · {check.variant}" if doc.content.options.compare_behaviors else check.strategy
        rows.append(CheckRow(doc.label, key, check.verdict, {
            "false misses": "-" if figures is None else f"{figures.false_misses:,}",
            "errors": "-" if figures is None else f"{figures.error_count:,}",
            "outage": "-" if figures is None else format_seconds(figures.outage_s),
            "recovery": "-" if figures is None else format_seconds(figures.recovery_s)}))
    return rows


CHECK_ROWS: dict[str, tuple[Callable[[SavedDocument], list[CheckRow]], tuple[str, ...]]] = {
    # kind: (rows of a document, the figures whose change is told, in this order)
    "races": (race_rows, ("anomalies",)),
    "leaks": (leak_rows, ("leaked", "opened")),
    "stale": (stale_rows, ("recovery", "outage", "false misses")),
}


def check_comparison(kind: str, docs: list[SavedDocument]) -> RenderableType:
    """Check results of several files side by side: verdicts, key figures, and what changed."""
    make_rows, told = CHECK_ROWS[kind]
    rows = [row for group in grouped([r for doc in docs for r in make_rows(doc)], lambda r: r.key) for row in group]
    table = Table(title=f"check-{kind}: {' · '.join(doc.label for doc in docs)}", title_justify="left", box=None,
                  pad_edge=False)
    columns, label_width = list(rows[0].figures) if rows else [], max(len(doc.label) for doc in docs)
    for name in ("run", "strategy", "verdict", *columns):
        table.add_column(name.replace(" ", "\n") if len(name) > 8 else name,
                         justify="left" if name in ("run", "strategy", "verdict", "relinquish") else "right",
                         no_wrap=name == "run", min_width=label_width if name == "run" else None)
    for row in rows:
        table.add_row(row.label, row.key, styled_verdict(row.verdict), *(row.figures[name] for name in columns))
    parts: list[RenderableType] = [table]
    if len(docs) > 1:
        heading = f"from {docs[0].label} to {docs[1].label}" if len(docs) == 2 else f"against {docs[0].label}"
        parts += [Text(f"changes {heading}:", style="bold"), *check_changes(rows, told, len(docs) == 2)]
    return Group(*parts, *option_notes(docs), Text(""))


def check_changes(rows: list[CheckRow], told: tuple[str, ...], two: bool) -> list[Text]:
    """`fifo: recovery 2.41 s → 1.06 s, …` for each result against the first one of the same strategy."""
    lines = []
    for group in grouped(rows, lambda row: row.key):
        base = group[0]
        if len(group) == 1:
            lines.append(Text(f"  {base.key}: only in {base.label}", style="dim"))
        for row in group[1:]:
            changed = [f"{name} {base.figures[name]} → {row.figures[name]}" for name in told
                       if base.figures[name] != row.figures[name]]
            if row.verdict != base.verdict:
                changed.append(f"verdict {base.verdict} → {row.verdict}")
            who = row.key if two else f"{row.key} in {row.label}"
            lines.append(Text(f"  {who}: {', '.join(changed) or f'no change ({row.verdict})'}"))
    return lines


def comparison(kind: str, docs: list[SavedDocument]) -> RenderableType:
    return bench_comparison(docs) if kind == "bench" else check_comparison(kind, docs)
