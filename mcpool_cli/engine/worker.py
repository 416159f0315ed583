"""The worker process host: reads its plan on stdin, runs its kind's loop, streams JSON lines on stdout.

Run as `python -m mcpool_cli.engine.worker`. It never reports on itself: if a strategy corrupts memory and the
interpreter dies, the parent still holds every snapshot streamed before. Which loop runs is the plan's `mode`,
looked up in the registry of kinds; each kind's loop.py holds its MODES, `(prepare, load)` pairs.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from mcpool_cli.engine.children import exit_if_orphaned
from mcpool_cli.engine.plan import ClientConfig, WorkerPlan
from mcpool_cli.engine.strategies import Strategy, build_strategy
from mcpool_cli.engine.workload import KeySpace, build_key_space
from mcpool_cli.kinds import by_mode

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
        self.resumed = threading.Event()  # the parent's `resume` command (check-stale's idle pause is over)

    def send(self, message: dict[str, Any]) -> None:
        self.send_line(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def send_line(self, encoded: bytes) -> None:
        """Write one message already encoded as a JSON line (ending in a newline)."""
        line = memoryview(encoded)
        with self._lock:
            while line:
                line = line[os.write(self._fd, line):]


def make_master_client(config: ClientConfig) -> Any:
    import pylibmc

    return pylibmc.Client(list(config.servers), binary=config.binary, behaviors=dict(config.behaviors))


def build_for(plan: WorkerPlan, master: Any) -> Strategy:
    """The plan's strategy around the master client."""
    run = plan.run
    return build_strategy(run.strategy, master, run.threads, run.effective_pool_size, run.relinquish,
                          run.import_path, run.client.servers, run.client.options, run.ops_per_request)


@dataclass(frozen=True)
class Prepared:
    """A worker ready to load: its strategy built and its share of the key space written."""

    strategy: Any
    space: KeySpace


def prepare_strategy(plan: WorkerPlan, emitter: Emitter) -> Prepared:
    """The strategy built, no key space: for loops that write their own keys."""
    run = plan.run
    return Prepared(build_for(plan, make_master_client(run.client)), KeySpace((), ()))


def populate(client: Any, space: KeySpace, plan: WorkerPlan, ttl_s: int, emitter: Emitter) -> None:
    """Write this worker's share of the key space so that gets find their values."""
    mine = range(plan.worker_index, len(space.keys), plan.run.processes)
    for start in range(0, len(mine), POPULATE_CHUNK):
        chunk = mine[start:start + POPULATE_CHUNK]
        failed = client.set_multi({space.keys[i]: space.values[i] for i in chunk}, time=ttl_s)
        if failed:
            raise RuntimeError(f"could not write {len(failed)} keys while filling the key space")
        emitter.send({"type": "progress", "phase": "populate", "completed": len(chunk)})


def prepare_key_space(plan: WorkerPlan, emitter: Emitter) -> Prepared:
    """The strategy built, and this worker's share of the key space written."""
    run = plan.run
    master = make_master_client(run.client)
    strategy = build_for(plan, master)
    space = build_key_space(run.workload)
    emitter.send({"type": "phase", "phase": "populate"})
    populate(master.clone(), space, plan, run.workload.ttl_s, emitter)
    return Prepared(strategy, space)


def guarded(body: Callable[[], None], token: int, emitter: Emitter, strategy: Any) -> Callable[[], None]:
    """A load thread's body that tells the parent when it dies, and the strategy when it ends."""

    def run() -> None:
        try:
            body()
            strategy.thread_done()
        except BaseException as exc:  # a strategy that kills its thread makes the trial an error
            emitter.send({"type": "error", "message": f"load thread {token} died: {type(exc).__name__}: {exc}"})
    return run


def start_load_threads(plan: WorkerPlan, strategy: Any, emitter: Emitter,
                       body_for: Callable[[int], Callable[[], None]]) -> list[threading.Thread]:
    """A daemon thread per load thread of the plan, each running `body_for(token)` guarded. Tokens are never reused
    within a run (unlike thread idents), so a pool keyed on threads can be told apart from a leak."""
    threads = []
    for index in range(plan.run.threads):
        token = plan.worker_index * plan.run.threads + index
        thread = threading.Thread(target=guarded(body_for(token), token, emitter, strategy),
                                  name=f"mcpool-load-{token}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def drain_all(sink: queue.SimpleQueue) -> list[Any]:
    items = []
    while True:
        try:
            items.append(sink.get_nowait())
        except queue.Empty:
            return items


def ship_until_done(threads: list[threading.Thread], sink: queue.SimpleQueue, merged: Callable[[list[Any]], Any],
                    message: Callable[[Any], dict[str, Any]], interval_s: float, emitter: Emitter) -> None:
    """The worker's main thread for the checks' loops: every `interval_s`, what the load threads put on `sink`,
    `merged` into one batch, goes to the parent as `message(batch)`; once more after the last thread ended."""
    while True:
        alive = any(thread.is_alive() for thread in threads)
        emitter.send(message(merged(drain_all(sink))))
        if not alive:
            return
        time.sleep(interval_s)


def watch_parent(stdin: BinaryIO, emitter: Emitter) -> None:
    """Take the parent's commands; exit at once when it goes away (stdin closes), so no worker outlives mcpool."""
    for line in stdin:
        if line.strip() == b"resume":
            emitter.resumed.set()
    os._exit(70)


def protocol_stream() -> BinaryIO:
    """A private copy of fd 1 for the snapshot protocol; fd 1 itself then points at stderr.

    A custom strategy that print()s cannot corrupt the stream: its output lands on stderr with the rest.
    """
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(protocol_fd, "wb")


def main() -> None:
    """Plan on stdin; `ready` once populated; wait for the parent's `go` so all workers start together."""
    exit_if_orphaned()
    stdin = sys.stdin.buffer
    plan = WorkerPlan.from_json(stdin.readline().decode())
    emitter = Emitter(protocol_stream())
    emitter.send({"type": "hello", "pid": os.getpid()})
    try:
        prepare_for, load_for = by_mode(plan.run.mode).module("loop").MODES[plan.run.mode]
        prepared = prepare_for(plan, emitter)
        emitter.send({"type": "ready"})
        if stdin.readline().strip() != b"go":
            os._exit(70)  # the parent is gone
        threading.Thread(target=watch_parent, args=(stdin, emitter), daemon=True).start()
        load_for(plan, prepared, emitter)
    except Exception as exc:  # reported to the parent as the run's `error` outcome
        emitter.send({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        os._exit(1)
    emitter.send({"type": "done"})
    os._exit(0)  # do not wait for a load thread a broken strategy left blocked


if __name__ == "__main__":
    main()
