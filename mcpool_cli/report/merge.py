"""`mcpool merge`: the bench results of one run on several machines, as one document.

Every file is read and checked as `mcpool report` reads it, then the files must be one run: bench results of
the same schema, options, run id and list of runs. The merge itself is `bench.merging`'s.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Sequence

import click

from mcpool_cli.environment import Environment
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.options import THRESHOLD
from mcpool_cli.units import printable

NOT_COMPARED = ("start_at_unix",)  # options that may differ between the machines of one run


def read_bench(path: str) -> Any:
    """One file's bench session; a UsageProblem naming the file when it is damaged or holds anything else."""
    from mcpool_cli.bench.kind import KIND, RESULT_SCHEMA
    from mcpool_cli.kinds import RUN_SCHEMA
    from mcpool_cli.report.saved import from_data, kind_of, read_json

    try:
        data = read_json(path)
        kind = kind_of(data, path)
    except UsageProblem as exc:  # saved.py lists every schema mcpool writes; merge takes one of them
        raise UsageProblem(re.sub(r"\(schema [^)]*\)", f"(schema {RESULT_SCHEMA})", str(exc))) from exc
    if kind is not KIND:
        what = f"a document of mcpool run ({RUN_SCHEMA})" if kind is None else f"{kind.command} results"
        raise UsageProblem(f"merge takes bench results ({RESULT_SCHEMA}); {printable(path)} is {what}")
    return from_data(data, path).documents[0]


def check_one_run(paths: Sequence[str], docs: Sequence[Any]) -> None:
    """The files are the same run on several machines: same options, run id and runs; each given once."""
    if len(paths) < 2:
        raise UsageProblem(f"merge takes 2 or more bench results of one run; got {len(paths)}")
    first, name = docs[0], printable(paths[0])
    for path, doc in zip(paths[1:], docs[1:]):
        other = printable(path)
        if os.path.realpath(path) == os.path.realpath(paths[0]) or doc.data == first.data:
            raise UsageProblem(f"{other} is {name} again; give each machine's result once")
        differing = option_difference(first.data["options"], doc.data["options"])
        if differing:
            option, mine, theirs = differing
            raise UsageProblem(f"options differ: {option} is {mine} in {name}, {theirs} in {other}; "
                               f"merge takes the results of one run")
        if doc.content.run_id != first.content.run_id:
            raise UsageProblem(f"run ids differ: {first.content.run_id} in {name}, {doc.content.run_id} in {other}; "
                               f"give every machine's bench the same --run-id (or MCPOOL_RUN_ID)")
        if run_list(doc.content) != run_list(first.content):
            raise UsageProblem(f"runs differ: {describe(run_list(first.content))} in {name}, "
                               f"{describe(run_list(doc.content))} in {other}; merge takes the results of one run")
    check_windows(paths, docs)


def check_windows(paths: Sequence[str], docs: Sequence[Any]) -> None:
    """Each run's measured windows overlap on the wall clock: summed throughput means load at the same time."""
    for index, run in enumerate(docs[0].content.results):
        spans = [(doc.content.results[index].stats.started_unix, doc.content.results[index].measured_s, path)
                 for path, doc in zip(paths, docs)]
        if any(not start for start, _, _ in spans):
            continue  # a file from before measure_started_unix: nothing to check against
        latest = max(spans, key=lambda span: span[0])
        earliest_end = min(spans, key=lambda span: span[0] + span[1])
        if latest[0] >= earliest_end[0] + earliest_end[1]:
            raise UsageProblem(f"{run.strategy}: {printable(latest[2])} began measuring "
                               f"{latest[0] - earliest_end[0]:.1f} s after {printable(earliest_end[2])}, which "
                               f"measured {earliest_end[1]:g} s: the runs never loaded the server together; start "
                               f"them together with one --start-at")


def option_difference(mine: dict[str, Any], theirs: dict[str, Any]) -> tuple[str, str, str] | None:
    """The first option whose values differ (as JSON shows them), or None."""
    for key in list(dict.fromkeys([*mine, *theirs])):
        if key not in NOT_COMPARED and mine.get(key) != theirs.get(key):
            return key, shown(mine.get(key)), shown(theirs.get(key))
    return None


def shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return printable(text if len(text) <= 60 else text[:59] + "…")


def run_list(session: Any) -> list[tuple[str, float]]:
    return [(run.strategy, run.rate) for run in session.results]


def describe(runs: list[tuple[str, float]]) -> str:
    return ", ".join(f"{strategy}" + (f" @{rate:g}/s" if rate else "") for strategy, rate in runs) or "no run"


def merged_document(paths: Sequence[str], docs: Sequence[Any], thresholds: tuple[Any, ...]) -> tuple[Any, dict]:
    """The merged session and its document: a bench document with `merged_from` and judged thresholds."""
    from mcpool_cli.bench.merging import merge_sessions, source_entry
    from mcpool_cli.report.thresholds import evaluate

    session = merge_sessions([doc.content for doc in docs])
    document = session.to_json()
    document["merged_from"] = [source_entry(os.path.basename(path), doc.content) for path, doc in zip(paths, docs)]
    if thresholds:
        document["thresholds"] = evaluate(document, thresholds)
    return session, document


@click.command()
@click.argument("files", nargs=-1, metavar="FILE.json...")
@click.option("--output", "-o", "output", required=True, metavar="FILE",
              help="Write the merged result (mcpool.result/1) to FILE, - for stdout.")
@click.option("--html", "html_path", metavar="FILE", help="Also write the merged result's HTML report to FILE.")
@click.option("--junit", "junit_path", metavar="FILE", help="Also write a JUnit XML report of the merged result.")
@click.option("--threshold", "thresholds", type=THRESHOLD, multiple=True, metavar="EXPR",
              help="A condition the merged result must meet, as bench takes it (p99<2ms, ops_per_s>100000). "
                   "Repeatable; any that fails exits 1.")
@click.pass_context
def merge(ctx: click.Context, files: tuple[str, ...], output: str, html_path: str | None, junit_path: str | None,
          thresholds: tuple[Any, ...]) -> None:
    """Merge the bench results of one run on several machines into one result.

    Start the same bench on each machine with one --run-id and --start-at, so that they share the run id and
    measure the same wall-clock window; then merge their --json files. Histograms are added exactly (the
    merged percentiles are those of every machine's latencies together), counts and ops/s are summed, and
    the timelines are aligned on the wall clock. The merged file is read by report, compare, thresholds and
    --html like any bench result; `merged_from` keeps each machine's own figures.
    Exit 0; 1 when a merged run is not clean or a --threshold fails; 2 when a file is missing or damaged,
    is not a bench result, or the files are not one run (options, run id or runs differ).

    \b
    Examples:
      mcpool bench --strategy fifo --run-id nightly-42 --start-at 2026-11-29T21:40:00Z --json host1.json
      mcpool merge host1.json host2.json host3.json -o all.json
      mcpool merge host*.json -o all.json --threshold 'p99<2ms' --junit merged.xml --html all.html
    """
    from rich.console import Console

    from mcpool_cli.bench.kind import KIND
    from mcpool_cli.commandkit import (check_targets, report, tell_write_failures, to_stdout, write_html,
                                       write_json, write_output)
    from mcpool_cli.report import junit
    from mcpool_cli.report.thresholds import check_metrics

    env: Environment = ctx.obj
    check_targets(output, junit_path, html_path)
    check_metrics(thresholds, KIND)
    if len(files) < 2:
        check_one_run(files, [])
    docs = [read_bench(path) for path in files]
    check_one_run(files, docs)
    session, document = merged_document(files, docs, thresholds)
    failures = [write_json(output, document, env)]
    if junit_path:
        failures.append(write_output(junit_path, junit.render([document]), "--junit", "the JUnit report", env))
    if html_path:
        failures.append(write_html(html_path, document, env))
    console = Console(file=env.stderr if to_stdout(output) else env.stdout)
    console.print(f"merged {len(files)} results of run {session.run_id} into {output}", markup=False,
                  highlight=False)
    console.print(sources_table(document))
    code = report(KIND, session, document, console)
    code = ExitCode.PROBLEM if code == ExitCode.INTERRUPTED else code  # an interrupted source is told, not ours
    ctx.exit(tell_write_failures(env, [line for line in failures if line], code))


def sources_table(document: dict[str, Any]) -> Any:
    """Each merged file's own figures per run, and how far its measured window started from the earliest's."""
    from rich.table import Table

    from mcpool_cli.units import format_duration_us

    table = Table(title="each file, as measured alone", title_justify="left", box=None, pad_edge=False)
    for name, right in (("file", False), ("run", False), ("ops/s", True), ("p99", True), ("errors", True),
                        ("started", True)):
        table.add_column(name, justify="right" if right else "left", no_wrap=right)
    sources = document.get("merged_from") or []
    starts = [run["measure_started_unix"] for source in sources for run in source["runs"]
              if run.get("measure_started_unix")]
    earliest = min(starts) if starts else 0.0
    for source in sources:
        for run in source["runs"]:
            label = run["strategy"] + (f" @ {run['rate']:g}/s" if run.get("rate") else "")
            started = run.get("measure_started_unix") or 0.0
            table.add_row(printable(source["file"]), printable(label), f"{run['ops_per_s']:,.0f}",
                          format_duration_us(run["p99_us"]) if run.get("p99_us") is not None else "-",
                          f"{run['error_count']:,}", f"+{(started - earliest) * 1000:.1f} ms" if started else "-")
    return table
