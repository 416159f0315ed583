"""`mcpool bench` as a library: options, each strategy run in turn, the JSON document and its loading back."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli.bench.explain import explain
from mcpool_cli.bench.kind import KIND
from mcpool_cli.bench.results import RunResult, RunStats
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.prechecks import check_behaviors, validate_custom
from mcpool_cli.engine.runner import RunListener, run_workers
from mcpool_cli.engine.server import ServerAddress
from mcpool_cli.engine.session import Session, fields_of
from mcpool_cli.engine.workload import DISTRIBUTIONS
from mcpool_cli.errors import UsageProblem

MAX_DATASET_BYTES = 2 << 30  # every worker holds every value in memory: the cap is on all of them together


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:,.0f} GB" if nbytes >= 10**9 else f"{nbytes / 1e6:,.0f} MB"

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


def check_options(options: BenchOptions) -> None:
    """Every check that can fail before load starts: bad behaviors, custom strategies that do not import."""
    if options.duration_s <= 0:
        raise UsageProblem("--duration must be longer than 0")
    if options.distribution not in DISTRIBUTIONS:
        raise UsageProblem(f"--distribution {options.distribution!r}: use one of {', '.join(DISTRIBUTIONS)}")
    if not (0 < options.zipf_s < math.inf):
        raise UsageProblem(f"--zipf-s {options.zipf_s:g}: use a number above 0, such as 0.8, 1 or 1.2")
    validate_custom(options.strategies, options.import_path, options.hang_timeout_s)
    needed = options.keys * options.value_size[1] * options.processes  # every worker holds every value
    if needed > MAX_DATASET_BYTES:
        workers = f" in each of {options.processes} worker processes" if options.processes > 1 else " in the worker"
        raise UsageProblem(f"--keys {options.keys:,} with values up to {options.value_size[1]:,} bytes would need "
                           f"about {_size(needed)} of memory (every value{workers}), over the "
                           f"{MAX_DATASET_BYTES >> 30} GiB limit; use fewer keys, smaller values or fewer "
                           f"--processes")
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


def execute(plan: RunPlan, listener: RunListener) -> RunResult:
    """Bench one strategy to its end, or until Ctrl-C (the result says so; partial results are kept)."""
    stats = RunStats()
    outcomes, interrupted = run_workers(plan, listener, stats)
    return RunResult.judged(plan, stats, outcomes, interrupted, explain)


@dataclass
class BenchSession(Session):
    """One `mcpool bench` invocation: each strategy in turn against the same servers."""

    KIND = KIND
    OPTIONS = BenchOptions
    RESULT = RunResult
    options: BenchOptions

    def run_one(self, strategy: str, listener: RunListener) -> bool:
        plan = build_plan(self.options, strategy, self.servers.addresses, f"{self.key_prefix}{strategy}:")
        self.results.append(execute(plan, listener))
        return self.results[-1].interrupted

    @classmethod
    def options_from_json(cls, data: dict[str, Any]) -> BenchOptions:
        """Options as saved; a document written before --mix has only the ratio, which was the mix."""
        known = fields_of(BenchOptions, data)
        known.pop("import_path", None)
        if "mix" not in known and known.get("ratio"):
            known["mix"] = (("get", known["ratio"][0]), ("set", known["ratio"][1]))
        return BenchOptions(**known)


from_json = BenchSession.from_json
