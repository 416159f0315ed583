"""`mcpool bench`: drive memcached through each client strategy and report latency."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import time
from typing import TYPE_CHECKING, Any

import click

from mcpool_cli.bench.kind import KIND, RESULT_SCHEMA
from mcpool_cli.commandkit import OPS_PER_REQUEST, STRATEGY_HELP, Enter, check_json_target, run_command, shared_options
from mcpool_cli.engine.server import ServerAddress
from mcpool_cli.errors import UsageProblem
from mcpool_cli.options import BEHAVIOR, DURATION, MIX, RATES, RATIO, VALUE_SIZE

if TYPE_CHECKING:  # the session and its checks load with the command's first call, not with `mcpool --help`
    from mcpool_cli.bench.session import BenchOptions, BenchSession


@click.command()
@shared_options(RESULT_SCHEMA)
@click.option("--strategy", "strategies", multiple=True, metavar="NAME", help=STRATEGY_HELP)
@click.option("--threads", "-t", type=click.IntRange(1, 1024), default=12, show_default=True,
              help="Load threads in each worker process.")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes; each runs --threads threads and its own pool.")
@click.option("--pool-size", type=click.IntRange(1, 4096), default=None,
              help="Clients in the FIFO pool (default: one per thread). Fewer than --threads shows pool exhaustion.")
@click.option("--relinquish/--no-relinquish", default=True, show_default=True,
              help="Call the pool's relinquish() when a thread exits (thread-mapped and custom pools).")
@OPS_PER_REQUEST
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
              callback=lambda ctx, param, value: None if given_by_default(ctx, param) else value,
              help="The zipf exponent s: above 0, higher is more skewed (1.0 puts ~10% of 10,000 keys' picks "
                   "on the hottest). Needs --distribution zipf.")
@click.option("--binary", is_flag=True, help="Use memcached's binary protocol.")
@click.option("--behavior", "behaviors", type=BEHAVIOR, multiple=True,
              help="A pylibmc behavior KEY=VALUE, e.g. tcp_nodelay=1 or retry_timeout=1. Repeatable.")
@click.option("--client-option", "client_options", type=BEHAVIOR, multiple=True, metavar="KEY=VALUE",
              help="A keyword argument for another library's client (see mcpool strategies), e.g. no_delay=true "
                   "for pymemcache; true/false and numbers become 1/0 and ints. Repeatable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the key, value-size and op sequences.")
@click.option("--rate", "rates", type=RATES, default=None, metavar="OPS/S",
              help="Open model: offer this many ops per second in total (split over processes and threads), "
                   "e.g. 5000 or 20k, and time each op from when it was due. A list such as 2k,5k,10k is a "
                   "sweep: each rate for each strategy. Default: the closed loop (each op when the last returned).")
@click.option("--arrival", type=click.Choice(["constant", "poisson"]), default="constant", show_default=True,
              help="With --rate: gaps between intended starts, constant or exponential (poisson).")
@click.option("--budget", default=None, metavar="EXPR",
              help="With a --rate sweep: the latency budget a rate must meet to count as sustained, e.g. p99<2ms.")
@click.option("--interval", "interval_s", type=DURATION, default=None,
              help="The timeline's interval: ops, errors and latency per interval, in the report and the JSON "
                   "[default: 1s, or --duration when shorter].")
@click.option("--hdr-log", "hdr_log", default=None, metavar="FILE",
              help="Also write the intervals as an HdrHistogram interval log (read by HdrHistogram's tools and "
                   "hdrh's HistogramLogReader), one tag per strategy and rate.")
@click.option("--metrics-port", "metrics_port", default=None, metavar="[HOST:]PORT",
              help="Serve live metrics for Prometheus at http://HOST:PORT/metrics while the run lasts (HOST "
                   "127.0.0.1 unless given; 0.0.0.0:PORT in a container): ops, errors by class, latency and the "
                   "pool's clients, per strategy, updated each interval. Needs mcpool[metrics].")
@click.option("--run-id", "run_id", default=None, metavar="ID",
              help="The run id (1-64 of A-Z a-z 0-9 _ . -), the same on every machine of one run so that mcpool merge "
                   "takes their results; also read from MCPOOL_RUN_ID. Default: a random one.")
@click.option("--start-at", "start_at", default=None, metavar="TIME",
              help="Start measuring at this wall-clock time, ISO 8601 with a zone (2026-11-29T21:40:00Z) or +30s "
                   "from now, so that several machines measure the same window. One strategy, one rate.")
@click.pass_context
def bench(ctx: click.Context, **params: Any) -> None:
    """Drive memcached through client strategies from worker processes and report latency.

    Each strategy runs in child processes (a shared client can crash its interpreter), one strategy after
    another against the same server, and is reported side by side. Exit 0 when every run was clean, 1 when
    one crashed, hung, failed, returned wrong values or raised errors, 2 for bad input, 130 on Ctrl-C.

    \b
    Examples:
      mcpool bench --strategy fifo --threads 12
      mcpool bench --strategy all --duration 5s --json result.json
      mcpool bench --strategy fifo --rate 5k --pool-size 4
      mcpool bench --rate 2k,5k,10k,20k --budget 'p99<2ms'
      mcpool bench --mix get=5,set=2,delete=1,get_multi=2 --distribution zipf --value-size 100-4000
      mcpool bench -s 127.0.0.1:11211 --strategy myapp.cache:make_pool
      mcpool bench -s cache1:11211 --strategy fifo --run-id nightly-42 --start-at +30s --json host1.json
    """
    run_command(ctx, KIND, params)


def given_by_default(ctx: click.Context, param: click.Parameter) -> bool:
    """Whether the user left an option out (validate tells a default --zipf-s from one given without zipf)."""
    return ctx.get_parameter_source(param.name or "") == click.core.ParameterSource.DEFAULT


def validate(params: dict[str, Any], servers: tuple[ServerAddress, ...] = ()) -> BenchOptions:
    """bench's options from its click params, checked whole before any load."""
    from mcpool_cli.bench.session import BenchOptions, check_options, resolve_mix
    from mcpool_cli.engine.prechecks import check_families, expand_strategies

    settings = dict(params)
    if settings["distribution"] != "zipf" and settings["zipf_s"] is not None:
        raise UsageProblem("--zipf-s applies to --distribution zipf only: add --distribution zipf")
    settings["zipf_s"] = 1.0 if settings["zipf_s"] is None else settings["zipf_s"]
    settings["ratio"], settings["mix"] = resolve_mix(settings["ratio"], settings["mix"])
    strategies, pool_size = settings.pop("strategies"), settings.pop("pool_size")
    settings["rates"], settings["budget"] = settings["rates"] or (), settings["budget"] or ""
    if settings["interval_s"] is None:
        settings["interval_s"] = min(1.0, settings["duration_s"])
    if settings["hdr_log"] is not None:
        check_json_target(settings["hdr_log"], "--hdr-log")
        if settings["hdr_log"] == "-":
            raise UsageProblem("--hdr-log needs a file name")
    settings["hdr_log"] = settings["hdr_log"] or ""
    settings["metrics_port"] = check_metrics_port(settings["metrics_port"])
    run_id = settings.get("run_id")
    settings["run_id"] = (check_run_id(run_id) if run_id is not None
                          else check_run_id(os.environ.get(RUN_ID_ENV, ""), RUN_ID_ENV))
    start_at = settings.pop("start_at", None)
    options = BenchOptions(strategies=expand_strategies(strategies), pool_size=pool_size or 0,
                           import_path=(os.getcwd(),), **settings)
    if start_at is not None:
        options = dataclasses.replace(options, start_at_unix=start_at_unix(start_at, time.time()))
        check_one_run(options)
    check_options(options)
    check_families(options.strategies, servers, options.binary, options.behaviors, options.client_options)
    return options


RUN_ID_ENV = "MCPOOL_RUN_ID"
RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_START_AHEAD_S = 24 * 3600


def check_run_id(run_id: str, given_as: str = "--run-id") -> str:
    """A --run-id (or MCPOOL_RUN_ID) as given, "" for none; a UsageProblem when it could not be a key's part."""
    if run_id and not RUN_ID.fullmatch(run_id):
        shown = f"{given_as} {run_id!r}" if given_as.startswith("--") else f"{given_as}={run_id!r}"
        raise UsageProblem(f"{shown}: use 1-64 characters of A-Z a-z 0-9 _ . - (it is part of every key)")
    return run_id


def start_at_unix(text: str, now_unix: float) -> float:
    """--start-at as a wall-clock time: ISO 8601 with a zone, or +DURATION from `now_unix`; in the next 24 h."""
    from mcpool_cli.units import parse_duration_s

    if text.startswith("+"):
        when = now_unix + parse_duration_s(text[1:])
    else:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise UsageProblem(f"--start-at {text!r}: give an ISO 8601 time with its zone, such as "
                               f"2026-11-29T21:40:00Z, or a delay such as +30s")
        when = moment.timestamp()
    if when <= now_unix:
        raise UsageProblem(f"--start-at {text}: that time has passed ({now_unix - when:.1f} s ago); give a later one")
    if when - now_unix > MAX_START_AHEAD_S:
        raise UsageProblem(f"--start-at {text}: more than 24 h from now; give a time within a day")
    return when


def check_one_run(options: BenchOptions) -> None:
    """--start-at aligns one run: a second strategy or rate would start whenever the first ended."""
    if len(options.strategies) > 1:
        raise UsageProblem(f"--start-at aligns one run, and {len(options.strategies)} strategies would run "
                           f"({', '.join(options.strategies)}); give one --strategy")
    if len(options.rates) > 1:
        raise UsageProblem(f"--start-at aligns one run, and a --rate sweep runs {len(options.rates)}; give one rate")


def start(options: BenchOptions, servers: tuple[ServerAddress, ...], enter: Enter[Any]) -> BenchSession:
    """Connect (starting memcached when no server is given) and check the servers; the session, ready to run."""
    from mcpool_cli.bench.session import BenchSession, dataset_mb
    from mcpool_cli.engine.session import connect

    session = BenchSession(options, connect(servers, dataset_mb(options), enter, options.binary, options.behaviors))
    if options.metrics_port:
        from mcpool_cli.bench.metrics import LiveMetrics, parse_metrics_address

        session.live = enter(LiveMetrics(parse_metrics_address(options.metrics_port), session.run_id))
    return session


def check_metrics_port(text: str | None) -> str:
    """--metrics-port as given ("" when not), checked: an address, and the library that serves it."""
    if text is None:
        return ""
    import importlib.util

    from mcpool_cli.bench.metrics import parse_metrics_address

    parse_metrics_address(text)
    if importlib.util.find_spec("prometheus_client") is None:
        raise UsageProblem("--metrics-port needs prometheus-client, which is not installed: "
                           "pip install 'mcpool[metrics]'")
    return text
