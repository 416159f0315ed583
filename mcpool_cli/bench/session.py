"""`mcpool bench` as a library: validate options, run each strategy in turn, build the JSON document."""

from __future__ import annotations

import datetime
import math
import os
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from mcpool_cli import __version__
from mcpool_cli.errors import UsageProblem
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.outcomes import RESULT_SCHEMA, RunResult
from mcpool_cli.engine.runner import RunListener, execute, run_in_turn
from mcpool_cli.engine.server import ServerAddress
from mcpool_cli.engine.strategies import BUILTIN, is_custom, load_factory
from mcpool_cli.engine.workload import DISTRIBUTIONS

SAFE_DEFAULT = ("fifo", "thread-mapped", "per-thread")  # what `mcpool bench` runs without --strategy
MIN_HANG_TIMEOUT_S = 1.0
MAX_DATASET_BYTES = 2 << 30  # every worker holds every value in memory


def dataset_mb(options: "BenchOptions") -> int:
    """Memory the key space takes on the server, in MiB, with room for item overhead."""
    return (options.keys * (options.value_size[1] + 100)) >> 20


@dataclass(frozen=True)
class BenchOptions:
    """Everything `mcpool bench` was asked for, validated."""

    strategies: tuple[str, ...]
    threads: int = 12
    processes: int = 1
    pool_size: int = 0
    relinquish: bool = True
    duration_s: float = 10.0
    warmup_s: float = 1.0
    keys: int = 10_000
    value_size: tuple[int, int] = (100, 100)
    ratio: tuple[int, int] | None = (9, 1)  # None when the mix was given as --mix
    mix: tuple[tuple[str, int], ...] = (("get", 9), ("set", 1))  # (op, weight): what the threads run
    distribution: str = "uniform"
    zipf_s: float = 1.0
    binary: bool = False
    behaviors: tuple[tuple[str, int | str], ...] = ()
    seed: int = 0
    hang_timeout_s: float = 10.0
    import_path: tuple[str, ...] = field(default_factory=lambda: (os.getcwd(),))


def resolve_mix(ratio: tuple[int, int] | None, mix: tuple[tuple[str, int], ...] | None
                ) -> tuple[tuple[int, int] | None, tuple[tuple[str, int], ...]]:
    """(ratio, mix) from --ratio GET:SET or --mix OP=W,...: one of them, the ratio as a get/set mix."""
    if ratio is not None and mix is not None:
        raise UsageProblem("--ratio and --mix both give the op mix: use one (--ratio 9:1 is --mix get=9,set=1)")
    if mix is not None:
        return None, mix
    ratio = ratio or (9, 1)
    return ratio, (("get", ratio[0]), ("set", ratio[1]))


def expand_strategies(names: tuple[str, ...]) -> tuple[str, ...]:
    """Resolve `all`, drop repeats, reject unknown names."""
    expanded: list[str] = []
    for name in names or SAFE_DEFAULT:
        for one in BUILTIN if name == "all" else (name,):
            if one not in BUILTIN and not is_custom(one):
                raise UsageProblem(f"unknown strategy {one!r}: use one of {', '.join(BUILTIN)}, all, "
                                   "or module:callable for your own pool")
            if one not in expanded:
                expanded.append(one)
    return tuple(expanded)


def check_behaviors(behaviors: tuple[tuple[str, int | str], ...], binary: bool) -> None:
    """Let pylibmc judge the behaviors now, before any load, rather than in every worker."""
    import pylibmc

    try:
        pylibmc.Client(["127.0.0.1:11211"], binary=binary, behaviors=dict(behaviors))
    except (ValueError, TypeError, KeyError, pylibmc.Error) as exc:
        raise UsageProblem(f"--behavior: {exc}; see pylibmc's behaviors list") from exc


def validate_custom(strategies: tuple[str, ...], import_path: tuple[str, ...], hang_timeout_s: float) -> None:
    """Checks every command shares: custom strategies import, the hang timeout is workable."""
    if hang_timeout_s < MIN_HANG_TIMEOUT_S:
        raise UsageProblem(f"--hang-timeout must be at least {MIN_HANG_TIMEOUT_S:g}s: workers report progress "
                           "a few times a second and need a moment to start")
    for name in strategies:
        if is_custom(name):
            load_factory(name, import_path)


def check_client(servers: tuple[ServerAddress, ...], binary: bool = False,
                 behaviors: tuple[tuple[str, int | str], ...] = ()) -> None:
    """One get through pylibmc itself, from this process and one thread: the server may answer a socket yet
    be unusable to pylibmc (its bundled libmemcached cannot look up IPv6 addresses, for one)."""
    import pylibmc

    for server in servers:
        client = pylibmc.Client([server.spec], binary=binary, behaviors=dict(behaviors))
        try:
            client.get("mcpool:probe")
        except pylibmc.Error as exc:
            hint = " (this pylibmc's libmemcached cannot use IPv6 addresses: give an IPv4 one)" \
                if ":" in server.host else ""
            raise UsageProblem(f"server {server.spec}: pylibmc cannot use it: {exc}{hint}") from exc
        finally:
            client.disconnect_all()


def validate(options: BenchOptions) -> None:
    """Every check that can fail before load starts: bad behaviors, custom strategies that do not import."""
    if options.duration_s <= 0:
        raise UsageProblem("--duration must be longer than 0")
    if options.distribution not in DISTRIBUTIONS:
        raise UsageProblem(f"--distribution {options.distribution!r}: use one of {', '.join(DISTRIBUTIONS)}")
    if not (0 < options.zipf_s < math.inf):
        raise UsageProblem(f"--zipf-s {options.zipf_s:g}: use a number above 0, such as 0.8, 1 or 1.2")
    validate_custom(options.strategies, options.import_path, options.hang_timeout_s)
    if options.keys * options.value_size[1] > MAX_DATASET_BYTES:
        raise UsageProblem(f"--keys {options.keys:,} with values up to {options.value_size[1]:,} bytes would need "
                           f"over {MAX_DATASET_BYTES >> 30} GiB in every worker; use fewer keys or smaller values")
    check_behaviors(options.behaviors, options.binary)


def build_plan(options: BenchOptions, strategy: str, servers: tuple[ServerAddress, ...], key_prefix: str) -> RunPlan:
    weights = dict(options.mix)
    workload = Workload(keys=options.keys, value_min=options.value_size[0], value_max=options.value_size[1],
                        get_weight=weights.get("get", 0), set_weight=weights.get("set", 0), seed=options.seed,
                        key_prefix=key_prefix, mix=options.mix, distribution=options.distribution,
                        zipf_s=options.zipf_s)
    client = ClientConfig(servers=tuple(s.spec for s in servers), binary=options.binary, behaviors=options.behaviors)
    return RunPlan(strategy=strategy, client=client, workload=workload, threads=options.threads,
                   processes=options.processes, pool_size=options.pool_size, relinquish=options.relinquish,
                   duration_s=options.duration_s, warmup_s=options.warmup_s,
                   hang_timeout_s=options.hang_timeout_s, import_path=options.import_path)


@dataclass
class BenchSession:
    """One `mcpool bench` invocation: where it ran, what it measured so far."""

    options: BenchOptions
    servers: tuple[ServerAddress, ...]
    embedded: bool
    server_version: str = ""
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    started_at: str = field(default_factory=lambda: _now())
    finished_at: str | None = None
    results: list[RunResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def key_prefix(self) -> str:
        return f"mcpool:{self.run_id}:"

    def run(self, listener: RunListener) -> None:
        """Each strategy in turn against the same server; stops early on Ctrl-C, keeping what was measured."""
        def run_one(strategy: str) -> bool:
            plan = build_plan(self.options, strategy, self.servers, f"{self.key_prefix}{strategy}:")
            self.results.append(execute(plan, listener))
            return self.results[-1].interrupted

        self.interrupted = run_in_turn(self.options.strategies, run_one)
        self.finished_at = _now()

    def to_json(self) -> dict[str, Any]:
        options = asdict(self.options)
        options.pop("import_path")
        return {
            "schema": RESULT_SCHEMA, "mcpool_version": __version__, "command": "bench", "run_id": self.run_id,
            "started_at": self.started_at, "finished_at": self.finished_at or _now(),
            "interrupted": self.interrupted,
            "server": {"addresses": [s.spec for s in self.servers], "embedded": self.embedded,
                       "version": self.server_version},
            "options": options,
            "runs": [result.to_json() for result in self.results],
        }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
