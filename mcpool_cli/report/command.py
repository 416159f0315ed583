"""`mcpool report` and `mcpool compare`: saved JSON results rendered again, or side by side."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import click

from mcpool_cli.environment import Environment
from mcpool_cli.errors import ExitCode

FILES_HELP = ("JSON written with --json by bench, check-races, check-leaks, check-stale (schemas mcpool.result/1, "
              "mcpool.check/1) or by run (mcpool.run/1).")


def print_file(saved: Any, console: Any) -> None:
    """Each document as its command printed it, with the thresholds judged on it; for a run document, its
    closing lines too."""
    from mcpool_cli.report.saved import guarded, source_line
    from mcpool_cli.report.thresholds import render
    from mcpool_cli.units import outside

    for index, doc in enumerate(saved.documents):
        if saved.scenario is not None:
            command = saved.phases[index][0] if index < len(saved.phases) else doc.kind.command
            console.print(outside(f"▶ {saved.scenario} · mcpool {command}", "bold cyan"))
        console.print(source_line(doc))
        guarded(lambda: doc.kind.module("render").render(doc.content, console, saved=True), saved.path,
                doc.data["schema"])  # a mistyped value
        if doc.thresholds:
            console.print(render(list(doc.thresholds)))
    if saved.scenario is not None:
        print_run_end(saved, console)


@contextlib.contextmanager
def buffered(console: Any) -> Iterator[None]:
    """Render into a buffer and write it at the end: a damaged file stops the command before any output."""
    with console.capture() as captured:
        yield
    console.file.write(captured.get())


def print_run_end(saved: Any, console: Any) -> None:
    """What `mcpool run` closes with: each phase passed or failed, and every threshold with its phase."""
    from mcpool_cli.report.run_end import run_end

    for line in run_end(str(saved.scenario), list(saved.phases), list(saved.thresholds)):
        console.print(line)


HTML_HELP = "Also write the files' self-contained HTML report with charts to FILE (opens offline)."


def write_page(env: Environment, html_path: str | None, build: Any) -> int:
    """Write the page `build()` makes to --html FILE; exit 2 (told on stderr) when it cannot be written."""
    from mcpool_cli.commandkit import tell_write_failures, write_output

    if not html_path:
        return ExitCode.OK
    failure = write_output(html_path, build().encode(), "--html", "the HTML report", env)
    return tell_write_failures(env, [failure] if failure else [], ExitCode.OK)


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE.json...", help=FILES_HELP)
@click.option("--html", "html_path", metavar="FILE", help=HTML_HELP)
@click.pass_context
def report(ctx: click.Context, files: tuple[str, ...], html_path: str | None) -> None:
    """Render saved results again, as the command that wrote them printed them.

    Every file is read and checked before anything is printed. Thresholds judged when the file was written
    (--threshold, or a scenario's) are listed as the command listed them (✓ held, ✗ not). Exit 0 (rendering
    is not judging), 2 when a file is missing, is not JSON, or holds another schema or version.

    \b
    Examples:
      mcpool report result.json
      mcpool report before.json after.json
      mcpool report mcpool-results.json      # written by mcpool run ci-smoke --json mcpool-results.json
      mcpool report result.json --html result.html
    """
    from rich.console import Console

    from mcpool_cli.commandkit import check_targets
    from mcpool_cli.report.html import document_page
    from mcpool_cli.report.saved import load_file

    env: Environment = ctx.obj
    check_targets(None, None, html_path)
    loaded = [load_file(path) for path in files]
    console = Console(file=env.stdout)
    with buffered(console):
        for saved in loaded:
            print_file(saved, console)
    ctx.exit(write_page(env, html_path, lambda: document_page(loaded, "mcpool report " + " ".join(files))))


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE.json...", help=FILES_HELP)
@click.option("--html", "html_path", metavar="FILE",
              help="Also write the comparison as a self-contained HTML report, every file's runs in each chart.")
@click.pass_context
def compare(ctx: click.Context, files: tuple[str, ...], html_path: str | None) -> None:
    """Compare saved results side by side and say what changed.

    bench: one row per file and strategy with ops/s, p50, p99, p99.9 and errors, a relative column against
    the first file's run of the same strategy, and sentences such as "b.json fifo ran 1.31× faster than
    a.json fifo; p99 …". Checks: each file's verdict and key figures per strategy, and how they changed
    (races: anomalies; leaks: leaked and opened connections; stale: recovery, outage, false misses).
    Files must hold results of one kind; documents of `mcpool run` are compared kind by kind.
    Exit 0, or 2 when a file is missing, is not JSON, holds another schema, or the kinds differ.

    \b
    Examples:
      mcpool compare before.json after.json
      mcpool compare stale-defaults.json stale-retry1.json
      mcpool compare before.json after.json --html change.html
    """
    from rich.console import Console

    from mcpool_cli.commandkit import check_targets
    from mcpool_cli.report.compare import common_kinds, comparison, short_labels
    from mcpool_cli.report.html import comparison_page
    from mcpool_cli.report.saved import guarded, load_file

    env: Environment = ctx.obj
    check_targets(None, None, html_path)
    loaded = [load_file(path, label) for path, label in zip(files, short_labels(files))]
    kinds = common_kinds(loaded)
    console = Console(file=env.stdout)
    with buffered(console):
        for kind in kinds:
            docs = [doc for saved in loaded for doc in saved.documents if doc.kind == kind]
            guarded(lambda: console.print(comparison(kind, docs)), ", ".join(files), docs[0].data["schema"])
    by_kind = [(kind, [doc for saved in loaded for doc in saved.documents if doc.kind == kind]) for kind in kinds]
    ctx.exit(write_page(env, html_path, lambda: comparison_page(by_kind, "mcpool compare " + " ".join(files))))
