"""Client strategies: one small interface so the worker loop is the same for every way of sharing clients."""

from __future__ import annotations

import importlib
import queue
import sys
import threading
import time
from typing import Any, Callable, ContextManager

BUILTIN = ("shared", "fifo", "thread-mapped", "per-thread")
DESCRIPTIONS = {
    "shared": "one pylibmc.Client shared by all threads (the naive way; unsafe)",
    "fifo": "pylibmc.ClientPool: `with pool.reserve() as mc`, clients rotate FIFO",
    "thread-mapped": "pylibmc.ThreadMappedPool: a client per thread ident, relinquished on thread exit",
    "per-thread": "mc.clone() once per thread, kept in a thread-local (what Django does)",
}


class Lease:
    """A context manager that hands out one fixed client: the cheapest possible reserve()."""

    __slots__ = ("client",)

    def __init__(self, client: Any) -> None:
        self.client = client

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *exc: object) -> bool:
        return False


class Strategy:
    """Hands a client to one operation at a time.

    `reserve()` returns a context manager yielding a client; it (or its `__enter__`) may raise `queue.Empty`
    when a pool is exhausted; the loop counts that and calls `reserve_waiting()`, which waits for a client.
    """

    name = ""
    waiting = 0  # threads waiting for a client right now (a gauge: read without a lock)

    def reserve(self) -> ContextManager[Any]:
        raise NotImplementedError

    def reserve_waiting(self, deadline_ns: int) -> ContextManager[Any]:
        """A lease that is sure to enter: retry until a client is free, queue.Empty after `deadline_ns`."""
        self.waiting += 1
        try:
            while True:
                time.sleep(0.0002)
                lease = self.reserve()
                try:
                    return _Entered(lease, lease.__enter__())
                except queue.Empty:
                    if time.perf_counter_ns() >= deadline_ns:
                        raise
        finally:
            self.waiting -= 1

    def pool_state(self) -> dict[str, int]:
        """What the strategy's pool looks like now, as far as it knows: clients it made (`created`) and let go
        (`closed`), clients lent out (`in_use`), threads waiting for one (`waiters`). For live metrics."""
        return {"waiters": self.waiting}

    def thread_client(self) -> Any | None:
        """The client a thread keeps for its whole life, or None when every op must reserve one.

        Strategies that never lend a client per op (shared, per-thread) say so here; the loop then skips the
        per-op reserve, which under GIL contention costs real throughput and measures nothing.
        """
        return None

    per_thread_clients = False  # whether held clients belong to threads (so a dead thread's is a leak)

    def held_clients(self) -> list[Any]:
        """Clients the strategy holds right now (for check-leaks)."""
        return []

    def standing_clients(self) -> int:
        """Connections the strategy keeps open by design, whatever the threads do."""
        return 0

    def thread_done(self) -> None:
        """Called by each load thread as it exits."""

    def close(self) -> None:
        """Called once when the worker is done."""


class _Entered(Lease):
    """A lease already entered: hands out its client, and exits the lease it came from."""

    __slots__ = ("lease",)

    def __init__(self, lease: ContextManager[Any], client: Any) -> None:
        super().__init__(client)
        self.lease = lease

    def __exit__(self, *exc: Any) -> bool:
        return bool(self.lease.__exit__(*exc))


def leased_call(strategy: Strategy, deadline_ns: int, method: str, key: str, *args: Any) -> Any:
    """One call on a client reserved for it (waiting, until `deadline_ns`, when the pool is exhausted).

    The client goes back whatever happens; the call's own exception, or the reserve's, propagates.
    """
    try:
        lease = strategy.reserve()
        client = lease.__enter__()
    except queue.Empty:
        lease = strategy.reserve_waiting(deadline_ns)
        client = lease.__enter__()
    try:
        reply = getattr(client, method)(key, *args)
    except BaseException as exc:
        try:
            lease.__exit__(type(exc), exc, exc.__traceback__)
        except Exception:
            pass  # the call's own error is the one to report
        raise
    lease.__exit__(None, None, None)
    return reply


class SharedStrategy(Strategy):
    name = "shared"

    def __init__(self, master: Any) -> None:
        self._lease = Lease(master)

    def reserve(self) -> ContextManager[Any]:
        return self._lease

    def thread_client(self) -> Any:
        return self._lease.client

    def standing_clients(self) -> int:
        return 1

    def pool_state(self) -> dict[str, int]:
        return {"created": 1, "closed": 0}


class PerThreadStrategy(Strategy):
    name = "per-thread"

    def __init__(self, master: Any) -> None:
        self._master = master
        self._local = threading.local()
        self.created = self.closed = 0

    def reserve(self) -> ContextManager[Any]:
        try:
            return self._local.lease
        except AttributeError:
            self._local.lease = Lease(self.new_client())
            self.created += 1
            return self._local.lease

    def pool_state(self) -> dict[str, int]:
        return {"created": self.created, "closed": self.closed}

    def new_client(self) -> Any:
        """The client a thread keeps: a clone of the master."""
        return self._master.clone()

    def thread_client(self) -> Any:
        return self.reserve().__enter__()

    def thread_done(self) -> None:
        if self._local.__dict__:
            self.closed += 1
        self._local.__dict__.clear()


class FifoStrategy(Strategy):
    name = "fifo"

    def __init__(self, master: Any, size: int) -> None:
        import pylibmc

        self._pool = pylibmc.ClientPool(master, size)

    def reserve(self) -> ContextManager[Any]:
        return self._pool.reserve()

    def held_clients(self) -> list[Any]:
        return list(self._pool.queue)

    def standing_clients(self) -> int:
        return self._pool.qsize()

    def reserve_waiting(self, deadline_ns: int) -> ContextManager[Any]:
        timeout_s = max(0.001, (deadline_ns - time.perf_counter_ns()) / 1e9)
        self.waiting += 1
        try:
            client = self._pool.get(True, timeout_s)  # what reserve(block=True) does, bounded in time
        finally:
            self.waiting -= 1
        return _PutBack(self._pool, client)

    def pool_state(self) -> dict[str, int]:
        size = self._pool.maxsize or len(self._pool.queue)
        return {"created": size, "closed": 0, "in_use": size - self._pool.qsize(), "waiters": self.waiting}


class _PutBack(Lease):
    """Lends a client taken from a pool and puts it back on exit, like ClientPool.reserve()."""

    __slots__ = ("pool",)

    def __init__(self, pool: Any, client: Any) -> None:
        super().__init__(client)
        self.pool = pool

    def __exit__(self, *exc: object) -> bool:
        self.pool.put(self.client)
        return False


class PoolStrategy(Strategy):
    """Any object with pylibmc's pool interface: `reserve()` and, optionally, `relinquish()`."""

    def __init__(self, name: str, pool: Any, relinquish: bool) -> None:
        self.name = name
        self._pool = pool
        self._relinquish = relinquish and callable(getattr(pool, "relinquish", None))

    def reserve(self) -> ContextManager[Any]:
        return self._pool.reserve()

    @property
    def per_thread_clients(self) -> bool:  # type: ignore[override]
        return isinstance(self._pool, dict)  # keyed by thread, like ThreadMappedPool

    def held_clients(self) -> list[Any]:
        if isinstance(self._pool, dict):
            return list(self._pool.values())
        queued = getattr(self._pool, "queue", None)
        return list(queued) if queued is not None else []

    def thread_done(self) -> None:
        if self._relinquish:
            self._pool.relinquish()

    def pool_state(self) -> dict[str, int]:
        held = len(self._pool) if isinstance(self._pool, dict) else None  # ThreadMappedPool: a client per thread
        return {"waiters": self.waiting, **({} if held is None else {"held": held})}


def is_custom(name: str) -> bool:
    return ":" in name


def split_spec(spec: str) -> tuple[str, str]:
    """`module:callable` as (module, callable), without importing anything; a UsageProblem when malformed."""
    from mcpool_cli.errors import UsageProblem

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageProblem(f"custom strategy {spec!r} must look like module:callable, e.g. myapp.cache:make_pool")
    return module_name, attr


def load_factory(spec: str, import_path: tuple[str, ...] = ()) -> Callable[..., Any]:
    """Import `module:callable`; every failure becomes one UsageProblem line. Only ever called in a child process
    (a worker, or the probe that checks a custom strategy before the load): user code never runs in mcpool."""
    from mcpool_cli.errors import UsageProblem

    module_name, attr = split_spec(spec)
    for entry in reversed(import_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # the user's module may fail in any way, sys.exit() included
        raise UsageProblem(
            f"custom strategy {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
            "run from the folder that holds it or add it to PYTHONPATH"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UsageProblem(f"custom strategy {spec!r}: {module_name} has no callable named {attr!r}")
    return factory


def build_strategy(name: str, master: Any, threads: int, pool_size: int, relinquish: bool,
                   import_path: tuple[str, ...] = (), servers: tuple[str, ...] = (),
                   options: tuple[tuple[str, Any], ...] = (), ops_per_request: int = 10) -> Strategy:
    """The strategy called `name`: pylibmc's around the master client, another library's (or a framework's)
    around the servers."""
    import pylibmc

    from mcpool_cli.engine.families import build_other, info

    if info(name) is not None:
        for entry in reversed(import_path):  # a project's settings or app module, from the folder it runs in
            if entry not in sys.path:
                sys.path.insert(0, entry)
        return build_other(name, servers, threads, pool_size, options, ops_per_request)
    if name == "shared":
        return SharedStrategy(master)
    if name == "per-thread":
        return PerThreadStrategy(master)
    if name == "fifo":
        return FifoStrategy(master, pool_size)
    if name == "thread-mapped":
        return PoolStrategy(name, pylibmc.ThreadMappedPool(master), relinquish)
    pool = load_factory(name, import_path)(master, threads)
    if not callable(getattr(pool, "reserve", None)):
        raise TypeError(f"{name} returned {type(pool).__name__}, which has no reserve() method")
    return PoolStrategy(name, pool, relinquish)
