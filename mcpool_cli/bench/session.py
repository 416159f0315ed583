"""`mcpool bench` as a library: options, each strategy run in turn, the JSON document and its loading back."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcpool_cli.bench.explain import explain
from mcpool_cli.bench.kind import KIND
from mcpool_cli.bench.results import RunResult, RunStats
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.prechecks import check_behaviors, validate_custom
from mcpool_cli.engine.runner import RunListener, run_workers
from mcpool_cli.engine.server import ServerAddress
from mcpool_cli.engine.session import LOCAL_OPTIONS, Session, fields_of
from mcpool_cli.engine.pacing import ARRIVALS
from mcpool_cli.engine.workload import DISTRIBUTIONS
from mcpool_cli.errors import UsageProblem
from mcpool_cli.kinds import LATENCY

if TYPE_CHECKING:
    from mcpool_cli.report.thresholds import Threshold

MAX_RATE_PER_THREAD = 100_000  # a Python thread does at most ~20k ops/s here: beyond this a rate means nothing
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
    ops_per_request: int = 10  # framework strategies: ops per request
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
    client_options: tuple[tuple[str, int | str], ...] = ()  # keyword arguments of another library's client
    seed: int = 0
    hang_timeout_s: float = 10.0
    rates: tuple[float, ...] = ()  # the open model's ops/s, all threads together; several make a sweep
    arrival: str = "constant"  # the open model's gaps: constant or poisson
    interval_s: float = 1.0  # the timeline's interval
    budget: str = ""  # a sweep's latency budget, as a threshold expression such as p99<2ms
    import_path: tuple[str, ...] = field(default_factory=lambda: (os.getcwd(),))
    hdr_log: str = ""  # where to write the HdrHistogram interval log (not kept in the document)
    metrics_port: str = ""  # where live metrics are served, [HOST:]PORT (not kept in the document)
    run_id: str = ""  # --run-id: the session's run id, shared by several machines (kept in the header only)
    start_at_unix: float = 0.0  # --start-at: when the measured window starts, on the wall clock; 0: at once


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
    check_rates(options)


def check_rates(options: BenchOptions) -> None:
    """The open model's rates, arrival, interval and budget are ones a run can follow."""
    if options.interval_s <= 0:
        raise UsageProblem("--interval must be longer than 0")
    if options.interval_s > options.duration_s:
        raise UsageProblem(f"--interval {options.interval_s:g}s is longer than --duration {options.duration_s:g}s: "
                           f"the timeline would have no whole interval; use a shorter --interval")
    if options.arrival not in ARRIVALS:
        raise UsageProblem(f"--arrival {options.arrival!r}: use one of {', '.join(ARRIVALS)}")
    threads = options.threads * options.processes
    for rate in options.rates:
        if rate / threads > MAX_RATE_PER_THREAD:
            raise UsageProblem(f"--rate {rate:,.0f} is {rate / threads:,.0f} ops/s per thread, more than one "
                               f"thread can offer ({MAX_RATE_PER_THREAD:,}); use more --threads or a lower rate")
        if rate * (options.warmup_s + options.duration_s) < threads:
            raise UsageProblem(f"--rate {rate:g} over {options.warmup_s + options.duration_s:g} s gives fewer ops "
                               f"than the {threads} threads: raise --rate or --duration, or use fewer --threads")
    if options.budget and not options.rates:
        raise UsageProblem("--budget judges a --rate sweep: add --rate, e.g. --rate 2k,5k,10k")
    if options.arrival != "constant" and not options.rates:
        raise UsageProblem("--arrival shapes the open model: add --rate")
    if options.budget:
        budget_threshold(options.budget)


def budget_threshold(text: str) -> Threshold:
    """The sweep's budget as a threshold on a latency (p99<2ms, get.p99_9<5ms)."""
    from mcpool_cli.report.thresholds import parse_threshold

    threshold = parse_threshold(text)
    if threshold.metric.rpartition(".")[2] not in LATENCY or threshold.op not in ("<", "<="):
        raise UsageProblem(f"--budget {text!r}: give a latency and its limit, such as p99<2ms or get.p99_9<5ms")
    return threshold


def build_plan(options: BenchOptions, strategy: str, servers: tuple[ServerAddress, ...], key_prefix: str,
               rate: float = 0.0) -> RunPlan:
    weights = dict(options.mix)
    workload = Workload(keys=options.keys, value_min=options.value_size[0], value_max=options.value_size[1],
                        get_weight=weights.get("get", 0), set_weight=weights.get("set", 0), seed=options.seed,
                        key_prefix=key_prefix, mix=options.mix, distribution=options.distribution,
                        zipf_s=options.zipf_s)
    client = ClientConfig(servers=tuple(s.spec for s in servers), binary=options.binary, behaviors=options.behaviors,
                          options=options.client_options)
    return RunPlan(strategy=strategy, client=client, workload=workload, threads=options.threads,
                   processes=options.processes, pool_size=options.pool_size, relinquish=options.relinquish,
                   duration_s=options.duration_s, warmup_s=options.warmup_s,
                   hang_timeout_s=options.hang_timeout_s, import_path=options.import_path, rate=rate,
                   arrival=options.arrival, interval_s=options.interval_s, ops_per_request=options.ops_per_request,
                   go_at_unix=options.start_at_unix - options.warmup_s if options.start_at_unix else 0.0)


def execute(plan: RunPlan, listener: RunListener, live: Any = None) -> RunResult:
    """Bench one strategy to its end, or until Ctrl-C (the result says so; partial results are kept); with `live`
    (bench/metrics.py), its figures are published there as it runs."""
    raw = raw_latencies_path(plan.strategy)
    if live is None:
        stats = RunStats(interval_s=plan.interval_s, raw_latencies_path=raw)
    else:
        from mcpool_cli.bench.metrics import MeteredStats

        rate = f"{plan.rate:g}" if plan.rate else ""
        stats = MeteredStats(interval_s=plan.interval_s, raw_latencies_path=raw, live=live,
                             run_name=f"{plan.strategy}:{rate}", labels={"strategy": plan.strategy, "rate": rate})
    outcomes, interrupted = run_workers(plan, listener, stats)
    if live is not None:
        stats.publish()  # the whole run, as it ended
    result = RunResult.judged(plan, stats, outcomes, interrupted, explain)
    if plan.go_at_unix:
        result = dataclasses.replace(result, start_at_unix=plan.go_at_unix + plan.warmup_s)
    return result


RAW_LATENCIES_ENV = "MCPOOL_RAW_LATENCIES_DIR"  # a test hook: every measured op latency, to prove merges exact


def raw_latencies_path(strategy: str) -> str:
    """Where this process appends the raw op latencies it receives (int64 ns, little-endian), when the test hook
    MCPOOL_RAW_LATENCIES_DIR names a folder; "" otherwise."""
    folder = os.environ.get(RAW_LATENCIES_ENV)
    if not folder:
        return ""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in strategy)
    return os.path.join(folder, f"{os.getpid()}-{name}.i64")


@dataclass
class BenchSession(Session):
    """One `mcpool bench` invocation: each strategy in turn against the same servers."""

    KIND = KIND
    OPTIONS = BenchOptions
    RESULT = RunResult
    options: BenchOptions
    live: Any = None  # the live metrics endpoint (--metrics-port), when asked for

    def __post_init__(self) -> None:
        if self.options.run_id:
            self.run_id = self.options.run_id

    def run_one(self, strategy: str, listener: RunListener) -> bool:
        """One strategy: the closed loop, or each rate of the open model in turn (lowest first)."""
        for rate in self.options.rates or (0.0,):
            suffix = f"{rate:g}:" if rate else ""
            plan = build_plan(self.options, strategy, self.servers.addresses,
                              f"{self.key_prefix}{strategy}:{suffix}", rate)
            self.results.append(execute(plan, listener, self.live))
            if self.results[-1].interrupted:
                return True
        return False

    def extras(self) -> dict[str, Any]:
        """A sweep's verdicts per strategy (the highest rate sustained, the knee)."""
        if len(self.options.rates) < 2:
            return {}
        from mcpool_cli.bench.sweep import sweep

        return {"sweep": [one.to_json() for one in sweep(self.results, self.options.budget)]}

    def other_outputs(self) -> list[tuple[str, bytes, str, str]]:
        if not self.options.hdr_log:
            return []
        from mcpool_cli.report.hdrlog import interval_log

        return [(self.options.hdr_log, interval_log(self.to_json()).encode(), "--hdr-log", "the HdrHistogram log")]

    @classmethod
    def options_from_json(cls, data: dict[str, Any]) -> BenchOptions:
        """Options as saved; a document written before --mix has only the ratio, which was the mix."""
        known = fields_of(BenchOptions, data)
        for name in LOCAL_OPTIONS:
            known.pop(name, None)
        if "mix" not in known and known.get("ratio"):
            known["mix"] = (("get", known["ratio"][0]), ("set", known["ratio"][1]))
        return BenchOptions(**known)


from_json = BenchSession.from_json
