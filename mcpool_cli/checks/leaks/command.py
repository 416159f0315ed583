"""`mcpool check-leaks`: do threads that come and go leave connections behind?"""

from __future__ import annotations

import secrets
from typing import Any

import click

from mcpool_cli.commandkit import STRATEGY_HELP, check_outputs, connect, run_session, shared_options
from mcpool_cli.environment import Environment
from mcpool_cli.errors import ExitCode

VERDICT_STYLE = {"clean": "bold green", "churn": "bold yellow", "leak": "bold red"}


def render_check(check: Any, embedded: bool) -> Any:
    from rich.console import Group
    from rich.text import Text

    head = (Text(check.strategy, style="bold")
            .append(f" · relinquish {'on' if check.relinquish else 'off'} · ")
            .append(check.verdict.upper(), style=VERDICT_STYLE.get(check.verdict, "bold red")))
    parts = [head]
    figures = check.figures
    if figures is not None:
        verdict, leaked = check.verdict_and_leaked
        parts.append(Text(
            f"{figures.threads_started:,} threads (at most {figures.concurrency} alive) · server connections: "
            f"{figures.baseline_connections} before, {figures.peak_connections} at peak, "
            f"{figures.after_connections} after · {figures.connections_opened:,} opened · "
            f"{leaked} leaked"))
        parts.append(Text(
            f"in the worker after the churn: {figures.held_by_pool} clients held by the strategy, "
            f"{figures.dead_thread_clients} of them taken by threads that are gone; "
            f"{figures.open_sockets_after} sockets open", style="dim"))
        if not embedded:
            parts.append(Text(f"other traffic: curr_connections moved by {figures.baseline_drift:+d} in a quiet "
                              "half second before the churn; counts may be off by about that much", style="yellow"))
    parts += [Text(check.advice(), style="italic"), Text("")]
    return Group(*parts)


def exit_code(session: Any) -> ExitCode:
    if session.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if all(check.verdict in ("clean", "churn") for check in session.checks) else ExitCode.PROBLEM


@click.command("check-leaks")
@shared_options("mcpool.check/1")
@click.option("--strategy", "strategies", multiple=True, metavar="NAME",
              help=STRATEGY_HELP.replace("Default: fifo, thread-mapped and per-thread.",
                                         "Default: fifo, thread-mapped and per-thread (shared crashes)."))
@click.option("--churn", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Short-lived threads to start, each doing a few ops through the strategy.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=20, show_default=True,
              help="Threads alive at once (also the FIFO pool's size).")
@click.option("--relinquish/--no-relinquish", default=True, show_default=True,
              help="Call the pool's relinquish() as each thread ends (thread-mapped and custom pools).")
@click.pass_context
def check_leaks(ctx: click.Context, servers: tuple[Any, ...], strategies: tuple[str, ...], json_path: str | None,
                quiet: bool, thresholds: tuple[Any, ...], junit_path: str | None, check_only: bool,
                **settings: Any) -> None:
    """Find connections that outlive their threads, counted on the server.

    Starts --churn short-lived threads, at most --concurrency alive, through each strategy, and reads the
    server's curr_connections and total_connections before, at peak and after. Verdict per strategy: leak
    (connections held for threads that are gone), churn (threads open connections of their own), clean.
    Exit 0 when nothing leaks, 1 otherwise, 2 for bad input.

    \b
    Examples:
      mcpool check-leaks
      mcpool check-leaks --strategy thread-mapped --no-relinquish --churn 500 --concurrency 20
    """
    import os

    from mcpool_cli.bench.session import check_client, expand_strategies, validate_custom
    from mcpool_cli.checks.leaks.session import LEAK_DEFAULT, LeakOptions, LeakSession

    env: Environment = ctx.obj
    options = LeakOptions(strategies=expand_strategies(strategies or LEAK_DEFAULT), import_path=(os.getcwd(),),
                          **settings)
    validate_custom(options.strategies, options.import_path, options.hang_timeout_s)
    check_outputs(ctx, "leaks", json_path, thresholds, junit_path, check_only)
    session = LeakSession(options, *connect(ctx, servers, 64), run_id=secrets.token_hex(4))
    check_client(session.servers)
    reported = run_session(session, env, quiet, json_path, thresholds, junit_path)
    console = reported.console
    for check in session.checks:
        console.print(render_check(check, session.embedded))
    reported.finish(ctx, exit_code(session))
