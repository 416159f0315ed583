"""`mcpool run` and `mcpool scenarios`: workloads kept in a file, run as the commands they name."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import click

from mcpool_cli.commandkit import check_json_target, write_atomically, write_json
from mcpool_cli.environment import Environment, servers_from_env
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.options import DURATION, SERVER, THRESHOLD


def phase_name(document: dict[str, Any]) -> str:
    from mcpool_cli.report.thresholds import document_kind

    kind = document_kind(document)
    return "bench" if kind == "bench" else f"check-{kind}"


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
                   "--warmup and check-stale's --before.")
@click.option("--server", "-s", "servers", type=SERVER, multiple=True,
              help="memcached HOST:PORT for every phase, instead of the file's servers; repeatable.")
@click.option("--threshold", "thresholds", type=THRESHOLD, multiple=True, metavar="EXPR",
              help="Another condition that must hold, added to each phase that measures its metric. Repeatable.")
@click.option("--json", "json_path", metavar="FILE",
              help="Write every phase's document as one JSON file (mcpool.run/1), - for stdout.")
@click.option("--junit", "junit_path", metavar="FILE",
              help="Write a JUnit XML report: a testcase per verdict and per threshold, for every phase.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output; print only the reports.")
@click.pass_context
def run(ctx: click.Context, spec: str, quick_s: float | None, servers: tuple[Any, ...],
        thresholds: tuple[Any, ...], json_path: str | None, junit_path: str | None, quiet: bool) -> None:
    """Run a scenario: a TOML file, or the name of a shipped one (see `mcpool scenarios`).

    Runs its phases (bench, check-races, check-leaks, check-stale) in turn with the file's options and
    thresholds, then prints every threshold ✓ or ✗. Exit 0 when every phase passed, 1 when a check found a
    problem or a threshold failed, 2 for a bad file (checked whole before any load), 130 on Ctrl-C.

    \b
    Examples:
      mcpool scenarios
      mcpool run web-cache --duration 2s
      mcpool run ci-smoke --junit mcpool-junit.xml --json mcpool-results.json
    """
    from rich.console import Console
    from rich.text import Text

    from mcpool_cli.report import junit
    from mcpool_cli.engine.runner import ignore_further_interrupts
    from mcpool_cli.report.saved import RUN_SCHEMA
    from mcpool_cli.scenarios.loader import load
    from mcpool_cli.report.thresholds import METRICS, render

    env: Environment = ctx.obj
    parent = ctx.parent
    assert parent is not None and isinstance(parent.command, click.Group)
    commands = parent.command.commands
    scenario = load(spec, commands, quick_s)
    sections = [phase.section for phase in scenario.phases]
    for threshold in thresholds:
        if not any(threshold.metric in METRICS[section] for section in sections):
            raise UsageProblem(f"threshold {threshold.text!r}: no phase of {scenario.name} ({', '.join(sections)}) "
                               f"measures {threshold.metric!r}")
    check_json_target(json_path)
    check_json_target(junit_path, "--junit")
    if junit_path == "-":
        raise UsageProblem("--junit needs a file name")
    if servers or scenario.servers or servers_from_env():
        for phase in scenario.phases:
            fault = dict(zip(phase.args, phase.args[1:])).get("--fault", "restart")  # check-stale's default
            if phase.section == "stale" and fault in ("restart", "idle"):
                raise UsageProblem(f"{scenario.path}: [stale] fault = \"{fault}\" needs the memcached mcpool starts "
                                   "itself; drop -s, the file's servers and MCPOOL_SERVERS, or use drop or freeze")
    # -s wins, then MCPOOL_SERVERS (read by each phase itself), then the file's servers
    chosen = servers or (() if servers_from_env() else scenario.servers)
    server_args = [part for s in chosen for part in ("-s", getattr(s, "spec", s))]
    extra = {phase: [t.text for t in thresholds if t.metric in METRICS[phase.section]] for phase in scenario.phases}
    argvs = {phase: [*phase.args, *server_args, *(part for t in dict.fromkeys((*phase.thresholds, *extra[phase]))
                                                  for part in ("--threshold", t))]
             for phase in scenario.phases}
    for phase in scenario.phases:  # every phase's own checks, before the first one loads anything
        try:
            commands[phase.command].main(args=[*argvs[phase], "--check-only"], prog_name=f"mcpool {phase.command}",
                                         standalone_mode=False, obj=env)
        except (UsageProblem, click.ClickException) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            raise UsageProblem(f"{scenario.path}: [{phase.section}] {message}") from exc
    to_stdout = json_path == "-"
    console = Console(file=env.stderr if to_stdout else env.stdout)
    phase_env = Environment(stdout=env.stderr, stderr=env.stderr) if to_stdout else env  # stdout is the JSON's
    documents: list[dict[str, Any]] = []
    codes: list[int] = []
    broken = ""
    with tempfile.TemporaryDirectory(prefix="mcpool-run-") as folder:
        for index, phase in enumerate(scenario.phases):
            output = os.path.join(folder, f"{index}.json")
            argv = [*argvs[phase], "--json", output, *(["--quiet"] if quiet else [])]
            console.print(Text(f"▶ {scenario.name} · mcpool {phase.command}", style="bold cyan"))
            try:
                code = commands[phase.command].main(args=argv, prog_name=f"mcpool {phase.command}",
                                                    standalone_mode=False, obj=phase_env)
            except (KeyboardInterrupt, click.Abort):  # between two runs of a phase, or while it reported
                code = ExitCode.INTERRUPTED
            except UsageProblem as exc:  # the environment changed under us: a server went away
                code, broken = ExitCode.USAGE, f"{scenario.path}: [{phase.section}] {exc}"
            codes.append(code or 0)
            if os.path.exists(output):
                with open(output) as handle:
                    documents.append(json.load(handle))
            if code in (ExitCode.INTERRUPTED, ExitCode.USAGE):
                break
    if ExitCode.INTERRUPTED in codes:
        ignore_further_interrupts()  # the files below are what the user keeps
    judged = [{**result, "phase": phase_name(document)} for document in documents
              for result in document.get("thresholds", [])]
    bundle = {"schema": RUN_SCHEMA, "scenario": scenario.name, "description": scenario.description,
              "file": scenario.path, "quick_s": quick_s,
              "phases": [{"command": p.command, "args": list(p.args), "exit_code": c}
                         for p, c in zip(scenario.phases, codes)],
              "interrupted": ExitCode.INTERRUPTED in codes, "documents": documents, "thresholds": judged}
    if json_path:
        write_json(json_path, bundle, env)
    if junit_path:
        write_atomically(junit_path, junit.render(documents, f"mcpool {scenario.name}"), "--junit",
                         "the JUnit report")
    if broken:
        raise UsageProblem(broken + " (the phases before it are in the reports)")
    final = (ExitCode.INTERRUPTED if ExitCode.INTERRUPTED in codes
             else ExitCode.PROBLEM if any(codes) else ExitCode.OK)
    console.print(Text(f"scenario {scenario.name}: " + ", ".join(
        f"{p.command} {'passed' if c == 0 else 'interrupted' if c == ExitCode.INTERRUPTED else 'FAILED'}"
        for p, c in zip(scenario.phases, codes)), style="bold green" if final == ExitCode.OK else "bold red"))
    if judged:
        if len(documents) > 1:  # a single phase has just printed its own
            console.print(render([{**r, "subject": f"{r['phase']} · {r['subject']}"} for r in judged]))
        held = sum(result["ok"] for result in judged)
        console.print(f"{held}/{len(judged)} thresholds held")
    ctx.exit(final)
