"""`mcpool check-races` as a library: trials in isolated workers, anomalies merged, a verdict per strategy."""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli.checks.races.kind import KIND
from mcpool_cli.checks.races.loop import RaceBatch, as_text
from mcpool_cli.checks.races.stamps import ANOMALIES, add_site, verdict
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.runner import RunListener, run_workers
from mcpool_cli.engine.server import ServerAddress, server_stats
from mcpool_cli.engine.session import Session, fields_of
from mcpool_cli.engine.strategies import is_custom

FORK = "fork"  # the strategy name under which the fork-safety check is reported
MAX_EXAMPLES = 5


def example_from_json(example: dict[str, Any]) -> dict[str, Any]:
    """A saved example; `got` as text, as RaceBatch.note writes it. Files written before it was text hold a
    Python repr ("None", "b'...'"): read back as the reply it was."""
    got = example.get("got")
    if isinstance(got, str) and (got == "None" or got[:2] in ("b'", 'b"') or got[:1] in ("'", '"')):
        try:
            got = as_text(ast.literal_eval(got))
        except (ValueError, SyntaxError):
            pass  # text that only looks like a repr
    return {**{str(k): str(v) for k, v in example.items()}, "got": None if got is None else str(got)}


def counts(mapping: dict[str, Any]) -> Counter:
    return Counter({str(name): int(count) for name, count in mapping.items() if count})


@dataclass
class RaceStats:
    """One trial's anomalies, merged from the worker's snapshots as they arrive."""

    completed: int = 0
    checked: int = 0
    anomalies: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)
    first_anomaly_s: float | None = None
    error_sites: dict[str, int] = field(default_factory=dict)  # where the errors were raised, capped
    library_errors: int = 0  # errors raised inside the client library, that only concurrency explains

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        batch = RaceBatch.from_message(snap)
        self.completed += batch.ops
        self.checked += batch.checked
        self.anomalies.update(batch.anomalies)
        self.errors.update(batch.errors)
        for site, count in batch.error_sites.items():
            add_site(self.error_sites, site, count)
        self.library_errors += batch.library_errors
        self.examples += batch.examples[: MAX_EXAMPLES - len(self.examples)]
        first = snap["first_anomaly_s"]
        if first is not None and (self.first_anomaly_s is None or first < self.first_anomaly_s):
            self.first_anomaly_s = first

    def ok_ops(self) -> int:
        return self.completed


@dataclass(frozen=True)
class Trial:
    index: int
    outcome: WorkerOutcome
    stats: RaceStats
    evictions: int  # during the trial, on the servers: false misses may be evictions when this is not 0
    flushed: bool = False  # someone flushed or restarted a server during the trial

    @property
    def counted_anomalies(self) -> Counter:
        """Anomalies that count toward the verdict: misses are not evidence when the server lost items."""
        counted = Counter(self.stats.anomalies)
        if self.evictions or self.flushed:
            counted.pop("false_miss", None)
        return counted

    @property
    def server_event(self) -> bool:
        """The server lost items, was flushed or restarted: misses and errors may be its doing."""
        return bool(self.evictions or self.flushed)

    @property
    def unexplained_errors(self) -> int:
        """Failed calls that count toward the verdict: none when a server event may explain them."""
        return 0 if self.server_event else sum(self.stats.errors.values())

    @property
    def counted_library_errors(self) -> int:
        """Of those, the ones raised inside the client library, that only concurrency explains."""
        return 0 if self.server_event else self.stats.library_errors

    def to_json(self) -> dict[str, Any]:
        outcome = self.outcome
        return {"trial": self.index, "outcome": outcome.outcome, "signal": outcome.signal,
                "stderr_tail": outcome.stderr_tail, "message": outcome.message, "lifetime_s": outcome.lifetime_s, "ops": self.stats.completed, "checked": self.stats.checked,
                "anomalies": {name: self.stats.anomalies.get(name, 0) for name in ANOMALIES},
                "errors": dict(self.stats.errors), "error_sites": dict(self.stats.error_sites),
                "library_errors": self.stats.library_errors, "examples": self.stats.examples,
                "first_anomaly_s": self.stats.first_anomaly_s, "evictions": self.evictions, "flushed": self.flushed}

    @classmethod
    def from_json(cls, trial: dict[str, Any]) -> "Trial":
        stats = RaceStats(completed=int(trial["ops"]), checked=int(trial["checked"]),
                          anomalies=counts(trial["anomalies"]), errors=counts(trial["errors"]),
                          examples=[example_from_json(e) for e in trial.get("examples") or ()],
                          first_anomaly_s=trial["first_anomaly_s"], error_sites=dict(counts(trial.get("error_sites") or {})),
                          library_errors=int(trial.get("library_errors", 0)))
        outcome = WorkerOutcome(**fields_of(WorkerOutcome, trial))
        return cls(int(trial["trial"]), outcome, stats, int(trial["evictions"]), bool(trial["flushed"]))


@dataclass(frozen=True)
class RaceOptions:
    strategies: tuple[str, ...]
    threads: int = 8
    duration_s: float = 5.0
    trials: int = 3
    seed: int = 0
    hang_timeout_s: float = 10.0
    fork: bool = False
    ops_per_request: int = 10  # framework strategies: ops per request
    import_path: tuple[str, ...] = ()


class TrialFigures:
    """Figures summed over the trials of one strategy (a mixin: the class has `trials`)."""

    trials: tuple[Trial, ...]

    @property
    def anomalies(self) -> Counter:
        total: Counter = Counter({name: 0 for name in ANOMALIES})
        for trial in self.trials:
            total.update(trial.stats.anomalies)
        return total

    @property
    def errors(self) -> Counter:
        return sum((t.stats.errors for t in self.trials), Counter())

    @property
    def error_sites(self) -> dict[str, int]:
        """Where the errors of every trial were raised, most frequent first, capped as each trial's are."""
        sites: dict[str, int] = {}
        for trial in self.trials:
            for site, count in trial.stats.error_sites.items():
                add_site(sites, site, count)
        return dict(sorted(sites.items(), key=lambda item: -item[1]))

    @property
    def unexplained_errors(self) -> int:
        return sum(t.unexplained_errors for t in self.trials)

    @property
    def library_errors(self) -> int:
        return sum(t.counted_library_errors for t in self.trials)

    @property
    def first_anomaly_s(self) -> float | None:
        firsts = [t.stats.first_anomaly_s for t in self.trials if t.stats.first_anomaly_s is not None]
        return min(firsts) if firsts else None


@dataclass(frozen=True)
class Evidence(TrialFigures):
    """What the trials of one strategy showed, and the judgement it supports; `StrategyCheck.judged` asks once."""

    strategy: str
    trials: tuple[Trial, ...]

    @property
    def counted(self) -> int:
        """Anomalies that count toward the verdict, over every trial."""
        return sum(sum(t.counted_anomalies.values()) for t in self.trials)

    @property
    def verdict(self) -> str:
        return verdict([t.outcome.outcome for t in self.trials], self.counted,
                       sum(t.stats.checked for t in self.trials), self.unexplained_errors,
                       sum(t.stats.completed for t in self.trials), self.library_errors)

    @property
    def affected(self) -> int:
        return sum(1 for t in self.trials if t.outcome.outcome != "ok" or t.stats.anomalies
                   or t.counted_library_errors)

    def examples(self) -> list[dict[str, str]]:
        return [e for t in self.trials for e in t.stats.examples][:MAX_EXAMPLES]

    def summary(self) -> str:
        """One line, e.g. `crashed in 3/3 trials: SIGABRT — double free or corruption`."""
        count = f"{self.affected}/{len(self.trials)} trials"
        first = f", first anomaly after {self.first_anomaly_s * 1000:.1f} ms" if self.first_anomaly_s is not None else ""
        if self.verdict in ("crashed", "hung", "error"):
            count = f"{sum(t.outcome.outcome == self.verdict for t in self.trials)}/{len(self.trials)} trials"
            bad = worst_outcome([t.outcome for t in self.trials if t.outcome.outcome == self.verdict])
            detail = bad.signal or bad.message or ""
            words = f" — {bad.stderr_tail}" if self.verdict == "crashed" and bad.stderr_tail else ""
            when = f" ({bad.lifetime_s:.1f} s after its worker started)" if self.verdict == "crashed" else ""
            return f"{self.verdict} in {count}: {detail}{words}{when}{first}"
        sites = self.error_sites
        where = f" — {next(iter(sites))}" if sites else ""
        if self.strategy in SHARED_ADVICE and self.verdict in ("racy", "crashed", "hung"):
            return SHARED_ADVICE[self.strategy]
        if self.verdict == "racy" and not self.counted:
            return (f"{self.library_errors:,} errors raised inside the client library in {count}, with a healthy "
                    f"server: only concurrency explains them{where}")
        if self.verdict == "racy":
            return f"anomalies in {count}{first}"
        if self.verdict == "interrupted":
            return f"interrupted after {len(self.trials)} trial(s): no anomaly in what ran, which proves nothing"
        if self.verdict == "inconclusive":
            checked = sum(t.stats.checked for t in self.trials)
            return (f"inconclusive: {checked:,} replies checked, {self.unexplained_errors:,} calls failed with "
                    f"no server event to explain them{where} — no evidence to call it safe")
        return f"no anomaly in {len(self.trials)} trial(s)"

    def advice(self) -> str:
        if self.verdict == "safe":
            return "Held up: no thread saw another's reply. Keep sharing clients this way."
        if self.strategy == FORK:
            return ("Never use a client connected before fork(): create clients in each worker after the fork "
                    "(a post-fork hook, or lazily on first use).")
        if self.strategy in SHARED_ADVICE and self.verdict in ("racy", "crashed", "hung"):
            return SHARED_ADVICE[self.strategy]
        if self.verdict == "racy" and not self.counted:
            return ("The client library raised errors from its own code while the server was healthy, as a client "
                    "two threads use at once does: give each thread its own client, or lend each client to one "
                    "thread at a time (a queue, as pylibmc.ClientPool does).")
        if self.strategy == "shared":
            return "Threads share one pylibmc.Client: give each thread its own (mc.clone()) or use a pool."
        if self.verdict == "error":
            return "A trial stopped with a Python error; fix it and check again."
        if self.verdict == "inconclusive" and self.unexplained_errors and sum(t.stats.checked for t in self.trials):
            return ("Calls failed with the server healthy: see where (error_sites), fix what raises, and check "
                    "again; a strategy is called safe only when no call fails unexplained.")
        if self.verdict in ("inconclusive", "interrupted"):
            return "Check again: make sure the strategy hands out working clients, and let every trial finish."
        if is_custom(self.strategy) and not sum(self.anomalies.values()):
            return ("No wrong reply was seen: look for a deadlock or an exhausted pool (hung), or at the worker's "
                    "last words on stderr (crashed).")
        if is_custom(self.strategy):
            return ("Two threads held one client at once: make reserve() lend each client to one thread at a "
                    "time (a queue, as pylibmc.ClientPool does) or give each thread its own clone().")
        return "This strategy let two users hold one client at once."


SHARED_ADVICE = {  # what to use instead of one client of another library shared by every thread
    "pymemcache-shared": "Threads share one pymemcache Client, which is not thread-safe: use PooledClient "
                         "(pymemcache-pooled) or a Client per thread.",
    "pymemcache-hash": "Threads share one pymemcache HashClient without pooling: its clients and its dead-server "
                       "list are not thread-safe; pass use_pooling=True (pymemcache-hash-pooled).",
}


@dataclass(frozen=True)
class StrategyCheck(TrialFigures):
    """The verdict on one strategy over all its trials, judged once and stored with them."""

    strategy: str
    trials: tuple[Trial, ...]
    verdict: str
    affected: int
    summary: str
    advice: str
    examples: tuple[dict[str, str], ...]

    @classmethod
    def judged(cls, strategy: str, trials: tuple[Trial, ...]) -> "StrategyCheck":
        evidence = Evidence(strategy, trials)
        return cls(strategy, trials, evidence.verdict, evidence.affected, evidence.summary(), evidence.advice(),
                   tuple(evidence.examples()))

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "verdict": self.verdict, "summary": self.summary,
                "advice": self.advice, "trials_affected": self.affected,
                "trials": [t.to_json() for t in self.trials], "first_anomaly_s": self.first_anomaly_s,
                "anomalies": dict(self.anomalies), "anomaly_count": sum(self.anomalies.values()),
                "errors": dict(self.errors), "error_sites": self.error_sites,
                "unexplained_errors": self.unexplained_errors, "library_errors": self.library_errors,
                "examples": list(self.examples)}

    @classmethod
    def from_json(cls, r: dict[str, Any]) -> "StrategyCheck":
        return cls(str(r["strategy"]), tuple(Trial.from_json(t) for t in r["trials"]), str(r["verdict"]),
                   int(r["trials_affected"]), str(r["summary"]), str(r["advice"]),
                   tuple(example_from_json(e) for e in r["examples"]))


def server_marks(servers: tuple[ServerAddress, ...]) -> tuple[int, int, tuple[str, ...]]:
    """(evictions, flushes, pids) summed over the servers, to tell afterwards whether they lost items."""
    evicted = flushed = 0
    pids = []
    for server in servers:
        try:
            stats = server_stats(server)
        except OSError:
            pids.append("?")
            continue
        evicted += int(stats.get("evictions", 0))
        flushed += int(stats.get("cmd_flush", 0))
        pids.append(stats.get("pid", "?"))
    return evicted, flushed, tuple(pids)


def trial_plan(options: RaceOptions, strategy: str, servers: tuple[ServerAddress, ...], prefix: str) -> RunPlan:
    return RunPlan(strategy=strategy, client=ClientConfig(servers=tuple(s.spec for s in servers)),
                   workload=Workload(keys=1, seed=options.seed, key_prefix=prefix), threads=options.threads,
                   duration_s=options.duration_s, warmup_s=0.0, hang_timeout_s=options.hang_timeout_s,
                   import_path=options.import_path, mode="races-fork" if strategy == FORK else "races",
                   ops_per_request=options.ops_per_request)


@dataclass
class RaceSession(Session):
    """One `mcpool check-races` invocation: trials of each strategy in turn."""

    KIND = KIND
    OPTIONS = RaceOptions
    RESULT = StrategyCheck
    options: RaceOptions

    def run_one(self, strategy: str, listener: RunListener) -> bool:
        trials: list[Trial] = []
        try:
            for index in range(1, self.options.trials + 1):
                trial, interrupted = self.trial(strategy, index, listener)
                trials.append(trial)
                if interrupted:
                    return True
            return False
        finally:  # the trials that ran are reported, even when Ctrl-C came between two of them
            self.results.append(StrategyCheck.judged(strategy, tuple(trials)))

    def trial(self, strategy: str, index: int, listener: RunListener) -> tuple[Trial, bool]:
        """One trial in a fresh worker, with the server's evictions, flushes and restarts around it."""
        addresses = self.servers.addresses
        plan = trial_plan(self.options, strategy, addresses, f"{self.key_prefix}races:{strategy}:{index}:")
        before = server_marks(addresses)
        stats = RaceStats()
        outcomes, interrupted = run_workers(plan, listener, stats)
        after = server_marks(addresses)
        flushed = after[1] != before[1] or after[2] != before[2]  # a flush_all, or a restart
        return Trial(index, worst_outcome(list(outcomes)), stats, after[0] - before[0], flushed), interrupted


from_json = RaceSession.from_json
