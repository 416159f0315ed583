"""`mcpool check-stale`: what pooled clients do when the server restarts, drops or freezes connections."""

from __future__ import annotations

import math
import secrets
from typing import Any

import click

from mcpool_cli.commandkit import STRATEGY_HELP, check_outputs, connect, run_session, shared_options
from mcpool_cli.environment import Environment, servers_from_env
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.options import BEHAVIOR, DURATION, MIX
from mcpool_cli.units import format_seconds

VERDICT_STYLE = {"recovered": "bold green", "false-misses": "bold red", "not-recovered": "bold red",
                 "slow-recovery": "bold red"}


def render(session: Any) -> Any:
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    options = session.options
    compared = len(options.variants) > 1
    title = f"check-stale · fault {options.fault} · {options.threads} threads × {options.rate:g} ops/s"
    if not compared:
        title += f" · behaviors: {options.variants[0][0]}"
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("behaviors" if compared else "strategy", ratio=1)
    for name in ("verdict", "false\nmisses", "errors", "outage", "recovery", "longest\nop"):
        table.add_column(name, justify="left" if name == "verdict" else "right", no_wrap=True)
    notes: list[Any] = []
    for index, check in enumerate(session.checks):
        figures, verdict = check.figures, check.verdict
        if compared and (index == 0 or session.checks[index - 1].strategy != check.strategy):
            table.add_row(Text(check.strategy, style="bold"))
        cells = ["-"] * 5
        if figures is not None:
            cells = [f"{figures.false_misses:,}", f"{figures.error_count:,}", format_seconds(figures.outage_s),
                     format_seconds(figures.recovery_s), format_seconds(figures.longest_op_s)]
        table.add_row(f"  {check.variant}" if compared else check.strategy,
                      Text(verdict, style=VERDICT_STYLE.get(verdict, "bold red")), *cells)
        title = Text(f"{check.strategy} · {check.variant}: ", style="bold")
        notes.append(title.append(check.detail or "the fault was not injected", style="dim"))
        indent = len(notes)
        if figures is not None:
            notes.append(Text(f"ops: {figures.ops_scheduled + figures.ops_skipped:,} due, {figures.ops_ok:,} ok, "
                              f"{figures.ops_failed:,} failed, {figures.ops_skipped:,} never started (stuck)"
                              + ("" if figures.first_failure_s is None else
                                 f"; first failed or stalled op +{format_seconds(figures.first_failure_s)}")))
        if figures is not None and figures.errors:
            errors = sorted(figures.errors.items(), key=lambda item: -item[1])
            notes.append(Text("errors: " + ", ".join(f"{name} {count:,}" for name, count in errors), style="red"))
        if figures is not None and figures.unverified_misses:
            notes.append(Text(f"{figures.unverified_misses} misses while the keys were being written back to the "
                              "new server: real ones, not counted", style="yellow"))
        notes[indent:] = [Padding(note, (0, 0, 0, 2)) for note in notes[indent:]]
    advice = list(dict.fromkeys(check.advice() for check in session.checks))
    parts = [table, Text(""), *notes, *(Text(line, style="italic") for line in advice)]
    comparisons = session.comparisons()
    if comparisons:
        parts += [Text(""), Text("Behaviors compared:", style="bold"), *(Text("  " + line) for line in comparisons)]
    parts.append(Text("outage: first failed or stalled op to the first success after the last failure · recovery: "
                      "that success after the server was usable again", style="dim"))
    return Group(*parts)


def exit_code(session: Any) -> ExitCode:
    if session.interrupted:
        return ExitCode.INTERRUPTED
    if session.broken:
        return ExitCode.PROBLEM
    return ExitCode.OK if all(check.verdict == "recovered" for check in session.checks) else ExitCode.PROBLEM


@click.command("check-stale")
@shared_options("mcpool.check/1")
@click.option("--fault", type=click.Choice(["restart", "idle", "drop", "freeze"]), default="restart",
              show_default=True,
              help="restart: stop the embedded memcached and start it again; idle: the load pauses until "
                   "memcached (-o idle_timeout) closes idle connections; drop: mcpool's loopback proxy closes "
                   "every connection; freeze: the proxy forwards nothing for --outage. restart and idle need the "
                   "embedded server; drop and freeze work with any.")
@click.option("--strategy", "strategies", multiple=True, metavar="NAME", help=STRATEGY_HELP)
@click.option("--outage", "outage_s", type=DURATION, default="1s", show_default=True,
              help="restart: how long the server stays down; freeze: how long nothing is forwarded.")
@click.option("--idle-timeout", "idle_timeout_s", type=click.IntRange(1, 60), default=1, show_default=True,
              help="idle: memcached's idle_timeout in seconds.")
@click.option("--threads", "-t", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Load threads, each pacing its ops.")
@click.option("--rate", type=click.FloatRange(1, 100_000), default=200, show_default=True,
              help="Ops a second per thread, on keys written before the fault.")
@click.option("--mix", type=MIX, default="get=7,get_multi=2,set=1", show_default=True,
              help="Op weights: get, get_multi (4 keys; the one that answers {} silently) and set.")
@click.option("--keys", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="Keys written before the load.")
@click.option("--before", "before_s", type=DURATION, default="1s", show_default=True,
              help="Steady load before the fault.")
@click.option("--recover-within", "recover_within_s", type=DURATION, default="5s", show_default=True,
              help="Bound on recovery after the server is usable again; load runs this long after the fault.")
@click.option("--behavior", "behaviors", type=BEHAVIOR, multiple=True,
              help="A pylibmc behavior KEY=VALUE for every client, e.g. retry_timeout=1. Repeatable.")
@click.option("--compare-behaviors", is_flag=True,
              help="Run each strategy three times: libmemcached defaults, retry_timeout=1, and "
                   "remove_failed=1 with dead_timeout=1; say which shortened the outage.")
@click.pass_context
def check_stale(ctx: click.Context, servers: tuple[Any, ...], strategies: tuple[str, ...], json_path: str | None,
                quiet: bool, thresholds: tuple[Any, ...], junit_path: str | None, check_only: bool,
                **settings: Any) -> None:
    """What pooled clients do when the server goes away: false misses, errors, outage and recovery.

    Under steady load through each strategy, with keys written before the fault, counts false misses
    (a key that is there answered as missing, with no exception), errors by class, ops lost, the outage
    window and the time to recover once the server is usable again. Exit 0 when every strategy recovered
    within --recover-within without a false miss, 1 otherwise, 2 for bad input.

    \b
    Examples:
      mcpool check-stale --fault restart
      mcpool check-stale -s cache1:11211 --fault drop
      mcpool check-stale --fault idle --compare-behaviors
    """
    import os

    from mcpool_cli.bench.session import check_behaviors, check_client, expand_strategies, validate_custom
    from mcpool_cli.checks.stale.session import STALE_DEFAULT, StaleOptions, StaleSession
    from mcpool_cli.checks.stale.proxy import FaultProxy
    from mcpool_cli.engine.server import EmbeddedServer, check_reachable

    env: Environment = ctx.obj
    fault = settings["fault"]
    if fault in ("restart", "idle") and (servers or servers_from_env()):
        raise UsageProblem(f"--fault {fault} needs the memcached mcpool starts itself (it "
                           f"{'stops and starts' if fault == 'restart' else 'sets idle_timeout on'} it): drop "
                           "--server/MCPOOL_SERVERS, or use --fault drop or freeze, which work with any server")
    if not 0.05 <= settings["outage_s"] <= 60:
        raise UsageProblem("--outage must be between 50ms and 60s")
    if "delete" in dict(settings["mix"]):
        raise UsageProblem("--mix: check-stale takes get, get_multi and set (a delete would make real misses)")
    if not 0.5 <= settings["recover_within_s"] <= 600:
        raise UsageProblem("--recover-within must be between 500ms and 10m")
    if not math.isfinite(settings["rate"]):
        raise UsageProblem("--rate must be a number of ops a second")
    if not {"get", "get_multi"} & {op for op, weight in settings["mix"] if weight}:
        raise UsageProblem("--mix needs get or get_multi: only reads can show a false miss")
    options = StaleOptions(strategies=expand_strategies(strategies or STALE_DEFAULT), import_path=(os.getcwd(),),
                           **settings)
    validate_custom(options.strategies, options.import_path, options.hang_timeout_s)
    for _, behaviors in options.variants:
        check_behaviors(behaviors, binary=False)
    check_outputs(ctx, "stale", json_path, thresholds, junit_path, check_only)
    if fault in ("restart", "idle"):
        extra = ("-o", f"idle_timeout={options.idle_timeout_s}") if fault == "idle" else ()
        embedded = ctx.with_resource(EmbeddedServer(memory_mb=64, extra_args=extra))
        session = StaleSession(options, (embedded.address,), embedded, check_reachable(embedded.address),
                               run_id=secrets.token_hex(4))
    else:
        addresses, started_here, version = connect(ctx, servers, 64)
        session = StaleSession(options, addresses, None, version, started_here=started_here,
                               run_id=secrets.token_hex(4))
        session.proxies = [ctx.with_resource(FaultProxy(address)) for address in addresses]
    check_client(session.servers)
    reported = run_session(session, env, quiet, json_path, thresholds, junit_path)
    console = reported.console
    console.print(render(session))
    if session.broken:
        console.print(f"[bold red]stopped early:[/] {session.broken}")
    reported.finish(ctx, exit_code(session))
