"""`mcpool check-leaks`: do threads that come and go leave connections behind?"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from mcpool_cli.checks.leaks.kind import KIND
from mcpool_cli.commandkit import OPS_PER_REQUEST, STRATEGY_HELP, Enter, run_command, shared_options
from mcpool_cli.engine.server import ServerAddress
from mcpool_cli.kinds import CHECK_SCHEMA


if TYPE_CHECKING:  # the session and its checks load with the command's first call, not with `mcpool --help`
    from mcpool_cli.checks.leaks.session import LeakOptions, LeakSession


@click.command("check-leaks")
@shared_options(CHECK_SCHEMA)
@click.option("--strategy", "strategies", multiple=True, metavar="NAME",
              help=STRATEGY_HELP.replace("Default: fifo, thread-mapped and per-thread.",
                                         "Default: fifo, thread-mapped and per-thread (shared crashes)."))
@click.option("--churn", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Short-lived threads to start, each doing a few ops through the strategy.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=20, show_default=True,
              help="Threads alive at once (also the FIFO pool's size).")
@click.option("--relinquish/--no-relinquish", default=True, show_default=True,
              help="Call the pool's relinquish() as each thread ends (thread-mapped and custom pools).")
@OPS_PER_REQUEST
@click.pass_context
def check_leaks(ctx: click.Context, **params: Any) -> None:
    """Find connections that outlive their threads, counted on the server.

    Starts --churn short-lived threads, at most --concurrency alive, through each strategy, and reads the
    server's curr_connections and total_connections before, at peak and after; reports connections opened a
    second and a thread, and the client sockets left in TIME_WAIT (Linux). Verdict per strategy: leak
    (connections held for threads that are gone), inconclusive (calls raised in the churn threads), churn
    (threads open connections of their own), clean. Exit 0 for clean or churn, 1 otherwise, 2 for bad input.

    \b
    Examples:
      mcpool check-leaks
      mcpool check-leaks --strategy thread-mapped --no-relinquish --churn 500 --concurrency 20
    """
    run_command(ctx, KIND, params)


def validate(params: dict[str, Any], servers: tuple[ServerAddress, ...] = ()) -> LeakOptions:
    """check-leaks' options from its click params, checked whole before any load."""
    from mcpool_cli.checks.leaks.session import LEAK_DEFAULT, LeakOptions
    from mcpool_cli.engine.prechecks import check_families, expand_strategies, validate_custom

    settings = dict(params)
    strategies = expand_strategies(tuple(settings.pop("strategies", ())), LEAK_DEFAULT)
    options = LeakOptions(strategies=strategies, import_path=(os.getcwd(),), **settings)
    validate_custom(options.strategies, options.import_path, options.hang_timeout_s)
    check_families(options.strategies, servers)
    return options


def start(options: LeakOptions, servers: tuple[ServerAddress, ...], enter: Enter[Any]) -> LeakSession:
    """Connect (starting memcached when no server is given) and check the servers; the session, ready to run."""
    from mcpool_cli.checks.leaks.session import LeakSession
    from mcpool_cli.engine.session import connect

    return LeakSession(options, connect(servers, 64, enter))
