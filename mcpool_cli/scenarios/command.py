"""`mcpool run` and `mcpool scenarios`: workloads kept in a file, run phase by phase in this process.

Every phase is validated (by its kind's own `validate`) before any load; then each runs as its command would,
its document kept in memory, and all of them are written as one mcpool.run/1 document.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import click

from mcpool_cli.commandkit import (Outputs, check_targets, judged_document, report, run_session, tell_write_failures,
                                   to_stdout, write_html, write_json, write_output)
from mcpool_cli.engine.server import parse_server
from mcpool_cli.environment import Environment, servers_from_env
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.kinds import RUN_SCHEMA, Kind
from mcpool_cli.options import DURATION, SERVER, THRESHOLD


@click.command("scenarios")
@click.pass_context
def scenarios(ctx: click.Context) -> None:
    """List the scenarios that come with mcpool, each with what it models.

    \b
    Examples:
      mcpool scenarios
      mcpool run web-cache --duration 2s
    """
    from rich.console import Console
    from rich.table import Table

    from mcpool_cli.scenarios.loader import shipped, shipped_folder

    env: Environment = ctx.obj
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, description in shipped():
        table.add_row(name, description)
    console = Console(file=env.stdout)
    console.print(table)
    console.print(f"files in {shipped_folder()}; run one with: mcpool run NAME [--duration 2s]", style="dim")


@click.command("run")
@click.argument("spec", metavar="FILE|NAME")
@click.option("--duration", "quick_s", type=DURATION, default=None,
              help="Shorten every phase for a quick run: caps bench's and check-races' --duration, bench's "
                   "--warmup, check-stale's --before and check-failover's --before and --outage.")
@click.option("--server", "-s", "servers", type=SERVER, multiple=True,
              help="memcached HOST:PORT for every phase, instead of the file's servers; repeatable.")
@click.option("--threshold", "thresholds", type=THRESHOLD, multiple=True, metavar="EXPR",
              help="Another condition that must hold, added to each phase that measures its metric. Repeatable.")
@click.option("--json", "json_path", metavar="FILE",
              help="Write every phase's document as one JSON file (mcpool.run/1), - for stdout.")
@click.option("--junit", "junit_path", metavar="FILE",
              help="Write a JUnit XML report: a testcase per verdict and per threshold, for every phase.")
@click.option("--html", "html_path", metavar="FILE",
              help="Write one self-contained HTML report with every phase's charts to FILE (opens offline).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; print only the reports.")
@click.pass_context
def run(ctx: click.Context, spec: str, quick_s: float | None, servers: tuple[Any, ...],
        thresholds: tuple[Any, ...], json_path: str | None, junit_path: str | None, html_path: str | None,
        quiet: bool) -> None:
    """Run a scenario: a TOML file, or the name of a shipped one (see `mcpool scenarios`).

    Runs its phases (bench, check-races, check-leaks, check-stale, check-failover) in turn with the file's options and
    thresholds, then prints every threshold ✓ or ✗. Exit 0 when every phase passed, 1 when a check found a
    problem or a threshold failed, 2 for a bad file (checked whole before any load), 130 on Ctrl-C.

    \b
    Examples:
      mcpool scenarios
      mcpool run web-cache --duration 2s
      mcpool run ci-smoke --junit mcpool-junit.xml --json mcpool-results.json --html mcpool-report.html
      mcpool run restart-under-load --html restart.html
    """
    from mcpool_cli.engine import interrupts
    from mcpool_cli.scenarios.loader import load

    interrupts.begin()
    env: Environment = ctx.obj
    parent = ctx.parent
    assert parent is not None and isinstance(parent.command, click.Group)
    scenario = load(spec, parent.command.commands, quick_s)
    check_thresholds(scenario, thresholds)
    check_targets(json_path, junit_path, html_path)
    files = Files(json_path, junit_path, html_path)
    planned = plan_phases(scenario, servers, thresholds, quiet)
    console, phase_env = consoles(env, to_stdout(json_path))
    documents, codes, broken = run_phases(scenario, planned, phase_env, console)
    failures = write_bundle(scenario, quick_s, documents, codes, files, env)
    if broken:
        tell_write_failures(env, failures, ExitCode.USAGE)
        raise UsageProblem(broken + " (the phases before it are in the reports)")
    code = print_end(scenario, documents, codes, console)
    if interrupts.received() and ExitCode.INTERRUPTED not in codes:  # Ctrl-C while the end was printed
        codes.append(ExitCode.INTERRUPTED)
        files_only = dataclasses.replace(files, json_path=None if json_path == "-" else json_path)
        failures += write_bundle(scenario, quick_s, documents, codes, files_only, env)
    ctx.exit(tell_write_failures(env, failures, ExitCode.INTERRUPTED if interrupts.received() else code))


@dataclass(frozen=True)
class PlannedPhase:
    """A phase checked whole: its kind, validated options, servers and outputs."""

    kind: Kind
    section: str
    options: Any
    servers: tuple[Any, ...]
    outputs: Outputs


def check_thresholds(scenario: Any, thresholds: tuple[Any, ...]) -> None:
    """Every --threshold must name a metric of some phase."""
    sections = [phase.kind for phase in scenario.phases]
    for threshold in thresholds:
        if not any(threshold.metric in kind.metrics for kind in sections):
            raise UsageProblem(f"threshold {threshold.text!r}: no phase of {scenario.name} "
                               f"({', '.join(k.name for k in sections)}) measures {threshold.metric!r}")


def plan_phases(scenario: Any, servers: tuple[Any, ...], thresholds: tuple[Any, ...],
                quiet: bool) -> list[PlannedPhase]:
    """Every phase validated by its own kind before any load; -s wins, then MCPOOL_SERVERS, then the file's."""
    chosen = servers or servers_from_env() or file_servers(scenario)
    return [plan_phase(scenario, phase, chosen, thresholds, quiet) for phase in scenario.phases]


def file_servers(scenario: Any) -> tuple[Any, ...]:
    try:
        return tuple(parse_server(spec) for spec in scenario.servers)
    except UsageProblem as exc:
        raise UsageProblem(f"{scenario.path}: servers: {exc}") from exc


def plan_phase(scenario: Any, phase: Any, servers: tuple[Any, ...], thresholds: tuple[Any, ...],
               quiet: bool) -> PlannedPhase:
    from mcpool_cli.commandkit import split_params

    kind = phase.kind
    params = dict(phase.params)
    extra = [t for t in thresholds if t.metric in kind.metrics]
    params["thresholds"] = tuple({t.text: t for t in (*params.get("thresholds", ()), *extra)}.values())
    _, outputs, own = split_params(params)
    try:
        options = kind.module("command").validate(own, servers)
        Outputs(thresholds=outputs.thresholds).check(kind)
    except UsageProblem as exc:
        raise UsageProblem(f"{scenario.path}: [{phase.section}] {exc}") from exc
    return PlannedPhase(kind, phase.section, options, servers, Outputs(quiet=quiet, thresholds=outputs.thresholds))


def consoles(env: Environment, json_to_stdout: bool) -> tuple[Any, Environment]:
    """The console the reports go to, and the environment of the phases: stdout is the JSON's with `--json -`."""
    from rich.console import Console

    if json_to_stdout:
        return Console(file=env.stderr), Environment(stdout=env.stderr, stderr=env.stderr)
    return Console(file=env.stdout), env


def run_phases(scenario: Any, planned: list[PlannedPhase], env: Environment,
               console: Any) -> tuple[list[dict[str, Any]], list[int], str]:
    """Each phase in turn until one is interrupted or its environment fails; documents, exit codes, and why it
    broke off ("" when it did not)."""
    from rich.text import Text

    from mcpool_cli.engine import interrupts
    from mcpool_cli.engine.runner import ignore_further_interrupts

    documents: list[dict[str, Any]] = []
    codes: list[int] = []
    try:
        for phase in planned:
            if interrupts.received():  # Ctrl-C before it, or while the phase before it reported
                codes.append(ExitCode.INTERRUPTED)
                break
            console.print(Text(f"▶ {scenario.name} · mcpool {phase.kind.command}", style="bold cyan"))
            document, code, broken = run_phase(phase, env, console)
            codes.append(code)
            if document is not None:
                documents.append(document)
            if broken:
                return documents, codes, f"{scenario.path}: [{phase.section}] {broken}"
            if code == ExitCode.INTERRUPTED:
                break
    except KeyboardInterrupt:  # between two phases: the next one counts as interrupted
        codes.append(ExitCode.INTERRUPTED)
    if interrupts.received() and ExitCode.INTERRUPTED not in codes:  # after the last phase had finished
        codes.append(ExitCode.INTERRUPTED)
    if ExitCode.INTERRUPTED in codes:
        ignore_further_interrupts()  # the files written next are what the user keeps
    return documents, codes, ""


def run_phase(phase: PlannedPhase, env: Environment, console: Any) -> tuple[dict[str, Any] | None, int, str]:
    """(its document, its exit code, why the environment failed it or "") for one phase, run in this process."""
    from mcpool_cli.commandkit import start_session

    session, document = None, None
    try:
        with contextlib.ExitStack() as stack:
            session = start_session(phase.kind, phase.options, phase.servers, stack.enter_context)
            document, _, _ = run_session(session, env, phase.outputs)  # a phase writes no files
            return document, report(phase.kind, session, document, console), ""
    except (KeyboardInterrupt, click.Abort):  # between two runs of a phase, or while it reported
        code, broken = ExitCode.INTERRUPTED, ""
    except UsageProblem as exc:  # the environment changed under us: a server went away
        code, broken = ExitCode.USAGE, str(exc)
    if document is None and session is not None:  # it broke off inside the run: what it measured so far
        document = judged_document(session, phase.outputs)
    return document, code, broken


@dataclass(frozen=True)
class Files:
    """Where the run's own reports go."""

    json_path: str | None
    junit_path: str | None
    html_path: str | None


def write_bundle(scenario: Any, quick_s: float | None, documents: list[dict[str, Any]], codes: list[int],
                 files: Files, env: Environment) -> list[str]:
    """The run's one JSON document, its JUnit report and its HTML page, when asked for; a line for each that
    could not be written."""
    from mcpool_cli.report import junit

    bundle = {"schema": RUN_SCHEMA, "scenario": scenario.name, "description": scenario.description,
              "file": scenario.path, "quick_s": quick_s,
              "phases": [{"command": p.command, "args": list(p.args), "exit_code": c}
                         for p, c in zip(scenario.phases, codes)],
              "interrupted": ExitCode.INTERRUPTED in codes, "documents": documents,
              "thresholds": judged_thresholds(documents)}
    failures = [write_json(files.json_path, bundle, env) if files.json_path else "",
                write_output(files.junit_path, junit.render(documents, f"mcpool {scenario.name}"), "--junit",
                             "the JUnit report", env) if files.junit_path else "",
                write_html(files.html_path, bundle, env) if files.html_path else ""]
    return [line for line in failures if line]


def judged_thresholds(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every threshold judged in the phases, each with its phase's command."""
    from mcpool_cli.kinds import of_document

    return [{**result, "phase": kind.command} for document in documents
            if (kind := of_document(document)) is not None for result in document.get("thresholds", [])]


def print_end(scenario: Any, documents: list[dict[str, Any]], codes: list[int], console: Any) -> ExitCode:
    """Each phase passed or failed, every threshold with its phase; the run's exit code."""
    from mcpool_cli.report.run_end import run_end

    phases = [(phase.command, code) for phase, code in zip(scenario.phases, codes)]
    for line in run_end(scenario.name, phases, judged_thresholds(documents), table=len(documents) > 1):
        console.print(line)
    if ExitCode.INTERRUPTED in codes:
        return ExitCode.INTERRUPTED
    return ExitCode.PROBLEM if any(codes) else ExitCode.OK
