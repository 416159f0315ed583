"""`mcpool check-stale`: what pooled clients do when the server restarts, drops or freezes connections."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import click

from mcpool_cli.checks.stale.faults import EMBEDDED_ONLY
from mcpool_cli.checks.stale.kind import KIND
from mcpool_cli.commandkit import OPS_PER_REQUEST, STRATEGY_HELP, Enter, run_command, shared_options
from mcpool_cli.errors import UsageProblem
from mcpool_cli.options import BEHAVIOR, DURATION, MIX


if TYPE_CHECKING:  # the session and its checks load with the command's first call, not with `mcpool --help`
    from mcpool_cli.checks.stale.session import StaleOptions, StaleSession
    from mcpool_cli.engine.server import ServerAddress


@click.command("check-stale")
@shared_options(KIND.schema)
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
@click.option("--client-option", "client_options", type=BEHAVIOR, multiple=True, metavar="KEY=VALUE",
              help="A keyword argument for another library's client, e.g. dead_retry=1 for python-memcached. "
                   "Repeatable.")
@click.option("--compare-behaviors", is_flag=True,
              help="Run each strategy three times: libmemcached defaults, retry_timeout=1, and "
                   "remove_failed=1 with dead_timeout=1; say which shortened the outage.")
@OPS_PER_REQUEST
@click.pass_context
def check_stale(ctx: click.Context, **params: Any) -> None:
    """What pooled clients do when the server goes away: false misses, errors, outage and recovery.

    Under steady load through each strategy, with keys written before the fault, counts false misses
    (a key that is there answered as missing, with no exception), errors by class, ops lost, the outage
    window and the time to recover once the server is usable again. Exit 0 when every strategy recovered
    within --recover-within without a false miss or an error the fault does not explain (before it struck,
    or after the load had settled again), 1 otherwise, 2 for bad input.

    \b
    Examples:
      mcpool check-stale --fault restart
      mcpool check-stale -s cache1:11211 --fault drop
      mcpool check-stale --fault idle --compare-behaviors
    """
    run_command(ctx, KIND, params)


def validate(params: dict[str, Any], servers: tuple[ServerAddress, ...] = ()) -> StaleOptions:
    """check-stale's options from its click params, checked whole before any load; `servers`: those given."""
    from mcpool_cli.checks.stale.session import STALE_DEFAULT, StaleOptions
    from mcpool_cli.engine.prechecks import check_behaviors, check_families, expand_strategies, validate_custom

    settings = dict(params)
    fault = settings["fault"]
    if fault in EMBEDDED_ONLY and servers:
        raise UsageProblem(f"--fault {fault} needs the memcached mcpool starts itself (it "
                           f"{'stops and starts' if fault == 'restart' else 'sets idle_timeout on'} it): drop "
                           "--server/-s, MCPOOL_SERVERS and a scenario's servers, or use --fault drop or freeze, "
                           "which work with any server")
    check_settings(settings)
    strategies = settings.pop("strategies")
    options = StaleOptions(strategies=expand_strategies(strategies or STALE_DEFAULT), import_path=(os.getcwd(),),
                           **settings)
    validate_custom(options.strategies, options.import_path, options.hang_timeout_s)
    for _, behaviors in options.variants:
        check_behaviors(behaviors, binary=False)
        check_families(options.strategies, servers, behaviors=behaviors, client_options=options.client_options)
    return options


def check_settings(settings: dict[str, Any]) -> None:
    """The fault's length, the recovery bound, the rate and the op mix are ones check-stale can work with."""
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


def start(options: StaleOptions, servers: tuple[ServerAddress, ...], enter: Enter[Any]) -> StaleSession:
    """The session, ready to run: restart and idle on a memcached started here, which it controls; drop and
    freeze through a proxy in front of each server (the given ones, or one started here)."""
    from mcpool_cli.engine.proxy import FaultProxy
    from mcpool_cli.checks.stale.session import StaleSession
    from mcpool_cli.engine.prechecks import check_client
    from mcpool_cli.engine.server import EmbeddedServer, check_reachable
    from mcpool_cli.engine.session import Servers, connect

    if options.fault in EMBEDDED_ONLY:
        extra = ("-o", f"idle_timeout={options.idle_timeout_s}") if options.fault == "idle" else ()
        server = enter(EmbeddedServer(memory_mb=64, extra_args=extra))
        reached = Servers((server.address,), True, check_reachable(server.address))
        check_client(reached.addresses)
        return StaleSession(options, reached, controlled=server)
    reached = connect(servers, 64, enter)
    return StaleSession(options, reached, proxies=[enter(FaultProxy(address)) for address in reached.addresses])
