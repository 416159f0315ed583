"""Frozen run plans: what a worker process is asked to do, serializable to JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Workload:
    """The seeded key space, value sizes, key distribution and op mix of a run."""

    keys: int = 10_000
    value_min: int = 100
    value_max: int = 100
    get_weight: int = 9
    set_weight: int = 1
    seed: int = 0
    key_prefix: str = "mcpool:run:"
    ttl_s: int = 3600  # keys on a server mcpool did not start expire by themselves
    mix: tuple[tuple[str, int], ...] = ()  # (op, weight); when given, it replaces get_weight and set_weight
    distribution: str = "uniform"  # of key picks: uniform, or zipf (key k with probability ∝ 1/(k+1)^zipf_s)
    zipf_s: float = 1.0


@dataclass(frozen=True)
class ClientConfig:
    """How the master pylibmc.Client is built."""

    servers: tuple[str, ...]
    binary: bool = False
    behaviors: tuple[tuple[str, int | str], ...] = ()
    options: tuple[tuple[str, int | str], ...] = ()  # keyword arguments of another library's client


@dataclass(frozen=True)
class RunPlan:
    """One strategy run: `processes` workers, each with `threads` threads and its own pool."""

    strategy: str
    client: ClientConfig
    workload: Workload
    threads: int = 12
    processes: int = 1
    pool_size: int = 0  # FIFO pool size; 0 means one client per thread
    relinquish: bool = True
    duration_s: float = 10.0
    warmup_s: float = 1.0
    snapshot_interval_s: float = 0.25
    hang_timeout_s: float = 10.0
    import_path: tuple[str, ...] = ()  # prepended to sys.path in workers, for custom strategies
    mode: str = "bench"  # which loop the workers run: a mode in some kind's loop.MODES
    settings: tuple[tuple[str, float], ...] = ()  # numbers of the kind's own, read by its loop with `setting()`
    rate: float = 0.0  # ops per second offered by all workers' threads together (the open model); 0: closed loop
    arrival: str = "constant"  # the open model's gaps between intended starts: constant, or poisson
    interval_s: float = 1.0  # the timeline's interval: the parent files each batch under one
    ops_per_request: int = 10  # framework setups: ops of one request, then the framework's end-of-request step
    go_at_unix: float = 0.0  # bench --start-at: the wall-clock time before which the workers get no `go`
    label: str = ""  # what progress calls the run, when not its strategy (check-failover: the configuration)

    @property
    def name(self) -> str:
        return self.label or self.strategy

    @property
    def effective_pool_size(self) -> int:
        return self.pool_size or self.threads

    def setting(self, name: str, default: float = 0.0) -> float:
        """One of the kind's own numbers (check-leaks' churn, check-stale's rate), or `default`."""
        return dict(self.settings).get(name, default)


@dataclass(frozen=True)
class WorkerPlan:
    """A RunPlan as one worker process sees it."""

    run: RunPlan
    worker_index: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "WorkerPlan":
        raw = json.loads(text)
        run = dict(raw["run"])
        client = dict(run.pop("client"))
        client["servers"] = tuple(client["servers"])
        client["behaviors"] = tuple(tuple(pair) for pair in client["behaviors"])
        client["options"] = tuple(tuple(pair) for pair in client.get("options", ()))
        run["import_path"] = tuple(run["import_path"])
        run["settings"] = tuple(tuple(pair) for pair in run["settings"])
        workload = dict(run.pop("workload"))
        workload["mix"] = tuple(tuple(pair) for pair in workload["mix"])
        plan = RunPlan(client=ClientConfig(**client), workload=Workload(**workload), **run)
        return cls(run=plan, worker_index=raw["worker_index"])
