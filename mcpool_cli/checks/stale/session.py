"""`mcpool check-stale` as a library: steady load through each strategy while the parent injects a fault."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mcpool_cli.checks.stale.analysis import OverTime, StaleFigures, StaleStats, analyse, interval_for
from mcpool_cli.checks.stale.faults import DropFault, FreezeFault, IdleFault, RestartFault
from mcpool_cli.engine.faults import Fault, FaultTimes
from mcpool_cli.checks.stale.kind import KIND
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.runner import RunListener, run_workers
from mcpool_cli.engine.server import EmbeddedServer
from mcpool_cli.engine.session import ProxiedSession, fields_of
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
Behaviors = tuple[tuple[str, int | str], ...]  # pylibmc behaviors, (key, value) pairs


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
    client_options: tuple[tuple[str, int | str], ...] = ()  # keyword arguments of another library's client
    hang_timeout_s: float = 10.0
    ops_per_request: int = 10  # framework strategies: ops per request
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


def stale_verdict(outcome: str, figures: StaleFigures | None, bound_s: float) -> str:
    """recovered, false-misses, unexplained-errors, not-recovered, slow-recovery, no-fault, or how the worker
    ended. Errors during the fault and its outage are the point of the check; errors before the fault struck, or
    after the load had settled again, are not the fault's: they keep a run from `recovered`."""
    if outcome != "ok":  # crashed, hung, error, interrupted: the figures are partial
        return outcome
    if figures is None:
        return "no-fault"
    if figures.false_misses:
        return "false-misses"
    if figures.unexplained_errors:
        return "unexplained-errors"
    if figures.recovery_s is None:
        return "not-recovered"
    return "slow-recovery" if figures.recovery_s > bound_s else "recovered"


PYMEMCACHE_ERRORS = ("pymemcache-", "django-pymemcache")  # strategies whose calls raise pymemcache's errors


def stale_advice(verdict: str, figures: StaleFigures | None, bound_s: float, worker: WorkerOutcome,
                 strategy: str = "") -> str:
    """One line of advice on a verdict; for a run that did not finish, what stopped it."""
    if verdict == "false-misses":
        return ("Gets of keys that were there answered \"not found\" without an exception: code that treats a "
                "miss as \"compute and set\" does so silently. Check the server's health, not only the reply.")
    if verdict == "unexplained-errors":
        return (f"Calls failed with the server healthy ({figures.errors_before_fault if figures else 0} before the "
                f"fault, {figures.errors_after_settled if figures else 0} after the load had settled again): the "
                "fault does not explain them; fix what raises, then check again.")
    if verdict in ("not-recovered", "slow-recovery"):
        return (f"Calls still failed {bound_s:g} s after the server was back: lower retry_timeout, or "
                "recreate clients on ServerDown.")
    if verdict == "recovered" and figures is not None and figures.ops_failed and strategy.startswith(PYMEMCACHE_ERRORS):
        return ("Every call failed loudly until the client reconnected: catch pymemcache's MemcacheError and "
                "OSError around cache calls and fall back.")
    if verdict == "recovered" and figures is not None and figures.ops_failed:
        return ("Every call failed loudly until the client reconnected: catch pylibmc.Error around cache calls "
                "and fall back; a lower retry_timeout shortens the window.")
    if verdict == "recovered":
        return "Nothing failed: calls waited out the fault and went on."
    return f"The run did not finish ({worker.message or worker.signal or verdict})."


@dataclass(frozen=True)
class StaleCheck:
    """One strategy with one behavior set through the fault, judged once: verdict and advice are stored."""

    strategy: str
    variant: str
    behaviors: Behaviors
    fault: str
    outcome: str  # how its worker ended
    figures: StaleFigures | None  # None when the fault was not injected
    detail: str
    bound_s: float
    verdict: str
    advice: str
    over_time: OverTime | None = None  # None for a result saved before check-stale kept a timeline

    @classmethod
    def judged(cls, strategy: str, variant: str, behaviors: Behaviors, fault: str, worker: WorkerOutcome,
               figures: StaleFigures | None, detail: str, bound_s: float,
               over_time: OverTime | None = None) -> "StaleCheck":
        """The check of a run that just ended, with its verdict and advice worked out once."""
        verdict = stale_verdict(worker.outcome, figures, bound_s)
        return cls(strategy, variant, behaviors, fault, worker.outcome, figures, detail, bound_s, verdict,
                   stale_advice(verdict, figures, bound_s, worker, strategy), over_time)

    def to_json(self) -> dict[str, Any]:
        """The result's row: its figures, then (`interval_s`, `fault_at_s`, `back_at_s`, `intervals`) its timeline."""
        timeline = {} if self.over_time is None else self.over_time.to_json()
        figures = self.figures
        data: dict[str, Any] = {"strategy": self.strategy, "behaviors": dict(self.behaviors),
                                "variant": self.variant, "fault": self.fault, "verdict": self.verdict,
                                "outcome": self.outcome, "fault_detail": self.detail,
                                "recovery_bound_s": self.bound_s, "advice": self.advice}
        if figures is None:
            return {**data, "false_misses": None, "error_count": None, "errors": {}, "outage_s": None,
                    "recovery_s": None, **timeline}
        return {**data, **dataclasses.asdict(figures), "error_count": figures.error_count,
                "unexplained_errors": figures.unexplained_errors,
                "ops_failed": figures.ops_failed, "ops_lost": figures.ops_lost, **timeline}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "StaleCheck":
        """A saved result, as the object it was written from."""
        figures = None if row["false_misses"] is None else StaleFigures(**fields_of(  # older files: no unexplained
            StaleFigures, {"errors_before_fault": 0, "errors_after_settled": 0, **row}, True))
        return cls(str(row["strategy"]), str(row["variant"]), tuple(row["behaviors"].items()), str(row["fault"]),
                   str(row["outcome"]), figures, str(row["fault_detail"] or ""), float(row["recovery_bound_s"]),
                   str(row["verdict"]), str(row["advice"]), OverTime.from_json(row))


@dataclass
class StaleSession(ProxiedSession):
    """One `mcpool check-stale` invocation: each strategy with each behavior set in turn, through the fault."""

    KIND = KIND
    OPTIONS = StaleOptions
    RESULT = StaleCheck
    options: StaleOptions
    controlled: EmbeddedServer | None = None  # restart and idle: the server mcpool started and may restart

    def runs(self) -> dict[str, tuple[str, str, Behaviors]]:
        """Each run's name ("strategy · variant"), with its strategy, variant and behaviors."""
        return {f"{s} · {label}": (s, label, behaviors)
                for s in self.options.strategies for label, behaviors in self.options.variants}

    def names(self) -> tuple[str, ...]:
        return tuple(self.runs())

    def run_one(self, name: str, listener: RunListener) -> bool:
        strategy, label, behaviors = self.runs()[name]
        plan = self.plan(strategy, label, behaviors)
        fault = self.fault(plan)
        stats = StaleStats(interval_for(plan.duration_s))
        try:
            outcomes, interrupted = run_workers(plan, listener, stats, driver=fault)
        finally:
            self.undo(fault)
        times = fault.times if fault.happened else None
        figures = None if times is None else analyse(stats.total, times)
        self.results.append(StaleCheck.judged(strategy, label, behaviors, self.options.fault,
                                              worst_outcome(list(outcomes)), figures, fault.times.detail,
                                              self.options.recover_within_s,
                                              stats.over_time(times, self.load_s(plan, fault.times))))
        self.stopped_early = getattr(fault, "failure", "")
        return interrupted

    def plan(self, strategy: str, label: str, behaviors: Behaviors) -> RunPlan:
        options = self.options
        targets = [proxy.address for proxy in self.proxies] or list(self.servers.addresses)
        tag = "".join(c if c.isalnum() else "-" for c in f"{strategy}-{label}")
        return RunPlan(
            strategy=strategy, client=ClientConfig(servers=tuple(t.spec for t in targets), behaviors=behaviors,
                                                   options=options.client_options),
            workload=Workload(keys=options.keys, key_prefix=f"{self.key_prefix}stale:{tag}:", mix=options.mix),
            threads=options.threads, duration_s=options.before_s + options.fault_length_s
            + options.recover_within_s + SETTLE_S, warmup_s=0.0,
            hang_timeout_s=options.hang_timeout_s + options.longest_silence_s, import_path=options.import_path,
            ops_per_request=options.ops_per_request, mode="stale", settings=(("rate", options.rate),
                                    ("pause_at_s", options.before_s if options.fault == "idle" else 0.0)))

    def load_s(self, plan: RunPlan, times: FaultTimes) -> float | None:
        """How long the load ran as planned, from its start: the idle fault's pause adds to it (None when that
        pause never ended)."""
        if self.options.fault != "idle":
            return plan.duration_s
        return plan.duration_s + (times.back_ns - times.start_ns) / 1e9 if times.back_ns else None

    def fault(self, plan: RunPlan) -> Fault:
        options = self.options
        if options.fault == "restart":
            assert self.controlled is not None
            space = build_key_space(plan.workload)
            return RestartFault(options.before_s, self.controlled, options.outage_s,
                                dict(zip(space.keys, space.values)), plan.workload.ttl_s)
        if options.fault == "idle":
            return IdleFault(options.before_s, self.servers.addresses[0], options.idle_timeout_s,
                             options.idle_timeout_s + IDLE_MAX_WAIT_S)
        if options.fault == "drop":
            return DropFault(options.before_s, self.proxies)
        return FreezeFault(options.before_s, self.proxies, options.outage_s)

    def undo(self, fault: Fault) -> None:
        """Whatever happened to the run, leave the server up and the proxies forwarding for the next one."""
        for proxy in self.proxies:
            proxy.thaw()
        if isinstance(fault, RestartFault) and fault.state == "down":  # Ctrl-C or a crash while it was down
            assert self.controlled is not None
            self.controlled.start_again()

    def comparisons(self) -> list[str]:
        """For each strategy run with several behavior sets: which one shortened the outage."""
        lines = []
        for strategy in self.options.strategies:
            measured = [c for c in self.results if c.strategy == strategy and c.figures is not None
                        and c.figures.recovery_s is not None]
            if len(measured) >= 2:
                lines.append(compared_line(strategy, measured[0], min(measured, key=outage)))
        return lines

    def extras(self) -> dict[str, Any]:
        return {"stopped_early": self.stopped_early or None, "comparisons": self.comparisons()}


def outage(check: StaleCheck) -> float:
    return check.figures.outage_s if check.figures is not None else float("inf")


def compared_line(strategy: str, base: StaleCheck, best: StaleCheck) -> str:
    """Whether the best behavior set shortened the outage of the first (defaults, or the user's own)."""
    assert base.figures is not None and best.figures is not None
    if best is base or best.figures.outage_s >= base.figures.outage_s:
        return (f"{strategy}: no behavior set shortened the outage (with {base.variant}: "
                f"{base.figures.outage_s:.2f} s)")
    return (f"{strategy}: {best.variant} shortened the outage to {best.figures.outage_s:.2f} s "
            f"from {base.figures.outage_s:.2f} s with {base.variant}")


from_json = StaleSession.from_json
