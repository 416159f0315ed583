"""`mcpool check-stale` as a library: steady load through each strategy while the parent injects a fault."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli import __version__
from mcpool_cli.checks.races.session import CHECK_SCHEMA
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.runner import RunListener, run_in_turn, run_workers
from mcpool_cli.engine.server import EmbeddedServer, ServerAddress
from mcpool_cli.checks.stale.faults import (DropFault, Fault, FreezeFault, IdleFault, RestartFault, StaleFigures, StaleStats,
                              analyse)
from mcpool_cli.engine.workload import build_key_space

STALE_DEFAULT = ("fifo", "thread-mapped", "per-thread")
DEFAULT_MIX = (("get", 7), ("get_multi", 2), ("set", 1))
BEHAVIOR_PRESETS: tuple[tuple[str, tuple[tuple[str, int | str], ...]], ...] = (
    ("defaults", ()),
    ("retry_timeout=1", (("retry_timeout", 1),)),
    ("remove_failed=1,dead_timeout=1", (("remove_failed", 1), ("dead_timeout", 1))),
)
IDLE_MAX_WAIT_S = 15.0  # beyond idle_timeout: memcached sweeps idle connections every few seconds
SETTLE_S = 0.5  # load kept after the recovery bound, so a recovery just inside it is seen


@dataclass(frozen=True)
class StaleOptions:
    strategies: tuple[str, ...]
    fault: str = "restart"
    outage_s: float = 1.0
    idle_timeout_s: int = 1
    threads: int = 8
    rate: float = 200.0
    keys: int = 1000
    mix: tuple[tuple[str, int], ...] = DEFAULT_MIX
    before_s: float = 1.0
    recover_within_s: float = 5.0
    behaviors: tuple[tuple[str, int | str], ...] = ()
    compare_behaviors: bool = False
    hang_timeout_s: float = 10.0
    import_path: tuple[str, ...] = ()

    @property
    def variants(self) -> tuple[tuple[str, tuple[tuple[str, int | str], ...]], ...]:
        """(label, behaviors) to run each strategy with: the user's own, or the presets compared on top."""
        own = ",".join(f"{k}={v}" for k, v in self.behaviors)
        if not self.compare_behaviors:
            return ((own or "defaults", self.behaviors),)
        return tuple((f"{own}+{label}" if own and preset else own or label, (*self.behaviors, *preset))
                     for label, preset in BEHAVIOR_PRESETS)

    @property
    def fault_length_s(self) -> float:
        """How long the fault itself may last: the load runs through it (the idle pause is added by the
        workers themselves, as only the parent knows when it ends)."""
        return {"restart": self.outage_s + 3.5, "freeze": self.outage_s, "drop": 0.0, "idle": 0.0}[self.fault]

    @property
    def longest_silence_s(self) -> float:
        """How long workers may go without progress because of the fault."""
        return self.fault_length_s + (self.idle_timeout_s + IDLE_MAX_WAIT_S if self.fault == "idle" else 0.0)


@dataclass(frozen=True)
class StaleCheck:
    strategy: str
    variant: str
    behaviors: tuple[tuple[str, int | str], ...]
    fault: str
    outcome: WorkerOutcome
    figures: StaleFigures | None
    detail: str
    bound_s: float

    @property
    def verdict(self) -> str:
        if self.outcome.outcome != "ok":  # crashed, hung, error, interrupted: the figures are partial
            return self.outcome.outcome
        if self.figures is None:
            return "no-fault"
        if self.figures.false_misses:
            return "false-misses"
        if self.figures.recovery_s is None:
            return "not-recovered"
        if self.figures.recovery_s > self.bound_s:
            return "slow-recovery"
        return "recovered"

    def advice(self) -> str:
        verdict, figures = self.verdict, self.figures
        if verdict == "false-misses":
            return ("Gets of keys that were there answered \"not found\" without an exception: code that treats a "
                    "miss as \"compute and set\" does so silently. Check the server's health, not only the reply.")
        if verdict in ("not-recovered", "slow-recovery"):
            return (f"Calls still failed {self.bound_s:g} s after the server was back: lower retry_timeout, or "
                    "recreate clients on ServerDown.")
        if verdict == "recovered" and figures is not None and figures.ops_failed:
            return ("Every call failed loudly until the client reconnected: catch pylibmc.Error around cache calls "
                    "and fall back; a lower retry_timeout shortens the window.")
        if verdict == "recovered":
            return "Nothing failed: calls waited out the fault and went on."
        return f"The run did not finish ({self.outcome.message or self.outcome.signal or verdict})."

    def to_json(self) -> dict[str, Any]:
        figures = self.figures
        data: dict[str, Any] = {"strategy": self.strategy, "behaviors": dict(self.behaviors),
                                "variant": self.variant, "fault": self.fault, "verdict": self.verdict,
                                "outcome": self.outcome.outcome, "fault_detail": self.detail,
                                "recovery_bound_s": self.bound_s, "advice": self.advice()}
        if figures is None:
            return {**data, "false_misses": None, "error_count": None, "errors": {}, "outage_s": None,
                    "recovery_s": None}
        return {**data, **dataclasses.asdict(figures), "error_count": figures.error_count,
                "ops_failed": figures.ops_failed, "ops_lost": figures.ops_lost}


@dataclass
class StaleSession:
    options: StaleOptions
    servers: tuple[ServerAddress, ...]  # the real servers
    embedded: EmbeddedServer | None  # restart and idle: the server mcpool started and controls
    server_version: str = ""
    started_here: bool = True
    run_id: str = ""
    proxies: list[Any] = field(default_factory=list)  # drop and freeze go through these
    checks: list[StaleCheck] = field(default_factory=list)
    interrupted: bool = False
    broken: str = ""  # why the session stopped early: the server could not be started again

    def run(self, listener: RunListener) -> None:
        runs = {f"{s} · {label}": (s, label, behaviors)
                for s in self.options.strategies for label, behaviors in self.options.variants}

        def run_one(name: str) -> bool:
            strategy, label, behaviors = runs[name]
            plan = self.plan(strategy, label, behaviors)
            fault = self.fault(plan)
            stats = StaleStats()
            try:
                outcomes, interrupted = run_workers(plan, listener, stats, driver=fault)
            finally:
                self.undo(fault)
            figures = analyse(stats.total, fault.times) if fault.happened else None
            self.checks.append(StaleCheck(strategy, label, behaviors, self.options.fault,
                                          worst_outcome(list(outcomes)), figures, fault.times.detail,
                                          self.options.recover_within_s))
            self.broken = getattr(fault, "failure", "")
            return interrupted or bool(self.broken)

        self.interrupted = run_in_turn(tuple(runs), run_one) and not self.broken

    def plan(self, strategy: str, label: str, behaviors: tuple[tuple[str, int | str], ...]) -> RunPlan:
        options = self.options
        targets = [proxy.address for proxy in self.proxies] or list(self.servers)
        tag = "".join(c if c.isalnum() else "-" for c in f"{strategy}-{label}")
        return RunPlan(
            strategy=strategy, client=ClientConfig(servers=tuple(t.spec for t in targets), behaviors=behaviors),
            workload=Workload(keys=options.keys, key_prefix=f"mcpool:{self.run_id}:stale:{tag}:", mix=options.mix),
            threads=options.threads, duration_s=options.before_s + options.fault_length_s
            + options.recover_within_s + SETTLE_S, warmup_s=0.0,
            hang_timeout_s=options.hang_timeout_s + options.longest_silence_s, import_path=options.import_path,
            mode="stale", rate=options.rate, pause_at_s=options.before_s if options.fault == "idle" else 0.0)

    def fault(self, plan: RunPlan) -> Fault:
        options = self.options
        if options.fault == "restart":
            assert self.embedded is not None
            space = build_key_space(plan.workload)
            return RestartFault(options.before_s, self.embedded, options.outage_s,
                                dict(zip(space.keys, space.values)), plan.workload.ttl_s)
        if options.fault == "idle":
            return IdleFault(options.before_s, self.servers[0], options.idle_timeout_s,
                             options.idle_timeout_s + IDLE_MAX_WAIT_S)
        if options.fault == "drop":
            return DropFault(options.before_s, self.proxies)
        return FreezeFault(options.before_s, self.proxies, options.outage_s)

    def undo(self, fault: Fault) -> None:
        """Whatever happened to the run, leave the server up and the proxies forwarding for the next one."""
        for proxy in self.proxies:
            proxy.thaw()
        if isinstance(fault, RestartFault) and fault.state == "down":  # Ctrl-C or a crash while it was down
            assert self.embedded is not None
            self.embedded.start_again()

    def comparisons(self) -> list[str]:
        """For each strategy run with several behavior sets: which one shortened the outage."""
        lines = []
        for strategy in self.options.strategies:
            measured = [c for c in self.checks if c.strategy == strategy and c.figures is not None
                        and c.figures.recovery_s is not None]
            if len(measured) < 2:
                continue
            base = measured[0]  # the first variant: libmemcached's defaults, or the user's own behaviors
            best = min(measured, key=lambda c: c.figures.outage_s)  # type: ignore[union-attr]
            if best is base or best.figures.outage_s >= base.figures.outage_s:  # type: ignore[union-attr]
                lines.append(f"{strategy}: no behavior set shortened the outage (with {base.variant}: "
                             f"{base.figures.outage_s:.2f} s)")  # type: ignore[union-attr]
            else:
                lines.append(f"{strategy}: {best.variant} shortened the outage to {best.figures.outage_s:.2f} s "
                             f"from {base.figures.outage_s:.2f} s with {base.variant}")  # type: ignore[union-attr]
        return lines

    def to_json(self) -> dict[str, Any]:
        options = dataclasses.asdict(self.options)
        options.pop("import_path")
        return {"schema": CHECK_SCHEMA, "check": "stale", "mcpool_version": __version__, "run_id": self.run_id,
                "interrupted": self.interrupted, "stopped_early": self.broken or None,
                "server": {"addresses": [s.spec for s in self.servers], "embedded": self.started_here,
                           "version": self.server_version,
                           "proxies": [p.address.spec for p in self.proxies]},
                "options": options, "comparisons": self.comparisons(),
                "results": [check.to_json() for check in self.checks]}
