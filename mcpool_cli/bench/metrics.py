"""Live metrics of a running bench (`--metrics-port`): Prometheus' text exposition, with its own client library.

The parent's main thread merges the workers' snapshots; once an interval it publishes what it has as one frozen
`Published` (a dict swap, atomic under the GIL). The HTTP server's thread only ever reads the latest one, so a
scrape never meets a counter half-updated, and a slow scraper never holds up the run.

Metrics (labels `strategy`, `rate` (empty for a closed loop) and `run_id`):

    mcpool_ops_total{op, outcome}            measured ops, ok or failed (counter)
    mcpool_errors_total{error}               errors by class (counter)
    mcpool_latency_seconds{quantile}         the run so far: 0.5, 0.9, 0.99, 0.999 and 1 (the max)
    mcpool_interval_latency_seconds{quantile} the newest interval whose batches are all in: 0.5, 0.99, 1
    mcpool_interval_ops_per_second           successful ops a second over the last whole interval
    mcpool_pool_clients_in_use, mcpool_pool_waiters, mcpool_pool_clients_held   gauges, summed over workers
    mcpool_pool_clients_created_total, mcpool_pool_clients_closed_total         counters, summed over workers
    mcpool_run_info                          1 for each run measured so far
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from mcpool_cli.bench.results import OPS, RunStats
from mcpool_cli.engine.histograms import latency_summary_us
from mcpool_cli.errors import UsageProblem

LABELS = ["strategy", "rate", "run_id"]  # on every metric: a run's pods share its run id (--run-id)
QUANTILES = (("0.5", 50.0), ("0.9", 90.0), ("0.99", 99.0), ("0.999", 99.9), ("1", 100.0))
POOL_GAUGES = (("in_use", "mcpool_pool_clients_in_use", "Clients lent out right now."),
               ("waiters", "mcpool_pool_waiters", "Threads waiting for a client right now."),
               ("held", "mcpool_pool_clients_held", "Clients a thread-keyed pool holds right now."))
POOL_COUNTERS = (("created", "mcpool_pool_clients_created", "Clients the strategy made."),
                 ("closed", "mcpool_pool_clients_closed", "Clients the strategy let go."))


def parse_metrics_address(text: str) -> tuple[str, int]:
    """`PORT` (on 127.0.0.1) or `HOST:PORT`; a UsageProblem that says what is wrong."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageProblem(f"--metrics-port {text}: give a port (9464) or HOST:PORT (0.0.0.0:9464)")
    return host, int(port)


@dataclass(frozen=True)
class Published:
    """One strategy run's figures at the end of an interval."""

    labels: dict[str, str]
    ops: dict[tuple[str, str], int]  # (op, outcome) -> count
    errors: dict[str, int]
    latency_s: dict[str, float]  # quantile -> seconds, the run so far
    interval_latency_s: dict[str, float]
    interval_ops_per_s: float | None
    pool: dict[str, int] = field(default_factory=dict)


class LiveMetrics:
    """The HTTP endpoint and what it shows; a context manager that stops the server on every exit path."""

    def __init__(self, address: tuple[str, int], run_id: str = "") -> None:
        self.address, self.run_id = address, run_id
        self.latest: dict[str, Published] = {}  # the run's name -> its last figures; replaced, never mutated
        self.server: Any = None

    def __enter__(self) -> "LiveMetrics":
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        try:
            self.server, _ = start_http_server(self.address[1], self.address[0], registry=registry)
        except OSError as exc:
            raise UsageProblem(f"--metrics-port {self.address[0]}:{self.address[1]}: cannot listen there "
                               f"({exc.strerror or exc})") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def publish(self, name: str, figures: Published) -> None:
        self.latest = {**self.latest, name: figures}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        latest = self.latest
        families = {
            "ops": CounterMetricFamily("mcpool_ops", "Measured operations.", labels=[*LABELS, "op", "outcome"]),
            "errors": CounterMetricFamily("mcpool_errors", "Errors by class.", labels=[*LABELS, "error"]),
            "latency": GaugeMetricFamily("mcpool_latency_seconds", "Latency of successful ops, the run so far.",
                                         labels=[*LABELS, "quantile"]),
            "interval": GaugeMetricFamily("mcpool_interval_latency_seconds",
                                          "Latency of successful ops over the last whole interval.",
                                          labels=[*LABELS, "quantile"]),
            "rate": GaugeMetricFamily("mcpool_interval_ops_per_second",
                                      "Successful ops a second over the last whole interval.", labels=LABELS),
            "info": GaugeMetricFamily("mcpool_run_info", "1 for each run measured so far.", labels=LABELS),
            **{key: GaugeMetricFamily(name, words, labels=LABELS) for key, name, words in POOL_GAUGES},
            **{key: CounterMetricFamily(name, words, labels=LABELS) for key, name, words in POOL_COUNTERS},
        }
        for figures in latest.values():
            base = [figures.labels["strategy"], figures.labels["rate"], self.run_id]
            for (op, outcome), count in figures.ops.items():
                families["ops"].add_metric([*base, op, outcome], count)
            for error, count in figures.errors.items():
                families["errors"].add_metric([*base, error], count)
            for quantile, value in figures.latency_s.items():
                families["latency"].add_metric([*base, quantile], value)
            for quantile, value in figures.interval_latency_s.items():
                families["interval"].add_metric([*base, quantile], value)
            if figures.interval_ops_per_s is not None:
                families["rate"].add_metric(base, figures.interval_ops_per_s)
            families["info"].add_metric(base, 1)
            for key, value in figures.pool.items():
                if key in families:
                    families[key].add_metric(base, value)
        yield from families.values()


@dataclass
class MeteredStats(RunStats):
    """A run's stats that publish to `live` once an interval (and the pool's state as workers report it)."""

    live: Any = None
    run_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    pools: dict[int, dict[str, int]] = field(default_factory=dict)  # per worker, its last report
    next_publish: float = 0.0

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        super().add_snapshot(snap)
        now = time.monotonic()
        if now >= self.next_publish:
            self.next_publish = now + self.interval_s
            self.publish()

    def pool_state(self, worker: int, state: dict[str, Any]) -> None:
        self.pools[worker] = {key: int(value) for key, value in state.items() if key != "type"}

    def publish(self) -> None:
        """What the run has measured so far, handed to the endpoint whole."""
        histogram = self.all_ops_histogram()
        latency = ({quantile: histogram.get_value_at_percentile(p) / 1e9 for quantile, p in QUANTILES}
                   if histogram.get_total_count() else {})
        last = self.last_whole_interval()
        pool: dict[str, int] = {}
        for state in self.pools.values():
            for key, value in state.items():
                pool[key] = pool.get(key, 0) + value
        self.live.publish(self.run_name, Published(
            dict(self.labels), {**{(op, "ok"): self.succeeded[op] for op in OPS},
                                **{(op, "failed"): self.failed[op] for op in OPS}},
            dict(self.errors), latency, last[0], last[1], pool))

    def last_whole_interval(self) -> tuple[dict[str, float], float | None]:
        """The latency summary (s) and ops/s of the newest interval whose batches are all in: the one before the
        one before the newest (an interval's last batches arrive up to a second after it ends); ({}, None) before
        there is one."""
        intervals = self.timeline.intervals
        whole = [index for index in intervals if index <= max(intervals, default=0) - 2]
        if not whole:
            return {}, None
        interval = intervals[max(whole)]
        summary = (latency_summary_us(interval.live) if interval.live is not None and not interval.encoded
                   else interval.latency_us)
        picked = {"0.5": summary.get("p50"), "0.99": summary.get("p99"), "1": summary.get("max")}
        return ({quantile: value / 1e6 for quantile, value in picked.items() if value is not None and
                 math.isfinite(value)}, round(interval.ops / self.interval_s, 1))
