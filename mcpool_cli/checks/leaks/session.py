"""`mcpool check-leaks` as a library: churn threads through each strategy, read the server, give a verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mcpool_cli.checks.leaks.kind import KIND
from mcpool_cli.checks.leaks.loop import ChurnFigures
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.runner import RunListener, run_workers
from mcpool_cli.engine.session import Session

LEAK_DEFAULT = ("fifo", "thread-mapped", "per-thread")  # shared is left out: it crashes, and holds one client


@dataclass
class LeakStats:
    """Progress and the final figures of one churn, from the worker's snapshots."""

    completed: int = 0
    errors: Counter = field(default_factory=Counter)
    figures: ChurnFigures | None = None

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        self.completed += snap["completed"]
        self.figures = ChurnFigures.from_message(snap) or self.figures

    def ok_ops(self) -> int:
        return self.completed


@dataclass(frozen=True)
class LeakOptions:
    """Everything `mcpool check-leaks` was asked for, validated."""

    strategies: tuple[str, ...]
    churn: int = 200
    concurrency: int = 20
    relinquish: bool = True
    hang_timeout_s: float = 10.0
    ops_per_request: int = 10  # framework strategies: ops per request
    import_path: tuple[str, ...] = ()


def leak_verdict(figures: ChurnFigures) -> tuple[str, int]:
    """(verdict, leaked connections): `leak` when connections outlive their threads, `inconclusive` when calls
    raised in the churn threads (nothing is called clean on a churn that failed), `churn` when threads open
    connections of their own, else `clean`."""
    leaked = max(0, figures.after_connections - figures.baseline_connections - figures.standing_clients)
    if leaked > 0 or figures.dead_thread_clients > 0:
        return "leak", max(leaked, figures.dead_thread_clients)
    if figures.churn_errors:  # threads that raised may have skipped the very connections being counted
        return "inconclusive", 0
    if figures.connections_opened > figures.standing_clients + max(2, figures.threads_started // 10):
        return "churn", 0
    return "clean", 0


def time_wait_left(figures: ChurnFigures) -> int | None:
    """Sockets the churn added in TIME_WAIT to the servers (after less before); None when unknown."""
    if figures.time_wait_after is None:
        return None
    return figures.time_wait_after - (figures.time_wait_before or 0)


def piles_up_time_wait(figures: ChurnFigures) -> bool:
    """Whether threads open a connection each (half a connection a thread or more) and the churn left client
    sockets in TIME_WAIT (10 or more). Not most of the connections opened: libmemcached sends `quit` before it
    closes, and on loopback the server's close often wins the race, so that connection's TIME_WAIT is on the
    server's side (from a tenth to nine tenths were the client's in runs here)."""
    left = time_wait_left(figures)
    return (figures.connections_per_thread or 0) >= 0.5 and left is not None and left >= 10


def time_wait_advice(figures: ChurnFigures) -> str:
    """What a connection per request and its pile of TIME_WAIT sockets mean, in plain words, and what to change."""
    return (f"Nothing leaks, but each thread opened connections of its own and closed them as it ended: "
            f"{time_wait_left(figures):,} client sockets were left in TIME_WAIT, each holding a local port for about "
            "a minute. A connection per request (a thread per request, or a cache closed on every request, as Django "
            "does on request_finished) runs a busy process out of local ports: \"[Errno 99] Cannot assign requested "
            "address\". Reuse connections: keep clients in a pool that outlives requests; do not close them per "
            "request.")


def leak_advice(verdict: str, outcome: WorkerOutcome, figures: ChurnFigures | None = None) -> str:
    """One line of advice for a verdict; for a churn that did not finish, how its worker ended; for a churn that
    piled up TIME_WAIT sockets, what that means."""
    if verdict == "leak":
        return ("Threads that end without relinquish() leave their clients, and connections, in the pool: call "
                "pool.relinquish() in a finally before each thread ends, or use a FIFO pool.")
    if verdict == "churn" and figures is not None and piles_up_time_wait(figures):
        return time_wait_advice(figures)
    if verdict == "churn":
        return ("Nothing leaks, but each thread opens connections of its own and closes them when it ends: fine "
                "for long-lived threads; with a thread per request, use a pool so connections are reused.")
    if verdict == "clean":
        return "Connections are reused and nothing outlives its thread."
    if verdict == "inconclusive":
        return ("Calls raised in the churn threads with the server up (see churn_error_sites): fix what raises and "
                "check again; a churn is called clean only when every thread's calls succeeded.")
    return f"The churn did not finish ({outcome.message or outcome.signal or verdict})."


@dataclass(frozen=True)
class LeakCheck:
    """The verdict on one strategy's churn, judged once and stored with its figures."""

    strategy: str
    relinquish: bool
    outcome: str  # how the worker ended: ok, crashed, hung, error, interrupted
    figures: ChurnFigures | None
    verdict: str
    leaked: int
    advice: str

    @classmethod
    def judged(cls, strategy: str, relinquish: bool, outcome: WorkerOutcome,
               figures: ChurnFigures | None) -> "LeakCheck":
        """The check of one churn: its verdict, leaked connections and advice, decided here once."""
        if outcome.outcome != "ok" or figures is None:
            verdict, leaked = outcome.outcome, 0
        else:
            verdict, leaked = leak_verdict(figures)
        advice = leak_advice(verdict, outcome, figures)
        return cls(strategy, relinquish, outcome.outcome, figures, verdict, leaked, advice)

    def to_json(self) -> dict[str, Any]:
        figures = self.figures.to_json() if self.figures else {}
        return {"strategy": self.strategy, "relinquish": self.relinquish, "verdict": self.verdict,
                "leaked_connections": self.leaked, "outcome": self.outcome, "advice": self.advice, **figures}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "LeakCheck":
        """A saved result, as judged when it ran; figures only when the churn reported them."""
        figures = ChurnFigures.from_json(row) if "threads_started" in row else None
        return cls(str(row["strategy"]), bool(row["relinquish"]), str(row["outcome"]), figures,
                   str(row["verdict"]), int(row["leaked_connections"]), str(row["advice"]))


@dataclass
class LeakSession(Session):
    """One `mcpool check-leaks` invocation: a churn through each strategy in turn."""

    KIND = KIND
    OPTIONS = LeakOptions
    RESULT = LeakCheck
    options: LeakOptions

    def run_one(self, strategy: str, listener: RunListener) -> bool:
        stats = LeakStats()
        outcomes, interrupted = run_workers(self.plan(strategy), listener, stats)
        self.results.append(LeakCheck.judged(strategy, self.options.relinquish, worst_outcome(list(outcomes)),
                                             stats.figures))
        return interrupted

    def plan(self, strategy: str) -> RunPlan:
        """The churn worker's plan: at most `concurrency` threads alive, `churn` of them in all."""
        options = self.options
        return RunPlan(strategy=strategy, client=ClientConfig(servers=tuple(s.spec for s in self.servers.addresses)),
                       workload=Workload(keys=1, key_prefix=f"{self.key_prefix}leaks:{strategy}:"),
                       threads=options.concurrency, relinquish=options.relinquish, duration_s=0.0, warmup_s=0.0,
                       hang_timeout_s=options.hang_timeout_s, import_path=options.import_path, mode="leaks",
                       settings=(("churn", options.churn),), ops_per_request=options.ops_per_request)


from_json = LeakSession.from_json
