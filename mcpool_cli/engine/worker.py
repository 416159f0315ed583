"""A worker process: reads its plan on stdin, runs the load threads, streams JSON-line snapshots on stdout.

Run as `python -m mcpool_cli.engine.worker`. It never reports on itself: if a strategy corrupts memory and the
interpreter dies, the parent still holds every snapshot streamed before.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import queue
import sys
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from mcpool_cli.bench.loop import MAX_EXAMPLES, Batch, LoopTiming, run_load
from mcpool_cli.engine.plan import ClientConfig, WorkerPlan
from mcpool_cli.checks.races.loop import (SHARED_KEYS, SHARED_WRITER, RaceThread, merge_race_batches, race_message,
                                  shared_key)
from mcpool_cli.checks.races.stamps import encode_value
from mcpool_cli.engine.strategies import SharedStrategy, build_strategy
from mcpool_cli.engine.workload import OP_NAMES, KeySpace, build_key_space, build_schedule

POPULATE_CHUNK = 500


class Emitter:
    """Writes one JSON object per line to the parent; safe to call from any thread.

    Each line goes out in os.write calls on the raw descriptor: a line under PIPE_BUF (4 KiB) is one
    atomic write, so a forked child may share the stream with its parent (the fork-safety check).
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._fd = stream.fileno()
        self._stream = stream  # keeps the descriptor open
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = memoryview(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        with self._lock:
            while line:
                line = line[os.write(self._fd, line):]


def encode_ns(values: list[int]) -> str:
    """Latencies in ns as base64 of little-endian int64s: 8 bytes a value, cheap to ship."""
    data = array("q", values)
    if sys.byteorder != "little":
        data.byteswap()
    return base64.b64encode(data.tobytes()).decode("ascii")


def merge_batches(batches: list[Batch]) -> Batch:
    """One Batch holding the sum of several."""
    total = Batch()
    for batch in batches:
        total.completed += batch.completed
        total.get_ns += batch.get_ns
        total.set_ns += batch.set_ns
        total.delete_ns += batch.delete_ns
        total.get_multi_ns += batch.get_multi_ns
        total.acquire_ns += batch.acquire_ns
        total.failed = [a + b for a, b in zip(total.failed, batch.failed)]
        for name, count in batch.errors.items():
            total.errors[name] = total.errors.get(name, 0) + count
        total.wrong_values += batch.wrong_values
        total.corrupt_values += batch.corrupt_values
        total.misses += batch.misses
        total.exhausted += batch.exhausted
        total.examples += batch.examples[: MAX_EXAMPLES - len(total.examples)]
    return total


def snapshot_message(batch: Batch, elapsed_s: float) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "t_s": round(elapsed_s, 4),
        "completed": batch.completed,
        "failed": dict(zip(OP_NAMES, batch.failed)),
        "lat_ns": {"get": encode_ns(batch.get_ns), "set": encode_ns(batch.set_ns),
                   "delete": encode_ns(batch.delete_ns), "get_multi": encode_ns(batch.get_multi_ns),
                   "acquire": encode_ns(batch.acquire_ns)},
        "errors": batch.errors,
        "wrong_values": batch.wrong_values,
        "corrupt_values": batch.corrupt_values,
        "misses": batch.misses,
        "exhausted": batch.exhausted,
        "examples": batch.examples,
    }


def make_master_client(config: ClientConfig) -> Any:
    import pylibmc

    return pylibmc.Client(list(config.servers), binary=config.binary, behaviors=dict(config.behaviors))


def populate(client: Any, space: KeySpace, plan: WorkerPlan, ttl_s: int, emitter: Emitter) -> None:
    """Write this worker's share of the key space so that gets find their values."""
    mine = range(plan.worker_index, len(space.keys), plan.run.processes)
    for start in range(0, len(mine), POPULATE_CHUNK):
        chunk = mine[start:start + POPULATE_CHUNK]
        failed = client.set_multi({space.keys[i]: space.values[i] for i in chunk}, time=ttl_s)
        if failed:
            raise RuntimeError(f"could not write {len(failed)} keys while filling the key space")
        emitter.send({"type": "progress", "phase": "populate", "completed": len(chunk)})


RESUME = threading.Event()  # the parent's `resume` command: check-stale's idle pause is over


def watch_parent(stdin: BinaryIO) -> None:
    """Take the parent's commands; exit at once when it goes away (stdin closes), so no worker outlives mcpool."""
    for line in stdin:
        if line.strip() == b"resume":
            RESUME.set()
    os._exit(70)


def protocol_stream() -> BinaryIO:
    """A private copy of fd 1 for the snapshot protocol; fd 1 itself then points at stderr.

    A custom strategy that print()s cannot corrupt the stream: its output lands on stderr with the rest.
    """
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(protocol_fd, "wb")


def start_threads(plan: WorkerPlan, strategy: Any, space: KeySpace, timing: LoopTiming,
                  sink: Callable[[Batch], None], emitter: Emitter) -> list[threading.Thread]:
    run = plan.run
    threads = []
    for index in range(run.threads):
        token = plan.worker_index * run.threads + index  # never reused within a run
        schedule = build_schedule(run.workload, token)

        def body(schedule: list[tuple[int, int]] = schedule, token: int = token) -> None:
            try:
                run_load(strategy, space, schedule, run.workload.ttl_s, timing, sink)
                strategy.thread_done()
            except BaseException as exc:  # a strategy that kills its thread makes the run an error
                emitter.send({"type": "error", "message": f"load thread {token} died: {type(exc).__name__}: {exc}"})

        thread = threading.Thread(target=body, name=f"mcpool-load-{token}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def urgent_sink(sink: queue.SimpleQueue, timing: LoopTiming, emitter: Emitter) -> Callable[[Batch], None]:
    """Batches with errors or wrong values go to the parent at once, from the load thread itself."""

    def put(batch: Batch) -> None:
        if batch.has_anomalies:
            emitter.send(snapshot_message(batch, (time.perf_counter_ns() - timing.measure_start_ns) / 1e9))
        else:
            sink.put(batch)

    return put


def drain(sink: queue.SimpleQueue) -> Batch:
    batches = []
    while True:
        try:
            batches.append(sink.get_nowait())
        except queue.Empty:
            return merge_batches(batches)


def stream_until_done(threads: list[threading.Thread], sink: queue.SimpleQueue, timing: LoopTiming,
                      interval_s: float, emitter: Emitter) -> None:
    """The worker's main thread: ship what the load threads measured, several times a second."""
    measuring = False
    while any(thread.is_alive() for thread in threads):
        time.sleep(interval_s)
        now = time.perf_counter_ns()
        if not measuring and now >= timing.measure_start_ns:
            measuring = True
            emitter.send({"type": "phase", "phase": "measure"})
        emitter.send(snapshot_message(drain(sink), (now - timing.measure_start_ns) / 1e9))
    now = time.perf_counter_ns()
    emitter.send(snapshot_message(drain(sink), (min(now, timing.end_ns) - timing.measure_start_ns) / 1e9))


@dataclass(frozen=True)
class Prepared:
    """A worker ready to load: its strategy built and its share of the key space written."""

    strategy: Any
    space: KeySpace


def prepare(plan: WorkerPlan, emitter: Emitter) -> Prepared:
    run = plan.run
    master = make_master_client(run.client)
    strategy = build_strategy(run.strategy, master, run.threads, run.effective_pool_size,
                              run.relinquish, run.import_path)
    space = build_key_space(run.workload)
    emitter.send({"type": "phase", "phase": "populate"})
    populate(master.clone(), space, plan, run.workload.ttl_s, emitter)
    return Prepared(strategy, space)


def prepare_races(plan: WorkerPlan, emitter: Emitter) -> Prepared:
    """Build the strategy (none for the fork check) and write the shared keys every thread reads."""
    run = plan.run
    master = make_master_client(run.client)
    strategy = None
    if run.mode == "races":
        strategy = build_strategy(run.strategy, master, run.threads, run.effective_pool_size,
                                  run.relinquish, run.import_path)
    prefix = run.workload.key_prefix
    values = {shared_key(prefix, i): encode_value(shared_key(prefix, i), SHARED_WRITER, 0) for i in range(SHARED_KEYS)}
    failed = master.set_multi(values, time=run.workload.ttl_s)  # also connects the master before any fork
    if failed:
        raise RuntimeError(f"could not write {len(failed)} shared keys")
    return Prepared(strategy if strategy is not None else master, KeySpace((), ()))


def load_races(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Threads (or, for the fork check, a parent and a forked child sharing one client) hunt for races."""
    run = plan.run
    emitter.send({"type": "phase", "phase": "measure"})
    start = time.perf_counter_ns()
    end = start + int((run.warmup_s + run.duration_s) * 1e9)
    interval = int(run.snapshot_interval_s * 1e9)
    if run.mode == "races-fork":
        fork_race(plan, prepared.strategy, start, end, emitter)
        return
    sink: queue.SimpleQueue = queue.SimpleQueue()
    threads = []
    for index in range(run.threads):
        token = plan.worker_index * run.threads + index
        racer = RaceThread(prepared.strategy, run.workload.key_prefix, token, start, end, sink.put, interval)
        threads.append(threading.Thread(target=_guarded(racer.run, token, emitter, prepared.strategy), daemon=True))
        threads[-1].start()
    while any(thread.is_alive() for thread in threads):
        time.sleep(run.snapshot_interval_s)
        emitter.send(race_message(merge_race_batches(_drain_all(sink))))
    emitter.send(race_message(merge_race_batches(_drain_all(sink))))


def fork_race(plan: WorkerPlan, master: Any, start: int, end: int, emitter: Emitter) -> None:
    """A client connected before fork(), used by both processes at once, as a pre-loading server does."""
    interval = int(plan.run.snapshot_interval_s * 1e9)
    send = lambda batch: emitter.send(race_message(batch))  # noqa: E731
    child = os.fork()
    if child == 0:
        try:
            RaceThread(SharedStrategy(master), plan.run.workload.key_prefix, 1, start, end, send, interval).run()
        finally:
            os._exit(0)
    RaceThread(SharedStrategy(master), plan.run.workload.key_prefix, 0, start, end, send, interval).run()
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):  # the child's crash is this check's crash
        os.kill(os.getpid(), os.WTERMSIG(status))


def prepare_strategy(plan: WorkerPlan, emitter: Emitter) -> Prepared:
    run = plan.run
    master = make_master_client(run.client)
    strategy = build_strategy(run.strategy, master, run.threads, run.effective_pool_size,
                              run.relinquish, run.import_path)
    return Prepared(strategy, KeySpace((), ()))


def load_leaks(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Churn short-lived threads, then report what the server and the pool still hold."""
    from mcpool_cli.checks.leaks.loop import StatsProbe, churn
    from mcpool_cli.engine.server import parse_server

    probe = StatsProbe([parse_server(spec) for spec in plan.run.client.servers])
    emitter.send({"type": "phase", "phase": "measure"})
    progress = lambda n: emitter.send({"type": "snapshot", "kind": "progress", "completed": n})  # noqa: E731
    figures = churn(prepared.strategy, probe, plan.run.churn, plan.run.threads, 3, plan.run.workload.key_prefix,
                    progress)
    probe.close()
    emitter.send({"type": "snapshot", "kind": "leaks", "completed": 1, "figures": figures.to_json()})


def load_stale(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Steady paced load for check-stale; the parent injects the fault and reads the times."""
    from mcpool_cli.checks.stale.loop import StaleBatch, StaleTiming, stale_thread

    run = plan.run
    start = time.monotonic_ns()
    emitter.send({"type": "phase", "phase": "measure", "t0_ns": start})
    timing = StaleTiming(start, start + int(run.duration_s * 1e9), run.rate,
                         start + int(run.pause_at_s * 1e9) if run.pause_at_s else 0,
                         RESUME if run.pause_at_s else None)
    sink: queue.SimpleQueue = queue.SimpleQueue()
    flush_ns = int(run.snapshot_interval_s * 1e9)
    threads = []
    for index in range(run.threads):
        token = plan.worker_index * run.threads + index
        body = functools.partial(stale_thread, prepared.strategy, prepared.space, timing, run.workload.mix,
                                 run.workload.seed + token,
                                 sink.put, flush_ns, run.workload.ttl_s)
        threads.append(threading.Thread(target=_guarded(body, token, emitter, prepared.strategy), daemon=True))
        threads[-1].start()
    while True:
        alive = any(thread.is_alive() for thread in threads)
        total = StaleBatch()
        for batch in _drain_all(sink):
            total.add(batch)
        emitter.send(total.to_message())
        if not alive:
            break
        time.sleep(run.snapshot_interval_s)
    prepared.strategy.close()


def _guarded(body: Callable[[], None], token: int, emitter: Emitter, strategy: Any) -> Callable[[], None]:
    def run() -> None:
        try:
            body()
            strategy.thread_done()
        except BaseException as exc:  # a strategy that kills its thread makes the trial an error
            emitter.send({"type": "error", "message": f"load thread {token} died: {type(exc).__name__}: {exc}"})
    return run


def _drain_all(sink: queue.SimpleQueue) -> list[Any]:
    items = []
    while True:
        try:
            items.append(sink.get_nowait())
        except queue.Empty:
            return items


def load(plan: WorkerPlan, prepared: Prepared, emitter: Emitter) -> None:
    """Warm up, measure, stream; returns when every load thread has stopped."""
    run = plan.run
    emitter.send({"type": "phase", "phase": "warmup"})
    measure_start = time.perf_counter_ns() + int(run.warmup_s * 1e9)
    timing = LoopTiming(measure_start, measure_start + int(run.duration_s * 1e9),
                        int(run.snapshot_interval_s * 1e9 / 2))
    sink: queue.SimpleQueue = queue.SimpleQueue()
    threads = start_threads(plan, prepared.strategy, prepared.space, timing,
                            urgent_sink(sink, timing, emitter), emitter)
    stream_until_done(threads, sink, timing, run.snapshot_interval_s, emitter)
    prepared.strategy.close()


def main() -> None:
    """Plan on stdin; `ready` once populated; wait for the parent's `go` so all workers start together."""
    stdin = sys.stdin.buffer
    plan = WorkerPlan.from_json(stdin.readline().decode())
    emitter = Emitter(protocol_stream())
    emitter.send({"type": "hello", "pid": os.getpid()})
    try:
        prepare_for, load_for = MODES[plan.run.mode]
        prepared = prepare_for(plan, emitter)
        emitter.send({"type": "ready"})
        if stdin.readline().strip() != b"go":
            os._exit(70)  # the parent is gone
        threading.Thread(target=watch_parent, args=(stdin,), daemon=True).start()
        load_for(plan, prepared, emitter)
    except Exception as exc:  # reported to the parent as the run's `error` outcome
        emitter.send({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        os._exit(1)
    emitter.send({"type": "done"})
    os._exit(0)  # do not wait for a load thread a broken strategy left blocked


MODES = {"bench": (prepare, load), "races": (prepare_races, load_races), "races-fork": (prepare_races, load_races),
         "leaks": (prepare_strategy, load_leaks), "stale": (prepare, load_stale)}

if __name__ == "__main__":
    main()
