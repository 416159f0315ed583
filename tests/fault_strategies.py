"""Test-only custom strategies that fail on purpose, so crash, hang and race detection is deterministic."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import pylibmc


FAULT_AFTER_S = 0.6  # after the tests' 100 ms warm-up, so measured results exist before the fault


class _CountingPool:
    """A FIFO pool that lets `hook(n, age_s)` act on the n-th reserve(), `age_s` after the first."""

    def __init__(self, master: pylibmc.Client, threads: int) -> None:
        self.pool = pylibmc.ClientPool(master, threads)
        self.calls = 0
        self.first = 0.0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def reserve(self):
        with self.lock:
            self.calls += 1
            n = self.calls
            self.first = self.first or time.monotonic()
        self.hook(n, time.monotonic() - self.first)
        with self.pool.reserve(block=True) as client:
            yield client

    def hook(self, n: int, age_s: float) -> None:
        pass


class _Crashing(_CountingPool):
    def hook(self, n: int, age_s: float) -> None:
        if age_s >= FAULT_AFTER_S:
            sys.stderr.write("mcpool-test: double free or corruption (simulated)\n")
            sys.stderr.flush()
            os.abort()


class _Hanging(_CountingPool):
    def hook(self, n: int, age_s: float) -> None:
        if age_s >= FAULT_AFTER_S:
            threading.Event().wait()  # never set: every thread blocks here


class _WrongKey:
    """Wraps a client so that its get answers with the reply to an earlier get of another key, as a client
    shared by two threads does."""

    def __init__(self, client: pylibmc.Client, pool: "_Racy") -> None:
        self.client = client
        self.pool = pool

    def get(self, key: str):
        reply = self.client.get(key)
        earlier, self.pool.earlier = self.pool.earlier, (key, reply)
        return earlier[1] if earlier[0] != key and earlier[1] is not None else reply

    def set(self, *args, **kwargs):
        return self.client.set(*args, **kwargs)


class _Racy(_CountingPool):
    earlier: tuple = ("", None)

    @contextlib.contextmanager
    def reserve(self):
        with self.lock:
            self.calls += 1
            n = self.calls
        with self.pool.reserve(block=True) as client:
            yield _WrongKey(client, self) if n % 50 == 0 else client


def crash_pool(master: pylibmc.Client, threads: int) -> _CountingPool:
    """Aborts its own process (SIGABRT) 0.6 s into the load, after printing a glibc-like line."""
    return _Crashing(master, threads)


def hang_pool(master: pylibmc.Client, threads: int) -> _CountingPool:
    """Blocks every thread forever from 0.6 s into the load on."""
    return _Hanging(master, threads)


def racy_pool(master: pylibmc.Client, threads: int) -> _CountingPool:
    """Every 50th reserve hands out a client whose get may return another key's earlier reply."""
    return _Racy(master, threads)


def broken_factory(master: pylibmc.Client, threads: int) -> None:
    """Raises inside the worker, as a user's buggy factory would."""
    raise RuntimeError("pool factory exploded on purpose")


def slow_start(master: pylibmc.Client, threads: int) -> _CountingPool:
    """A normal pool whose construction takes a moment (for interrupt tests)."""
    time.sleep(0.1)
    return _CountingPool(master, threads)


not_callable = 42


class _ThreadKiller(_CountingPool):
    def hook(self, n: int, age_s: float) -> None:
        if age_s >= FAULT_AFTER_S:
            raise SystemExit("a pool that ends its thread")


class _Chatty(_CountingPool):
    def hook(self, n: int, age_s: float) -> None:
        if n % 100 == 0:
            print("pool: rotating", end="", flush=True)  # a user's stray print() on stdout


def thread_killer_pool(master: pylibmc.Client, threads: int) -> _CountingPool:
    """Raises SystemExit (not an Exception) from reserve() 0.6 s into the load: every load thread dies."""
    return _ThreadKiller(master, threads)


def chatty_pool(master: pylibmc.Client, threads: int) -> _CountingPool:
    """A working pool that prints to stdout now and then, as debugging code does."""
    return _Chatty(master, threads)


class _Refusing(_CountingPool):
    def hook(self, n: int, age_s: float) -> None:
        raise RuntimeError("no client for you")


def refusing_pool(master: pylibmc.Client, threads: int) -> _CountingPool:
    """Every reserve() raises: nothing is ever checked, so nothing may be called safe."""
    return _Refusing(master, threads)


class _InflightClient:
    """A thin pure-Python client over pylibmc, as many pure-Python libraries are built: it tracks requests in
    flight and its read buffer in shared state, so two threads using it at once trip over each other now and
    then, in well under 1% of calls. It raises from its own code (KeyError, AssertionError, AttributeError) but never returns a wrong value:
    the real client under it is used by one thread at a time."""

    def __init__(self, master: pylibmc.Client) -> None:
        self.client = master.clone()
        self.lock = threading.Lock()
        self.inflight: dict[str, str] = {}
        self.calls = 0
        self.buffer: bytes | None = b""

    def _call(self, op: str, key: str, *args):
        self.calls += 1
        self.inflight[key] = op
        if self.calls % 256 == 0:  # a "reconnect": the buffer is gone for a moment
            self.buffer = None
            time.sleep(0)
            self.buffer = b""
        with self.lock:
            reply = getattr(self.client, op)(key, *args)
        self.buffer.strip()  # AttributeError while another thread reconnects
        if self.calls % 16:
            self.inflight.pop(key, None)
        else:  # the library's careless path: KeyError when another thread did the same key and removed it first
            del self.inflight[key]
        assert key not in self.inflight, "a request in flight twice"  # another thread started the same key
        return reply

    def get(self, key: str):
        return self._call("get", key)

    def set(self, key: str, *args):
        return self._call("set", key, *args)


class _SharedInflight:
    def __init__(self, master: pylibmc.Client) -> None:
        self.shared = _InflightClient(master)

    @contextlib.contextmanager
    def reserve(self):
        yield self.shared


def inflight_pool(master: pylibmc.Client, threads: int) -> _SharedInflight:
    """One pure-Python client shared by every thread: under concurrency it raises KeyError, AssertionError or
    AttributeError from its own code, and never returns another key's value."""
    return _SharedInflight(master)


class _RaisesNow:
    """A client whose get raises KeyError now and then, from its own code, as a buggy wrapper does."""

    def __init__(self, client: pylibmc.Client, pool: "_Erring") -> None:
        self.client, self.pool = client, pool

    def get(self, key: str):
        self.pool.gets += 1  # under the pool's lock: one thread at a time holds this client
        n = self.pool.gets
        if n % 7 == 0:
            return {}[key]  # KeyError
        return self.client.get(key)

    def set(self, *args, **kwargs):
        return self.client.set(*args, **kwargs)


class _Erring:
    """One client, connected up front and lent to one thread at a time: nothing to leak, no connection per thread."""

    def __init__(self, master: pylibmc.Client) -> None:
        self.client = master
        self.client.get("mcpool-test:connect")  # connected before the churn's baseline is read
        self.lock = threading.Lock()
        self.gets = 0

    @contextlib.contextmanager
    def reserve(self):
        with self.lock:
            yield _RaisesNow(self.client, self)


def erring_pool(master: pylibmc.Client, threads: int) -> _Erring:
    """One client lent to one thread at a time (no leak, no churn), whose get raises KeyError on every 7th call."""
    return _Erring(master)


class _EarlyErring(_Erring):
    """_Erring whose get raises only in the first 0.3 s of the load: before check-stale's fault strikes."""

    first = 0.0

    @contextlib.contextmanager
    def reserve(self):
        with self.lock:
            self.first = self.first or time.monotonic()
            self.gets = 1 if time.monotonic() - self.first > 0.3 else self.gets  # never a 7th get after 0.3 s
            yield _RaisesNow(self.client, self)


def early_erring_pool(master: pylibmc.Client, threads: int) -> _Erring:
    """One client lent to one thread at a time whose get raises KeyError on every 7th call, only in the first
    0.3 s of the load (check-stale's fault strikes later): errors no fault explains."""
    return _EarlyErring(master)


class _ListPool:
    """The pooling document's own list pool: pop a client, push it back; an empty list raises IndexError."""

    def __init__(self, master: pylibmc.Client, size: int) -> None:
        self.clients = [master.clone() for _ in range(size)]

    @contextlib.contextmanager
    def reserve(self):
        client = self.clients.pop()  # IndexError when every client is out
        try:
            yield client
        finally:
            self.clients.append(client)


def small_list_pool(master: pylibmc.Client, threads: int) -> _ListPool:
    """A list pool with half as many clients as threads: reserve() raises IndexError whenever all are out."""
    return _ListPool(master, max(1, threads // 2))
