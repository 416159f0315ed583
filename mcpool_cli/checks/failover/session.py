"""`mcpool check-failover` as a library: each client configuration in turn, under steady load over several
nodes, while one node fails and comes back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mcpool_cli.checks.failover.analysis import (FailoverFigures, FailoverStats, Moments, RouteProbe, Routing,
                                                 analyse, interval_for, over_time)
from mcpool_cli.checks.failover.configs import Config, close_client, parse_config, route_client
from mcpool_cli.checks.failover.faults import NodeFault
from mcpool_cli.checks.failover.kind import KIND
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
from mcpool_cli.engine.runner import RunListener, run_workers
from mcpool_cli.engine.session import ProxiedSession, fields_of
from mcpool_cli.engine.workload import key_name

PROBE_KEYS = 600
STALL_S = 1.0
ROUTED = ("stuck", "reshuffled")  # verdicts read off where the proxies saw keys go  # an op on the failed node's keys this long: callers waited on the node instead of failing over


@dataclass(frozen=True)
class FailoverOptions:
    configs: tuple[str, ...]
    fault: str = "kill"
    node: int = 1  # which node fails, from 1
    nodes: int = 3  # embedded nodes (the given servers otherwise)
    outage_s: float = 3.0
    before_s: float = 2.0
    after_s: float = 5.0
    rejoin: str = "kept"  # kept: the node comes back with its data; empty: this run's keys deleted first
    strategy: str = "per-thread"  # how pylibmc configurations' threads get a client
    threads: int = 8
    rate: float = 200.0
    keys: int = 1000
    mix: tuple[tuple[str, int], ...] = (("get", 8), ("set", 2))
    hang_timeout_s: float = 10.0
    import_path: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.before_s + self.outage_s + self.after_s

    @property
    def write_share(self) -> float:
        weights = dict(self.mix)
        total = sum(weights.values())
        return weights.get("set", 0) / total if total else 0.0


VERDICT_WORDS = {
    "transparent": "errors only while the client noticed the failure, then misses of the failed node's keys only, "
                   "and the node fully used again once back",
    "inconsistent": "reads returned values older than ones already written (stale) or another key's",
    "errors": "callers got exceptions late in the outage, at the load's end, or with every node healthy",
    "stalled": "calls on the failed node's keys waited on it instead of failing over",
    "stuck": "the node was back, but the clients did not all send it keys again",
    "reshuffled": "keys of nodes that never failed were missed: the client remapped them",
    "inconclusive": "the run could not show the configuration safe",
}


def failover_verdict(outcome: str, figures: FailoverFigures | None, outage_s: float) -> tuple[str, list[str]]:
    """The verdict, worst finding first, and every finding in words (the evidence behind it)."""
    if outcome != "ok":
        return outcome, []
    if figures is None:
        return "no-fault", []
    findings = [(verdict, words) for verdict, words in judged_findings(figures, outage_s) if words
                and not (figures.unread_connections and verdict in ROUTED)]  # routing seen in part: no evidence
    if findings:
        return findings[0][0], [words for _, words in findings]
    missing = missing_evidence(figures)
    if missing:
        return "inconclusive", missing
    return "transparent", []


def judged_findings(f: FailoverFigures, outage_s: float) -> list[tuple[str, str]]:
    """(verdict, words, or "" when not found), worst first."""
    stalled = f.longest_failed_key_op_s >= min(STALL_S, outage_s / 2) and f.ejected_s is None
    return [
        ("inconsistent", f"{f.stale_reads:,} stale reads ({f.stale_after_back:,} after the node was back)"
         if f.stale_reads else ""),
        ("inconsistent", f"{f.wrong_values:,} values of another key, or unreadable" if f.wrong_values else ""),
        ("inconsistent", f"{f.lost_writes:,} sets returned False without an exception: writes lost silently"
         if f.lost_writes else ""),
        ("errors", late_errors(f)),
        ("errors", f"{f.errors_at_end:,} errors in the load's last second, with the node back: the client did not "
         "recover" if f.errors_at_end else ""),
        ("stalled", f"calls on the failed node's keys waited up to {f.longest_failed_key_op_s:.2f} s; "
         f"{f.ops_skipped:,} ops never started while their threads waited" if stalled else ""),
        ("stuck", stuck_words(f)),
        ("reshuffled", f"{f.misses_other_keys:,} misses of keys the failed node did not hold, or outside the fault"
         if f.misses_other_keys else ""),
        ("errors", f"{f.errors_before_fault + f.errors_after_settled:,} errors the fault does not explain "
         f"({f.errors_before_fault:,} before it, {f.errors_after_settled:,} after the load had settled)"
         if f.errors_before_fault or f.errors_after_settled else ""),
    ]


def late_errors(f: FailoverFigures) -> str:
    """Errors in the outage's second half, in words: the node never taken out, or tried again while still down."""
    if not f.errors_late_in_outage:
        return ""
    last = "" if f.last_error_s is None else f" (the last at +{f.last_error_s:.2f} s from the fault)"
    if f.ejected_s is None:
        return (f"{f.errors_late_in_outage:,} errors in the outage's second half{last}: the node was never taken out")
    if f.errors_after_ejection:
        return (f"{f.errors_late_in_outage:,} errors in the outage's second half{last}, after the node was taken out "
                f"({f.ejected_s:.2f} s after the fault): the client tried it again while it was still down")
    return (f"{f.errors_late_in_outage:,} errors in the outage's second half{last}: the node was taken out only "
            f"{f.ejected_s:.2f} s after the fault")


def stuck_words(f: FailoverFigures) -> str:
    """The node back but not (fully) used again, in words; "" when it was."""
    if f.readmitted_s is None:
        return "the node was back, but no key went to it again before the load ended"
    if f.restored_s is None:
        return (f"the node got keys again {f.readmitted_s:.2f} s after it was back, but never 3/4 of its load before "
                "the fault: some clients kept its keys elsewhere, or failed them")
    return ""


def missing_evidence(f: FailoverFigures) -> list[str]:
    """Why a run with no finding still cannot be called transparent."""
    missing = []
    if not f.failed_key_ops:
        missing.append("no op touched the failed node's keys while it was out")
    if f.unread_connections:
        missing.append(f"the proxies could not read the commands of {f.unread_connections} connections")
    if f.moved_keys and not f.written_in_outage:
        missing.append("keys moved, but none of the failed node's was written while it was out: whether the node "
                       "serves stale values once back was not tested (the mix needs set)")
    elif f.moved_keys and not f.exposed_reads:
        missing.append("keys were written elsewhere during the outage, but none was read back after the node "
                       "rejoined: stale reads were possible and not tested (run longer with --after, or more --rate)")
    return missing


def failover_advice(verdict: str, config: Config, figures: FailoverFigures | None, after_s: float,
                    worker: WorkerOutcome) -> str:
    """One line: the setting that would fix what was found, for this configuration's library."""
    library, dead = config.library, config.dead_timeout
    if verdict == "inconsistent" and figures is not None and figures.lost_writes and not figures.stale_reads:
        if library == "pymemcache":
            return ("HashClient answers calls to a server it is retrying with a default (None for a get, False for a "
                    "set) and no exception: check set's return value; retry_attempts=0 marks the server dead at once, "
                    "so its keys go to the other nodes.")
        return (f"{library} dropped writes to the failed node without raising (set returned a false value): check "
                "set's return value.")
    if verdict == "inconsistent":
        return ("The node came back with values older than those written elsewhere while it was out, and served "
                "them. Bring a failed node back empty (restart memcached rather than reconnect it), give keys a "
                "short TTL, or do not eject nodes (writes then fail instead of going elsewhere).")
    if verdict == "errors" and figures is not None:
        return errors_advice(config, figures)
    if verdict == "stalled":
        return ("Calls waited on the frozen node: lower the client's timeouts (pylibmc: connect_timeout and "
                "_poll_timeout in ms; pymemcache: connect_timeout and timeout) so a stalled node counts as failed.")
    if verdict == "stuck" and figures is not None and figures.readmitted_s is not None and figures.restored_s is None:
        return (f"Some clients used the node again {figures.readmitted_s:.2f} s after it was back, others not within "
                f"the {after_s:g} s watched: each client retries on its own clock (retry_timeout, dead_timeout); "
                "watch longer with --after, or lower those settings.")
    if verdict == "stuck":
        name, value = dead
        if library == "pylibmc" and not value:
            return ("libmemcached never retried the ejected node: set dead_timeout (seconds) with remove_failed.")
        return (f"{name}={value:g} keeps an ejected node out for {value:g} s, and the load ran {after_s:g} s after it "
                f"came back: lower {name}, or watch longer (--after {value + 5:g}s) to see it re-admitted.")
    if verdict == "reshuffled":
        return ("Keys of healthy nodes went elsewhere and missed: use consistent hashing (pylibmc ketama=1), "
                "which moves only the failed node's keys.")
    if verdict == "transparent" and figures is not None and figures.error_count:
        return (f"Callers got {figures.error_count:,} errors while the client noticed the failure (the last at "
                f"+{figures.last_error_s or 0:.2f} s), then only misses of the failed node's keys, and the node was "
                "used again once back: catch the client's errors around cache calls for those first moments.")
    if verdict == "transparent":
        return "Callers saw misses of the failed node's keys while it was out, and nothing else."
    if verdict == "inconclusive":
        return "Not enough was seen to call this configuration safe; see why above."
    return f"The run did not finish ({worker.message or worker.signal or verdict})."


def errors_advice(config: Config, f: FailoverFigures) -> str:
    """What to change when callers got errors: late in the outage, or with every node healthy."""
    name, value = config.dead_timeout
    pylibmc = config.library == "pylibmc"
    if f.errors_late_in_outage and f.errors_after_ejection:
        return (f"After {name}={value:g} s the client sent to the node again while it was still down, and callers got "
                "errors until it was taken out again: catch the client's errors around cache calls and fall back; "
                f"a longer {name} retries less often, and keeps a node that is back out longer.")
    if f.errors_late_in_outage and pylibmc and not config.setting("remove_failed"):
        fix = "use ketama with remove_failed=1" if not config.setting("ketama") else "add remove_failed=1"
        return (f"libmemcached kept the failed node's keys on it and raised until it was back: {fix} (and "
                "retry_timeout=1) so that it is taken out and its keys go to the other nodes.")
    if f.errors_late_in_outage and config.library == "pymemcache":
        return ("HashClient raised on the failed node's keys until it marked the node dead (after retry_attempts "
                "failures, retry_timeout apart), or through the outage if it never did: lower retry_attempts (0 "
                "marks it dead at once), or set ignore_exc=True to read errors as misses.")
    if (f.errors_at_end or f.errors_after_settled) and pylibmc and config.setting("remove_failed") and not value:
        return ("libmemcached marked the node dead and, with no dead_timeout, never tries it again: its keys raise "
                "ServerDead after it is back, for good. Set dead_timeout (seconds) with remove_failed.")
    if f.errors_at_end:
        return ("Calls still failed at the end of the load, with the node back: the client did not recover on its "
                "own; recreate clients on these errors, and check the settings that keep a node out.")
    if f.errors_after_settled:
        return ("Calls failed again after the load had gone a second without errors, with the node back: the fault "
                "does not explain them; fix what raises, then check again.")
    if f.errors_before_fault:
        return "Calls failed before any fault, with every node healthy: fix what raises, then check again."
    return "Calls raised late in the outage: catch the client's errors around cache calls and fall back."


@dataclass(frozen=True)
class FailoverCheck:
    """One configuration through the fault, judged once: verdict, findings and advice are stored."""

    config: Config
    fault: str
    outcome: str
    figures: FailoverFigures | None
    probe: RouteProbe | None
    detail: str
    verdict: str
    findings: tuple[str, ...]
    advice: str
    interval_s: float = 1.0
    fault_at_s: float | None = None
    back_at_s: float | None = None
    intervals: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        figures = {} if self.figures is None else {
            **dataclasses.asdict(self.figures), "error_count": self.figures.error_count,
            "moved_during": self.figures.moved_during, "failed_share": self.figures.failed_share}
        probe = {} if self.probe is None else {"moved_if_removed": self.probe.moved_share,
                                               "healthy_moved_if_removed": self.probe.healthy_moved_share,
                                               "route_probe": self.probe.to_json()}
        return {"config": self.config.name, "library": self.config.library, "settings": dict(self.config.settings),
                "summary": self.config.summary, "fault": self.fault, "verdict": self.verdict,
                "outcome": self.outcome, "findings": list(self.findings), "advice": self.advice,
                "fault_detail": self.detail, **figures, **probe, "interval_s": self.interval_s,
                "fault_at_s": self.fault_at_s, "back_at_s": self.back_at_s, "intervals": list(self.intervals)}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "FailoverCheck":
        config = Config(str(row["config"]), str(row["library"]), tuple((row.get("settings") or {}).items()),
                        str(row.get("summary") or ""))
        figures = (FailoverFigures(**fields_of(FailoverFigures, row, True)) if row.get("ops") is not None else None)
        probe = RouteProbe(**fields_of(RouteProbe, row["route_probe"], True)) if row.get("route_probe") else None
        return cls(config, str(row["fault"]), str(row["outcome"]), figures, probe, str(row.get("fault_detail") or ""),
                   str(row["verdict"]), tuple(row.get("findings") or ()), str(row["advice"]),
                   float(row.get("interval_s") or 1.0), row.get("fault_at_s"), row.get("back_at_s"),
                   tuple(row.get("intervals") or ()))


@dataclass
class FailoverSession(ProxiedSession):
    """One `mcpool check-failover` invocation: each configuration in turn through the same fault."""

    KIND = KIND
    OPTIONS = FailoverOptions
    RESULT = FailoverCheck
    options: FailoverOptions

    def names(self) -> tuple[str, ...]:
        return tuple(self.options.configs)

    def run_one(self, name: str, listener: RunListener) -> bool:
        config = parse_config(name)
        plan = self.plan(config)
        prefix = f"{plan.workload.key_prefix}k"
        for proxy in self.proxies:
            proxy.watch(prefix.encode())
        fault = self.fault(plan)
        stats = FailoverStats()
        try:
            outcomes, interrupted = run_workers(plan, listener, stats, driver=fault)
        finally:
            fault.undo()
        seen = [proxy.take_seen() for proxy in self.proxies]
        unread = sum(proxy.unread for proxy in self.proxies)
        worker = worst_outcome(list(outcomes))
        self.stopped_early = fault.failure
        probe = None if interrupted or self.stopped_early else self.probe(config)
        self.results.append(self.judged(config, plan, fault, stats, seen, unread, worker, probe))
        return interrupted

    def judged(self, config: Config, plan: RunPlan, fault: NodeFault, stats: FailoverStats,
               seen: list[list[tuple[int, bytes]]], unread: int, worker: WorkerOutcome,
               probe: RouteProbe | None) -> FailoverCheck:
        options = self.options
        figures, detail, extra = None, fault.times.detail, {}
        if stats.t0_ns is not None:
            t0_ms = stats.t0_ns // 1_000_000
            healthy_until = fault.times.start_ns // 1_000_000 if fault.happened else 2 ** 62
            # a key's home: where it went while every node was up (the fill, and the load before the fault: the
            # fill's last keys may share their millisecond with the load's start)
            homes = [[(ms, key) for ms, key in keyed(entries) if ms < healthy_until] for entries in seen]
            load = [[(ms, key) for ms, key in keyed(entries) if ms >= t0_ms] for entries in seen]
            routing = Routing.observed(homes, load)
            at = Moments(t0_ms, t0_ms + round(plan.duration_s * 1000), fault.times.start_ns // 1_000_000,
                         fault.times.back_ns // 1_000_000, options.node - 1)
            if fault.happened:
                figures = analyse(stats.batch, stats.names, routing, at, unread)
            interval = interval_for(plan.duration_s)
            extra = {"interval_s": interval, "intervals": tuple(over_time(stats.batch, routing, at, interval)),
                     "fault_at_s": round((at.fault_ms - t0_ms) / 1000, 3) if fault.happened else None,
                     "back_at_s": round((at.back_ms - t0_ms) / 1000, 3) if at.back_ms else None}
        verdict, findings = failover_verdict(worker.outcome, figures, options.outage_s)
        return FailoverCheck(config, options.fault, worker.outcome, figures, probe, detail, verdict, tuple(findings),
                             failover_advice(verdict, config, figures, options.after_s, worker), **extra)

    def plan(self, config: Config) -> RunPlan:
        options = self.options
        tag = "".join(c if c.isalnum() else "-" for c in config.name)
        options_for_client = config.client_options
        if config.library == "pymemcache" and "default_noreply" not in dict(options_for_client):
            options_for_client = (*options_for_client, ("default_noreply", 0))  # a set returns once stored
        return RunPlan(
            strategy=config.strategy(options.strategy),
            client=ClientConfig(servers=self.proxy_addresses, behaviors=config.behaviors, options=options_for_client),
            workload=Workload(keys=options.keys, key_prefix=f"{self.key_prefix}failover:{tag}:"),
            threads=options.threads, duration_s=options.duration_s, warmup_s=0.0,
            hang_timeout_s=options.hang_timeout_s + options.outage_s, import_path=options.import_path,
            mode="failover", label=config.name, settings=(("rate", options.rate), ("write_share", options.write_share)))

    def fault(self, plan: RunPlan) -> NodeFault:
        options = self.options
        index = options.node - 1
        wipe = None
        if options.rejoin == "empty":
            names = [key_name(plan.workload.key_prefix, i) for i in range(plan.workload.keys)]
            wipe = (self.servers.addresses[index], names)
        return NodeFault(options.before_s, options.fault, self.proxies[index], options.outage_s, wipe)

    def probe(self, config: Config) -> RouteProbe | None:
        """Where the configuration's client sends probe keys with every node, then without the failed one."""
        index = self.options.node - 1
        prefix = f"{self.key_prefix}route:{len(self.results)}:k"
        maps = []
        for specs in (list(self.proxy_addresses), [s for i, s in enumerate(self.proxy_addresses) if i != index]):
            for proxy in self.proxies:
                proxy.watch(prefix.encode())
            client = route_client(config, specs)
            try:
                for key in range(PROBE_KEYS):
                    client.set(f"{prefix}{key}", b"1", 60)
            except Exception:  # a probe that fails says nothing: the run's figures stand without it
                return None
            finally:
                close_client(client)
            maps.append({key: node for node, proxy in enumerate(self.proxies)
                         for _, key in keyed(proxy.take_seen())})
        return RouteProbe.compared(maps[0], maps[1], index)


def keyed(entries: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """(ms, key index) of the noted keys whose rest is a number (k123 less its prefix)."""
    return [(ms, int(rest)) for ms, rest in entries if rest.isdigit()]


from_json = FailoverSession.from_json
