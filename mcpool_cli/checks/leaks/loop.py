"""check-leaks, worker side: churn short-lived threads through a strategy and count connections on the server.

Python reuses the idents of dead threads, so a pool keyed on idents silently adopts a dead thread's client:
counting "pool keys minus live idents" misses leaks. So the server's own figures are the truth here
(`curr_connections`, `total_connections`), read over one persistent connection so that reading them
changes them by a constant; threads are tagged with tokens that are never reused.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from mcpool_cli.checks.leaks.timewait import Endpoint, read_time_wait, server_endpoints
from mcpool_cli.checks.races.stamps import add_site, error_site
from mcpool_cli.engine.plan import WorkerPlan
from mcpool_cli.engine.server import ServerAddress, parse_server
from mcpool_cli.engine.worker import Emitter, Prepared, prepare_strategy

SETTLE_S = 0.5
SAMPLE_S = 0.02
SERIES_POINTS = 500  # connections_over_time holds at most this many points, however long the churn


class StatsProbe:
    """`stats` read again and again over one connection to each server; figures summed over servers."""

    def __init__(self, servers: list[ServerAddress]) -> None:
        self.sockets = [socket.create_connection((s.host, s.port), timeout=2.0) for s in servers]

    def read(self) -> tuple[int, int]:
        """(curr_connections, total_connections), this probe's own connection left out."""
        current = total = 0
        for sock in self.sockets:
            sock.sendall(b"stats\r\n")
            reply = b""
            while not reply.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the server closed the stats connection")
                reply += chunk
            stats = dict(line.split(" ", 2)[1:] for line in reply.decode().splitlines() if line.startswith("STAT "))
            current += int(stats["curr_connections"]) - 1
            total += int(stats["total_connections"])
        return current, total

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@dataclass(frozen=True)
class ConnectionsPoint:
    """The server's connections at one moment of a churn."""

    t_s: float  # since the churn started (the baseline reading), to the millisecond
    connections: int  # curr_connections, summed over servers, the probe's own left out
    threads_started: int  # churn threads started by then

    @classmethod
    def from_json(cls, point: dict[str, Any]) -> "ConnectionsPoint":
        """A saved point; TypeError naming the field when a figure is not a number."""
        t_s = point["t_s"]
        if not isinstance(t_s, (int, float)) or isinstance(t_s, bool):
            raise TypeError(f"t_s: expected a number of seconds, got {t_s!r}")
        return cls(float(t_s), whole("connections", point["connections"]),
                   whole("threads_started", point["threads_started"]))


def highest(points: list[ConnectionsPoint]) -> ConnectionsPoint:
    """The point with the most connections (the earliest of equals)."""
    return max(points, key=lambda point: point.connections)


class ThinnedSeries:
    """Points of a sampled series, at most `cap` however many are added: when full, neighbours merge in pairs
    and each point after stands for twice as many samples. A point is the highest of the samples it stands for,
    so the series' peak is the samples' peak."""

    def __init__(self, cap: int) -> None:
        self.cap, self.step = max(2, cap - cap % 2), 1  # even, so that every point merges with a neighbour
        self.points: list[ConnectionsPoint] = []
        self.pending: ConnectionsPoint | None = None  # the highest sample of the unfinished point
        self.pending_samples = 0

    def add(self, point: ConnectionsPoint) -> None:
        self.pending = point if self.pending is None else highest([self.pending, point])
        self.pending_samples += 1
        if self.pending_samples == self.step:
            self.points.append(self.pending)
            self.pending, self.pending_samples = None, 0
            if len(self.points) == self.cap:
                self.points = [highest(self.points[i:i + 2]) for i in range(0, self.cap, 2)]
                self.step *= 2

    def finished(self) -> list[ConnectionsPoint]:
        """The points, the unfinished one last."""
        return self.points + ([self.pending] if self.pending is not None else [])


class PeakSampler(threading.Thread):
    """Reads curr_connections every 20 ms until stopped; keeps the highest, and a thinned series of them."""

    def __init__(self, probe: StatsProbe, started_s: float, cap: int = SERIES_POINTS - 2) -> None:
        super().__init__(daemon=True)
        self.probe, self.peak, self.done = probe, 0, threading.Event()
        self.started_s = started_s  # time.monotonic() when the churn started
        self.threads_started = 0  # set by the churn as it starts threads
        self.series = ThinnedSeries(cap)  # with the baseline and the reading after: SERIES_POINTS at most

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            connections = self.probe.read()[0]
            self.peak = max(self.peak, connections)
            self.series.add(self.point(connections))

    def point(self, connections: int) -> ConnectionsPoint:
        """A reading of now, timed from the churn's start."""
        return ConnectionsPoint(round(time.monotonic() - self.started_s, 3), connections, self.threads_started)


def open_sockets() -> int:
    """Sockets this process holds open (Linux: /proc/self/fd), or -1 where that cannot be read."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return -1
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed while we looked (the listing's own descriptor, for one)
    return count


@dataclass(frozen=True)
class ChurnFigures:
    """What one churn measured, in the worker and on the server."""

    threads_started: int
    concurrency: int
    baseline_connections: int
    baseline_drift: int  # curr_connections change over a quiet half second before the churn
    peak_connections: int
    after_connections: int
    connections_opened: int  # total_connections grew by this much
    standing_clients: int  # clients the strategy keeps by design (a FIFO pool's, a shared one)
    held_by_pool: int  # clients the strategy still holds after every thread ended
    dead_thread_clients: int  # of those, clients a thread took and never gave back (by never-reused token)
    open_sockets_after: int
    churn_errors: int = 0  # calls (or thread_done) that raised in the churn threads: a clean verdict needs none
    churn_error_sites: dict[str, int] = field(default_factory=dict)  # where they were raised, capped
    connections_over_time: tuple[ConnectionsPoint, ...] = ()  # the baseline, the samples (thinned), the after
    churn_s: float | None = None  # from the first churn thread's start to the last one's end
    time_wait_before: int | None = None  # client sockets in TIME_WAIT to the servers before the churn; None: unknown
    time_wait_after: int | None = None  # the same, after the churn and its settle
    OPTIONAL = ("churn_errors", "churn_error_sites", "connections_over_time", "churn_s", "time_wait_before",
                "time_wait_after")  # absent from older files

    @property
    def connections_opened_per_s(self) -> float | None:
        """Connections opened over `churn_s`, the time threads ran (the settle after, when none runs, left out);
        None for a file written before it was timed, or a churn too short to time."""
        if not self.churn_s:
            return None
        return round(self.connections_opened / self.churn_s, 1)

    @property
    def connections_per_thread(self) -> float | None:
        """Connections opened per churn thread: connections per request when each thread is one request."""
        return round(self.connections_opened / self.threads_started, 3) if self.threads_started else None

    def to_json(self) -> dict[str, Any]:
        """Every figure, and the two rates derived from them (recomputed, not read, by `from_json`)."""
        return {**asdict(self), "connections_opened_per_s": self.connections_opened_per_s,
                "connections_per_thread": self.connections_per_thread}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "ChurnFigures":
        """The figures saved flattened into a result row: every one must be there, a whole number; the optional
        ones may be missing (older files), TIME_WAIT and the churn's time may be null (unknown)."""
        counts = {f.name: whole(f.name, row[f.name]) for f in fields(cls) if f.name not in cls.OPTIONAL}
        sites = row.get("churn_error_sites") or {}
        return cls(**counts, churn_errors=whole("churn_errors", row.get("churn_errors", 0)),
                   churn_error_sites={str(site): whole(site, n) for site, n in sites.items()},
                   connections_over_time=tuple(ConnectionsPoint.from_json(point)
                                               for point in row.get("connections_over_time") or ()),
                   churn_s=seconds_or_none("churn_s", row.get("churn_s")),
                   time_wait_before=whole_or_none("time_wait_before", row.get("time_wait_before")),
                   time_wait_after=whole_or_none("time_wait_after", row.get("time_wait_after")))

    def to_message(self) -> dict[str, Any]:
        """The snapshot message that carries the figures to the parent, at the end of the churn."""
        return {"type": "snapshot", "kind": "leaks", "completed": 1, "figures": self.to_json()}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "ChurnFigures | None":
        """The figures in a leaks snapshot; None for a progress snapshot (threads started so far)."""
        return cls.from_json(message["figures"]) if message.get("kind") == "leaks" else None


def whole(name: str, value: Any) -> int:
    """A saved count, refused (TypeError naming it) when it is not a whole number."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected a whole number, got {value!r}")
    return value


def whole_or_none(name: str, value: Any) -> int | None:
    """A saved count that may be unknown (null)."""
    return None if value is None else whole(name, value)


def seconds_or_none(name: str, value: Any) -> float | None:
    """A saved time in seconds that may be unknown (null); TypeError naming it when it is not a number."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name}: expected a number of seconds, got {value!r}")
    return float(value)


def progress_message(threads_started: int) -> dict[str, Any]:
    """A snapshot that only says the churn goes on: the watchdog's sign of life."""
    return {"type": "snapshot", "kind": "progress", "completed": threads_started}


def run_threads(body: Callable[[int], None], count: int, gate: threading.Semaphore, sampler: PeakSampler,
                progress: Callable[[int], None]) -> float:
    """Start `count` threads running `body(token)` as `gate` lets them, and wait for every one; the seconds from
    the first one's start to the last one's end."""
    started_s = time.monotonic()
    threads = []
    for token in range(count):
        gate.acquire()
        threads.append(threading.Thread(target=body, args=(token,), daemon=True))
        threads[-1].start()
        sampler.threads_started = token + 1
        if token % 20 == 19:
            progress(20)
    for thread in threads:
        thread.join()
    return round(time.monotonic() - started_s, 4)


def churn(strategy: Any, probe: StatsProbe, count: int, concurrency: int, ops_per_thread: int, prefix: str,
          progress: Callable[[int], None], remotes: frozenset[Endpoint] = frozenset()) -> ChurnFigures:
    """Start `count` short-lived threads, at most `concurrency` alive; each does a few ops and exits. TIME_WAIT
    is counted here, in the worker, before its own sockets close: a FIFO pool's clients, closed as the worker
    exits, would otherwise count as sockets the churn left."""
    quiet_start = probe.read()[0]
    time.sleep(SETTLE_S)
    baseline, total_before = probe.read()
    time_wait_before = read_time_wait(remotes)
    sampler = PeakSampler(probe, time.monotonic())
    sampler.peak = baseline
    start_point = ConnectionsPoint(0.0, baseline, 0)  # the baseline is the series' origin (a busy machine may
    # take a millisecond between reading the clock and here)
    owners: dict[int, int] = {}  # id(client) -> token of the thread that used it
    gate, lock = threading.Semaphore(concurrency), threading.Lock()
    errors: list[int] = [0]
    sites: dict[str, int] = {}

    def body(token: int) -> None:
        try:
            try:
                for n in range(ops_per_thread):
                    key = f"{prefix}t{token}:{n}"
                    with strategy.reserve() as client:
                        with lock:
                            owners[id(client)] = token
                        client.set(key, b"x", 60)
                        client.get(key)
            finally:
                strategy.thread_done()  # as each thread ends, as an application's `finally` would
        except Exception as exc:  # counted, not printed: a churn with errors proves nothing clean
            with lock:
                errors[0] += 1
                add_site(sites, error_site(exc)[0])
        finally:
            gate.release()

    sampler.start()
    churn_s = run_threads(body, count, gate, sampler, progress)
    gc.collect()
    time.sleep(SETTLE_S)  # let freed clients close their sockets and the server notice
    sampler.done.set()
    sampler.join()
    after, total_after = probe.read()
    time_wait_after = read_time_wait(remotes)
    over_time = (start_point, *sampler.series.finished(), sampler.point(after))
    held = strategy.held_clients()
    return ChurnFigures(
        threads_started=count, concurrency=concurrency, baseline_connections=baseline,
        baseline_drift=baseline - quiet_start, peak_connections=max(sampler.peak, after),
        after_connections=after, connections_opened=total_after - total_before,
        standing_clients=strategy.standing_clients(), held_by_pool=len(held),
        dead_thread_clients=sum(1 for client in held if id(client) in owners and strategy.per_thread_clients),
        open_sockets_after=open_sockets(), churn_errors=errors[0], churn_error_sites=dict(sites),
        connections_over_time=over_time, churn_s=churn_s, time_wait_before=time_wait_before,
        time_wait_after=time_wait_after)


def load_leaks(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Churn short-lived threads, then report what the server and the pool still hold."""
    servers = [parse_server(spec) for spec in plan.run.client.servers]
    probe = StatsProbe(servers)
    emitter.send({"type": "phase", "phase": "measure"})
    progress = lambda n: emitter.send(progress_message(n))  # noqa: E731
    figures = churn(prepared.strategy, probe, int(plan.run.setting("churn")), plan.run.threads, 3, plan.run.workload.key_prefix,
                    progress, server_endpoints(servers))
    probe.close()
    emitter.send(figures.to_message())


MODES = {"leaks": (prepare_strategy, load_leaks)}
