"""`mcpool check-leaks` as a library: churn threads through each strategy, read the server, give a verdict."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli import __version__
from mcpool_cli.checks.races.session import CHECK_SCHEMA
from mcpool_cli.checks.leaks.loop import ChurnFigures, leak_verdict
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.runner import RunListener, run_in_turn, run_workers
from mcpool_cli.engine.server import ServerAddress

LEAK_DEFAULT = ("fifo", "thread-mapped", "per-thread")  # shared is left out: it crashes, and holds one client


@dataclass
class LeakStats:
    """Progress and the final figures of one churn, from the worker's snapshots."""

    completed: int = 0
    errors: Counter = field(default_factory=Counter)
    figures: ChurnFigures | None = None

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        self.completed += snap["completed"]
        if snap.get("kind") == "leaks":
            self.figures = ChurnFigures(**snap["figures"])

    def ok_ops(self) -> int:
        return self.completed


@dataclass(frozen=True)
class LeakOptions:
    strategies: tuple[str, ...]
    churn: int = 200
    concurrency: int = 20
    relinquish: bool = True
    hang_timeout_s: float = 10.0
    import_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeakCheck:
    strategy: str
    relinquish: bool
    outcome: WorkerOutcome
    figures: ChurnFigures | None

    @property
    def verdict_and_leaked(self) -> tuple[str, int]:
        if self.outcome.outcome != "ok" or self.figures is None:
            return self.outcome.outcome, 0
        return leak_verdict(self.figures)

    @property
    def verdict(self) -> str:
        return self.verdict_and_leaked[0]

    def advice(self) -> str:
        verdict = self.verdict
        if verdict == "leak":
            return ("Threads that end without relinquish() leave their clients, and connections, in the pool: call "
                    "pool.relinquish() in a finally before each thread ends, or use a FIFO pool.")
        if verdict == "churn":
            return ("Nothing leaks, but each thread opens connections of its own and closes them when it ends: fine "
                    "for long-lived threads; with a thread per request, use a pool so connections are reused.")
        if verdict == "clean":
            return "Connections are reused and nothing outlives its thread."
        return f"The churn did not finish ({self.outcome.message or self.outcome.signal or verdict})."

    def to_json(self) -> dict[str, Any]:
        verdict, leaked = self.verdict_and_leaked
        figures = self.figures.to_json() if self.figures else {}
        return {"strategy": self.strategy, "relinquish": self.relinquish, "verdict": verdict,
                "leaked_connections": leaked, "outcome": self.outcome.outcome, "advice": self.advice(), **figures}


@dataclass
class LeakSession:
    options: LeakOptions
    servers: tuple[ServerAddress, ...]
    embedded: bool
    server_version: str = ""
    run_id: str = ""
    checks: list[LeakCheck] = field(default_factory=list)
    interrupted: bool = False

    def run(self, listener: RunListener) -> None:
        def run_one(strategy: str) -> bool:
            stats = LeakStats()
            outcomes, interrupted = run_workers(self.plan(strategy), listener, stats)
            self.checks.append(LeakCheck(strategy, self.options.relinquish, worst_outcome(list(outcomes)),
                                         stats.figures))
            return interrupted

        self.interrupted = run_in_turn(self.options.strategies, run_one)

    def plan(self, strategy: str) -> RunPlan:
        options = self.options
        return RunPlan(strategy=strategy, client=ClientConfig(servers=tuple(s.spec for s in self.servers)),
                       workload=Workload(keys=1, key_prefix=f"mcpool:{self.run_id}:leaks:{strategy}:"),
                       threads=options.concurrency, relinquish=options.relinquish, duration_s=0.0, warmup_s=0.0,
                       hang_timeout_s=options.hang_timeout_s, import_path=options.import_path, mode="leaks",
                       churn=options.churn)

    def to_json(self) -> dict[str, Any]:
        return {"schema": CHECK_SCHEMA, "check": "leaks", "mcpool_version": __version__, "run_id": self.run_id,
                "interrupted": self.interrupted,
                "server": {"addresses": [s.spec for s in self.servers], "embedded": self.embedded,
                           "version": self.server_version},
                "options": {k: v for k, v in dataclasses.asdict(self.options).items() if k != "import_path"},
                "results": [check.to_json() for check in self.checks]}
