"""`mcpool check-races`: prove whether a client strategy is thread-safe, with evidence."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from mcpool_cli.checks.races.kind import KIND
from mcpool_cli.commandkit import OPS_PER_REQUEST, STRATEGY_HELP, Enter, run_command, shared_options
from mcpool_cli.engine.server import ServerAddress
from mcpool_cli.errors import UsageProblem
from mcpool_cli.kinds import CHECK_SCHEMA
from mcpool_cli.options import DURATION


if TYPE_CHECKING:  # the session and its checks load with the command's first call, not with `mcpool --help`
    from mcpool_cli.checks.races.session import RaceOptions, RaceSession


@click.command("check-races")
@shared_options(CHECK_SCHEMA)
@click.option("--strategy", "strategies", multiple=True, metavar="NAME",
              help=STRATEGY_HELP.replace("Default: fifo, thread-mapped and per-thread.", "Default: all."))
@click.option("--threads", "-t", type=click.IntRange(2, 1024), default=8, show_default=True,
              help="Threads racing in each trial.")
@click.option("--duration", "duration_s", type=DURATION, default="5s", show_default=True,
              help="How long each trial runs.")
@click.option("--trials", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Trials per strategy, each in a fresh worker process.")
@click.option("--fork", is_flag=True,
              help="Check fork safety instead: one client connected before fork(), used by parent and child.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (kept in the results).")
@OPS_PER_REQUEST
@click.pass_context
def check_races(ctx: click.Context, **params: Any) -> None:
    """Prove whether a client strategy is thread-safe, with evidence.

    Threads write and read back keys only they write, and read keys all share; every value carries its
    key, its writer and a sequence number, so a reply meant for another thread is caught. Each trial runs
    in its own worker process. Verdict per strategy: safe, racy, crashed, hung, error, or
    inconclusive / interrupted when there is too little evidence. Exit 0 when every
    strategy is safe, 1 otherwise, 2 for bad input.

    \b
    Examples:
      mcpool check-races
      mcpool check-races --strategy myapp.cache:make_pool --threads 16 --trials 5
      mcpool check-races --fork
    """
    run_command(ctx, KIND, params)


def validate(params: dict[str, Any], servers: tuple[ServerAddress, ...] = ()) -> RaceOptions:
    """check-races' options from its click params, checked whole before any load."""
    from mcpool_cli.checks.races.session import FORK, RaceOptions
    from mcpool_cli.engine.prechecks import check_families, expand_strategies, validate_custom

    settings = dict(params)
    strategies, fork = settings.pop("strategies"), settings["fork"]
    if fork and strategies:
        raise UsageProblem("--fork checks one client shared across fork(); it takes no --strategy")
    if settings["duration_s"] < 0.1:
        raise UsageProblem("--duration must be at least 100ms: a trial needs time to find a race")
    chosen = (FORK,) if fork else expand_strategies(strategies or ("all",))
    options = RaceOptions(strategies=chosen, import_path=(os.getcwd(),), **settings)
    check_families(options.strategies, servers)
    validate_custom(options.strategies, options.import_path, options.hang_timeout_s)
    return options


def start(options: RaceOptions, servers: tuple[ServerAddress, ...], enter: Enter[Any]) -> RaceSession:
    """Connect (starting memcached when no server is given) and check the servers; the session, ready to run."""
    from mcpool_cli.checks.races.session import RaceSession
    from mcpool_cli.engine.session import connect

    return RaceSession(options, connect(servers, 64, enter))
