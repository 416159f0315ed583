"""`mcpool bench`: drive memcached through each client strategy and report latency."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from mcpool_cli.environment import Environment
from mcpool_cli.errors import ExitCode, UsageProblem
from mcpool_cli.options import BEHAVIOR, DURATION, MIX, RATIO, VALUE_SIZE

from mcpool_cli.commandkit import STRATEGY_HELP, check_outputs, connect, run_session, shared_options


def exit_code(session: Any) -> ExitCode:
    if session.interrupted:
        return ExitCode.INTERRUPTED
    if all(result.clean for result in session.results):
        return ExitCode.OK
    return ExitCode.PROBLEM


def workload_words(options: Any) -> str:
    """The key space, key distribution and op mix, as the report's header says them."""
    keys = f"keys {options.keys:,}"
    if options.distribution == "zipf":
        keys += f" zipf s={options.zipf_s:g}"
    weights = dict(options.mix)
    if set(weights) <= {"get", "set"}:
        return f"{keys} · get:set {weights.get('get', 0)}:{weights.get('set', 0)}"
    return f"{keys} · mix {','.join(f'{op}={weight}' for op, weight in options.mix)}"


def render(session: Any, console: Any) -> None:
    from rich.text import Text

    from mcpool_cli.bench.render import comparison, run_report

    where = "embedded memcached" if session.embedded else "memcached"
    options = session.options
    console.print(Text(f"mcpool bench · {where} {session.server_version} at "
                       f"{', '.join(s.spec for s in session.servers)} · {options.duration_s:g} s measured after "
                       f"{options.warmup_s:g} s warm-up · {workload_words(options)}", style="dim"))
    for result in session.results:
        console.print(run_report(result))
    if len(session.results) > 1:
        console.print(comparison(session.results))


@click.command()
@shared_options("mcpool.result/1")
@click.option("--strategy", "strategies", multiple=True, metavar="NAME", help=STRATEGY_HELP)
@click.option("--threads", "-t", type=click.IntRange(1, 1024), default=12, show_default=True,
              help="Load threads in each worker process.")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes; each runs --threads threads and its own pool.")
@click.option("--pool-size", type=click.IntRange(1, 4096), default=None,
              help="Clients in the FIFO pool (default: one per thread). Fewer than --threads shows pool exhaustion.")
@click.option("--relinquish/--no-relinquish", default=True, show_default=True,
              help="Call the pool's relinquish() when a thread exits (thread-mapped and custom pools).")
@click.option("--duration", "duration_s", type=DURATION, default="10s", show_default=True,
              help="How long to measure each strategy: 500ms, 10s, 2m.")
@click.option("--warmup", "warmup_s", type=DURATION, default="1s", show_default=True,
              help="Load before measuring, not counted in ops or latency.")
@click.option("--keys", type=click.IntRange(1, 10_000_000), default=10_000, show_default=True,
              help="Size of the key space (all keys are written before the load starts).")
@click.option("--value-size", type=VALUE_SIZE, default="100", show_default=True,
              help="Value size in bytes, or a range such as 32-4096 (seeded per key).")
@click.option("--ratio", type=RATIO, default=None,
              help="GET:SET mix, e.g. 9:1, 1:1, 0:1 (default 9:1); the same as --mix get=9,set=1.")
@click.option("--mix", type=MIX, default=None,
              help="Op mix OP=WEIGHT,... of get, set, delete and get_multi (4 keys), e.g. "
                   "get=5,set=2,delete=1,get_multi=2; instead of --ratio. After a delete, gets miss until a set.")
@click.option("--distribution", type=click.Choice(["uniform", "zipf"]), default="uniform", show_default=True,
              help="How keys are picked: uniform, or zipf (a few hot keys: key k with weight 1/(k+1)^s).")
@click.option("--zipf-s", "zipf_s", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="The zipf exponent s: above 0, higher is more skewed (1.0 puts ~10% of 10,000 keys' picks "
                   "on the hottest). Needs --distribution zipf.")
@click.option("--binary", is_flag=True, help="Use memcached's binary protocol.")
@click.option("--behavior", "behaviors", type=BEHAVIOR, multiple=True,
              help="A pylibmc behavior KEY=VALUE, e.g. tcp_nodelay=1 or retry_timeout=1. Repeatable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the key, value-size and op sequences.")
@click.pass_context
def bench(ctx: click.Context, servers: tuple[Any, ...], strategies: tuple[str, ...], pool_size: int | None,
          json_path: str | None, quiet: bool, thresholds: tuple[Any, ...], junit_path: str | None,
          check_only: bool,
          **settings: Any) -> None:
    """Drive memcached through client strategies from worker processes and report latency.

    Each strategy runs in child processes (a shared client can crash its interpreter), one strategy after
    another against the same server, and is reported side by side. Exit 0 when every run was clean, 1 when
    one crashed, hung, failed, returned wrong values or raised errors, 2 for bad input, 130 on Ctrl-C.

    \b
    Examples:
      mcpool bench --strategy fifo --threads 12
      mcpool bench --strategy all --duration 5s --json result.json
      mcpool bench --mix get=5,set=2,delete=1,get_multi=2 --distribution zipf --value-size 100-4000
      mcpool bench -s 127.0.0.1:11211 --strategy myapp.cache:make_pool
    """
    from mcpool_cli.bench.session import (BenchOptions, BenchSession, check_client, dataset_mb, expand_strategies,
                                  resolve_mix, validate)

    env: Environment = ctx.obj
    if settings["distribution"] != "zipf" and ctx.get_parameter_source("zipf_s") != ParameterSource.DEFAULT:
        raise UsageProblem("--zipf-s applies to --distribution zipf only: add --distribution zipf")
    settings["ratio"], settings["mix"] = resolve_mix(settings["ratio"], settings["mix"])
    options = BenchOptions(strategies=expand_strategies(strategies), pool_size=pool_size or 0, **settings)
    validate(options)
    check_outputs(ctx, "bench", json_path, thresholds, junit_path, check_only)
    session = BenchSession(options, *connect(ctx, servers, dataset_mb(options)))
    check_client(session.servers, options.binary, options.behaviors)
    reported = run_session(session, env, quiet, json_path, thresholds, junit_path)
    render(session, reported.console)
    reported.finish(ctx, exit_code(session))
