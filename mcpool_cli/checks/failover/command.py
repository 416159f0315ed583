"""`mcpool check-failover`: several memcached nodes, one fails and comes back; what each client configuration does."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import click

from mcpool_cli.checks.failover.faults import FAULTS
from mcpool_cli.checks.failover.kind import KIND
from mcpool_cli.commandkit import Enter, run_command, shared_options
from mcpool_cli.errors import UsageProblem
from mcpool_cli.options import DURATION, MIX

if TYPE_CHECKING:  # the session loads with the command's first call, not with `mcpool --help`
    from mcpool_cli.checks.failover.session import FailoverOptions, FailoverSession
    from mcpool_cli.engine.server import ServerAddress

PYLIBMC_STRATEGIES = ("per-thread", "fifo", "thread-mapped")
DEFAULT_AFTER_S = 5.0


@click.command("check-failover")
@shared_options(KIND.schema, "stale_reads==0, readmitted_s<3s, errors_late_in_outage==0, moved_if_removed<0.4")
@click.option("--config", "configs", multiple=True, metavar="NAME|LIB:K=V,...",
              help="A client configuration to compare. Repeatable. Presets: modula, ketama, ketama-eject, "
                   "ketama-eject-2s, hashclient, hashclient-2s, memcache, memcache-1s; or your own settings, "
                   "e.g. 'pylibmc:ketama=1,remove_failed=3,dead_timeout=10' or 'pymemcache:dead_timeout=5' "
                   "or 'memcache:dead_retry=5'. Default: modula, ketama, ketama-eject, ketama-eject-2s and "
                   "hashclient (when pymemcache is installed).")
@click.option("--fault", type=click.Choice(FAULTS), default="kill", show_default=True,
              help="kill: the node's proxy refuses connections (memcached keeps its data, as behind a partition); "
                   "freeze: it forwards nothing; drop: it cuts every connection, new ones too. For --outage, "
                   "then the node is back.")
@click.option("--nodes", type=click.IntRange(2, 16), default=None,
              help="memcached nodes mcpool starts, each behind its loopback proxy.  [default: 3; with --server, "
                   "the servers given]")
@click.option("--node", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Which node fails, counted from 1 in the order of the servers.")
@click.option("--outage", "outage_s", type=DURATION, default="3s", show_default=True,
              help="How long the node stays failed.")
@click.option("--before", "before_s", type=DURATION, default="2s", show_default=True,
              help="Steady load before the fault.")
@click.option("--after", "after_s", type=DURATION, default=None,
              help="Load after the node is back: re-admission and stale reads are watched this long.  [default: 5s]")
@click.option("--duration", "duration_s", type=DURATION, default=None,
              help="The whole load, instead of --after: --before + --outage must fit in it.")
@click.option("--rejoin", type=click.Choice(["kept", "empty"]), default="kept", show_default=True,
              help="kept: the node comes back with the data it had; empty: this run's keys are deleted from it "
                   "first, as a restarted memcached comes back empty.")
@click.option("--strategy", default="per-thread", show_default=True, metavar="NAME",
              help="How threads of pylibmc configurations get a client: per-thread, fifo or thread-mapped. "
                   "pymemcache and python-memcached configurations use a client per thread.")
@click.option("--threads", "-t", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Load threads, each pacing its ops.")
@click.option("--rate", type=click.FloatRange(1, 100_000), default=200, show_default=True,
              help="Ops a second per thread.")
@click.option("--keys", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="Keys written before the load, spread over the nodes.")
@click.option("--mix", type=MIX, default="get=8,set=2", show_default=True,
              help="Op weights: get (of any key) and set (each thread writes its own keys).")
@click.pass_context
def check_failover(ctx: click.Context, **params: Any) -> None:
    """What each client configuration does when one of several memcached nodes fails and comes back.

    Starts --nodes memcached servers (or takes yours with -s), each behind a loopback proxy that sees which
    key goes where. Under steady load through each configuration in turn, one node fails (--fault) for
    --outage, then comes back. Measures errors against silent misses, when the client stopped sending to
    the failed node (ejection) and sent to it again once back (re-admission), the keys that moved, stale
    reads after it rejoined, and load on each node over time. Exit 0 when every configuration is
    `transparent`, 1 otherwise, 2 for bad input.

    \b
    Examples:
      mcpool check-failover
      mcpool check-failover --config ketama-eject-2s --rejoin empty
      mcpool check-failover -s cache1:11211 -s cache2:11211 --fault freeze --config 'ketama=1,remove_failed=1'
    """
    run_command(ctx, KIND, params)


def validate(params: dict[str, Any], servers: tuple[ServerAddress, ...] = ()) -> FailoverOptions:
    """check-failover's options from its click params, checked whole before any load."""
    from mcpool_cli.checks.failover.configs import check_config, expand_configs
    from mcpool_cli.checks.failover.session import FailoverOptions

    settings = dict(params)
    settings["nodes"] = count_nodes(settings["nodes"], servers)
    if settings["node"] > settings["nodes"]:
        raise UsageProblem(f"--node {settings['node']}: there are only {settings['nodes']} nodes")
    duration_s = settings.pop("duration_s")
    if duration_s is not None and settings["after_s"] is not None:
        raise UsageProblem("--duration and --after both say how long the load runs: give one")
    if duration_s is not None:
        settings["after_s"] = fit_after(duration_s, settings["before_s"], settings["outage_s"])
    elif settings["after_s"] is None:
        settings["after_s"] = DEFAULT_AFTER_S
    check_settings(settings)
    configs = expand_configs(tuple(settings.pop("configs")))
    for config in configs:
        check_config(config)
    return FailoverOptions(configs=tuple(config.name for config in configs), import_path=(os.getcwd(),), **settings)


def count_nodes(nodes: int | None, servers: tuple[ServerAddress, ...]) -> int:
    """How many nodes: the servers given (at least two, none twice), else --nodes (3 by default)."""
    if not servers:
        return 3 if nodes is None else nodes
    specs = [server.spec for server in servers]
    for spec in specs:
        if specs.count(spec) > 1:
            raise UsageProblem(f"server {spec} is given twice: give each node once")
    if len(specs) < 2:
        raise UsageProblem("check-failover needs at least two servers (-s HOST:PORT, repeated): one fails while "
                           "the others serve")
    if nodes is not None and nodes != len(specs):
        raise UsageProblem(f"--nodes {nodes} with {len(specs)} servers given: drop --nodes, or give {nodes} servers")
    return len(specs)


def fit_after(duration_s: float, before_s: float, outage_s: float) -> float:
    """The load after the node is back, when the whole --duration is given."""
    after_s = duration_s - before_s - outage_s
    if after_s < 0.5:
        raise UsageProblem(f"--outage {outage_s:g}s after --before {before_s:g}s does not fit in --duration "
                           f"{duration_s:g}s with time left to watch the node come back: make --duration at "
                           f"least {before_s + outage_s + 0.5:g}s")
    return after_s


def check_settings(settings: dict[str, Any]) -> None:
    """The fault's length, the load and the op mix are ones check-failover can work with."""
    if not 0.1 <= settings["outage_s"] <= 600:
        raise UsageProblem("--outage must be between 100ms and 10m")
    if not 0.2 <= settings["before_s"] <= 600:
        raise UsageProblem("--before must be between 200ms and 10m")
    if not 0.5 <= settings["after_s"] <= 3600:
        raise UsageProblem("--after must be between 500ms and 1h")
    if not math.isfinite(settings["rate"]):
        raise UsageProblem("--rate must be a number of ops a second")
    if settings["strategy"] not in PYLIBMC_STRATEGIES:
        raise UsageProblem(f"--strategy {settings['strategy']}: check-failover takes per-thread, fifo or "
                           "thread-mapped (threads sharing one client crash; see check-races)")
    ops = {op for op, weight in settings["mix"] if weight}
    if not ops <= {"get", "set"}:
        raise UsageProblem("--mix: check-failover takes get and set")
    if "get" not in ops:
        raise UsageProblem("--mix needs get: only reads can show a miss or a stale value")
    if settings["keys"] < 10 * settings["nodes"]:
        raise UsageProblem(f"--keys must be at least {10 * settings['nodes']} (ten a node) to see where keys go")


def start(options: FailoverOptions, servers: tuple[ServerAddress, ...], enter: Enter[Any]) -> FailoverSession:
    """The session, ready to run: the nodes (the given servers, or memcached started here), each behind a proxy."""
    from mcpool_cli.checks.failover.session import FailoverSession
    from mcpool_cli.engine.prechecks import check_client
    from mcpool_cli.engine.proxy import FaultProxy
    from mcpool_cli.engine.server import EmbeddedServer, check_reachable
    from mcpool_cli.engine.session import Servers

    if servers:
        versions = {check_reachable(server) for server in servers}
        reached = Servers(tuple(servers), False, ", ".join(sorted(versions)))
    else:
        started = [enter(EmbeddedServer(memory_mb=64)) for _ in range(options.nodes)]
        reached = Servers(tuple(server.address for server in started), True,
                          check_reachable(started[0].address))
    check_client(reached.addresses)
    check_distinct(reached.addresses)
    return FailoverSession(options, reached, proxies=[enter(FaultProxy(address)) for address in reached.addresses])


def check_distinct(addresses: tuple[ServerAddress, ...]) -> None:
    """No two addresses reach the same memcached (127.0.0.1 and localhost, say): each gets a key of mcpool's, with a
    one-minute TTL, and must not see another's."""
    import secrets

    from mcpool_cli.engine.server import server_command

    marker = f"mcpool:distinct:{secrets.token_hex(4)}"
    for index, address in enumerate(addresses):
        server_command(address, f"set {marker}:{index} 0 60 1\r\n{index}\r\n".encode(), b"\r\n")
    for index, address in enumerate(addresses):
        keys = " ".join(f"{marker}:{other}" for other in range(len(addresses)) if other != index)
        reply = server_command(address, f"get {keys}\r\n".encode(), b"END\r\n")
        for other in range(len(addresses)):
            if other != index and f"VALUE {marker}:{other} ".encode() in reply:
                raise UsageProblem(f"servers {addresses[other].spec} and {address.spec} are the same memcached: "
                                   "give each node once")
    for index, address in enumerate(addresses):
        server_command(address, f"delete {marker}:{index}\r\n".encode(), b"\r\n")
