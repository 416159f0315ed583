"""Strategies of other client libraries than pylibmc: what each is, which package it needs, how it is built.

Each is built in the worker around the run's servers (`host:port` specs), never around the master pylibmc
client, and hands the loop an object with pylibmc's call names (get, set, get_multi, delete), which these
libraries share. Library defaults are kept, except a 5 s connect and read timeout where a library would wait
forever (pymemcache's default), the same bound pylibmc's poll timeout sets: a frozen server then shows as
timeouts, not as a hung worker.

Framework setups (Django's cache backends, Flask-Caching) are built in engine/frameworks.py as a typical settings
file has them, timeouts included: a Django PyMemcacheCache without OPTIONS waits forever on a frozen server, and
that shows as a hang, as it would in the app. Their builders take the run's ops per request; the others ignore it.
"""

from __future__ import annotations

import importlib
import importlib.util
import queue
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

from mcpool_cli.engine.strategies import PerThreadStrategy, SharedStrategy, Strategy

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Family:
    """A client library (or a framework's cache layer) and how to install it."""

    name: str
    module: str  # what must import
    distribution: str  # its package on PyPI
    extra: str  # mcpool's extra that installs it

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.distribution)
        except PackageNotFoundError:
            return None

    @property
    def pip(self) -> str:
        return f"pip install 'mcpool[{self.extra}]'"


PYLIBMC = Family("pylibmc", "pylibmc", "pylibmc", "")
PYMEMCACHE = Family("pymemcache", "pymemcache", "pymemcache", "pymemcache")
MEMCACHE = Family("python-memcached", "memcache", "python-memcached", "memcache")
DJANGO = Family("Django", "django", "Django", "django")
FLASK = Family("Flask-Caching", "flask_caching", "Flask-Caching", "flask")

# (servers, threads, pool size, the client's keyword arguments from --client-option, ops per request)
Builder = Callable[[tuple[str, ...], int, int, dict[str, Any], int], Strategy]


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    family: Family
    summary: str
    build: Builder | None = None
    single_server: bool = True  # the client takes one server; several need the hashing strategy
    client_options: bool = True  # takes --client-option (framework setups are configured as a settings file is)
    also: tuple[Family, ...] = ()  # other libraries it needs (Django's PyMemcacheCache needs pymemcache)

    def missing(self) -> Family | None:
        """The first library it needs that is not installed, or None."""
        return next((family for family in (self.family, *self.also) if not family.installed()), None)


def host_port(spec: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as pymemcache takes a server."""
    host, _, port = spec.rpartition(":")
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------- pymemcache


def with_timeouts(options: dict[str, Any]) -> dict[str, Any]:
    """pymemcache's keyword arguments: the 5 s timeouts, then the user's (which may change them)."""
    return {"connect_timeout": TIMEOUT_S, "timeout": TIMEOUT_S, **options}


def pymemcache_client(spec: str, options: dict[str, Any]) -> Any:
    from pymemcache.client.base import Client

    return Client(host_port(spec), **with_timeouts(options))


class SharedClientStrategy(SharedStrategy):
    """One client object of another library for every thread, closed at the end."""

    def __init__(self, name: str, client: Any) -> None:
        super().__init__(client)
        self.name = name

    def close(self) -> None:
        client = self.thread_client()
        closing = getattr(client, "close", None) or getattr(client, "disconnect_all", None)
        if closing is not None:
            closing()


class ThreadClientStrategy(PerThreadStrategy):
    """A client made by `make` for each thread, kept in a thread-local and closed when the thread ends."""

    def __init__(self, name: str, make: Callable[[], Any]) -> None:
        super().__init__(None)
        self.name = name
        self._make = make

    def new_client(self) -> Any:
        return self._make()

    def thread_done(self) -> None:
        lease = self._local.__dict__.pop("lease", None)
        if lease is not None:
            self.closed += 1
            lease.client.close()


class _Borrowed:
    """Lends a client of pymemcache's ObjectPool as PooledClient does for each call (`get_and_release` with
    `destroy_on_fail`): exhaustion ("Too many objects") becomes queue.Empty, which mcpool counts as pool
    exhaustion, not as an error."""

    __slots__ = ("pool", "inner")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.inner: Any = None

    def __enter__(self) -> Any:
        inner = self.pool.get_and_release(destroy_on_fail=True)
        try:
            client = inner.__enter__()
        except RuntimeError as exc:
            if "Too many objects" in str(exc):
                raise queue.Empty() from exc
            raise
        self.inner = inner
        return client

    def __exit__(self, *exc: Any) -> bool:
        return bool(self.inner.__exit__(*exc))


class PooledClientStrategy(Strategy):
    """pymemcache's PooledClient, shared by the threads: each call borrows a client from its pool."""

    name = "pymemcache-pooled"

    def __init__(self, spec: str, size: int, options: dict[str, Any]) -> None:
        from pymemcache.client.base import PooledClient

        self.pooled = PooledClient(host_port(spec), **{"max_pool_size": size, **with_timeouts(options)})

    def reserve(self) -> ContextManager[Any]:
        return _Borrowed(self.pooled.client_pool)

    def held_clients(self) -> list[Any]:
        return list(getattr(self.pooled.client_pool, "_free_objs", []))

    def standing_clients(self) -> int:
        return len(self.held_clients())

    def pool_state(self) -> dict[str, int]:
        pool = self.pooled.client_pool
        free, used = getattr(pool, "_free_objs", ()), getattr(pool, "_used_objs", ())
        return {"in_use": len(used), "created": len(free) + len(used), "waiters": self.waiting}

    def close(self) -> None:
        self.pooled.close()


def hash_client(servers: tuple[str, ...], pooling: bool, size: int, options: dict[str, Any]) -> Any:
    from pymemcache.client.hash import HashClient

    chosen: dict[str, Any] = {"use_pooling": pooling, **({"max_pool_size": size} if pooling else {})}
    return HashClient([host_port(spec) for spec in servers], **{**chosen, **with_timeouts(options)})


# ---------------------------------------------------------------- python-memcached


def memcache_client(servers: tuple[str, ...], options: dict[str, Any]) -> Any:
    import memcache

    return memcache.Client(list(servers), **{"socket_timeout": TIMEOUT_S, **options})


# ---------------------------------------------------------------- frameworks (engine/frameworks.py)


def django_strategy(name: str, servers: tuple[str, ...], ops_per_request: int) -> Strategy:
    from mcpool_cli.engine.frameworks import DjangoStrategy

    return DjangoStrategy(name, servers, ops_per_request)


def flask_strategy(servers: tuple[str, ...], ops_per_request: int) -> Strategy:
    from mcpool_cli.engine.frameworks import FlaskStrategy

    return FlaskStrategy(servers, ops_per_request)


def project_django(servers: tuple[str, ...], ops_per_request: int) -> Strategy:
    from mcpool_cli.engine.frameworks import ProjectDjangoStrategy

    return ProjectDjangoStrategy(servers, ops_per_request)


def project_flask(servers: tuple[str, ...], ops_per_request: int) -> Strategy:
    import os

    from mcpool_cli.engine.frameworks import ProjectFlaskStrategy

    return ProjectFlaskStrategy(servers, ops_per_request, os.environ["FLASK_APP"])


PROJECT_ENV = {"django-settings": "DJANGO_SETTINGS_MODULE", "flask-app": "FLASK_APP"}  # what names the project


REGISTRY: tuple[StrategyInfo, ...] = (
    StrategyInfo("pymemcache-shared", PYMEMCACHE, "one pymemcache Client shared by all threads (not thread-safe: "
                 "pymemcache #34)", lambda servers, threads, size, options, per_request: SharedClientStrategy(
                     "pymemcache-shared", pymemcache_client(servers[0], options))),
    StrategyInfo("pymemcache-pooled", PYMEMCACHE, "pymemcache PooledClient shared by all threads (--pool-size "
                 "clients; exhaustion counted as pool exhausted)",
                 lambda servers, threads, size, options, per_request: PooledClientStrategy(servers[0], size, options)),
    StrategyInfo("pymemcache-per-thread", PYMEMCACHE, "a pymemcache Client per thread, in a thread-local",
                 lambda servers, threads, size, options, per_request: ThreadClientStrategy(
                     "pymemcache-per-thread", lambda: pymemcache_client(servers[0], options))),
    StrategyInfo("pymemcache-hash", PYMEMCACHE, "one pymemcache HashClient over the servers, shared, no pooling",
                 lambda servers, threads, size, options, per_request: SharedClientStrategy(
                     "pymemcache-hash", hash_client(servers, False, size, options)), single_server=False),
    StrategyInfo("pymemcache-hash-per-thread", PYMEMCACHE, "a pymemcache HashClient per thread, in a thread-local "
                 "(each with its own failed and dead servers)",
                 lambda servers, threads, size, options, per_request: ThreadClientStrategy(
                     "pymemcache-hash-per-thread", lambda: hash_client(servers, False, size, options)),
                 single_server=False),
    StrategyInfo("pymemcache-hash-pooled", PYMEMCACHE, "one pymemcache HashClient with use_pooling=True "
                 "(--pool-size per server), shared",
                 lambda servers, threads, size, options, per_request: SharedClientStrategy(
                     "pymemcache-hash-pooled", hash_client(servers, True, size, options)), single_server=False),
    StrategyInfo("memcache-shared", MEMCACHE, "one python-memcached Client shared by all threads (a "
                 "threading.local: each thread gets its own connections)",
                 lambda servers, threads, size, options, per_request: SharedClientStrategy(
                     "memcache-shared", memcache_client(servers, options)),
                 single_server=False),
    StrategyInfo("django-pymemcache", DJANGO, "Django's PyMemcacheCache (a pymemcache HashClient per thread), "
                 "closed by request_finished every --ops-per-request ops: a new connection per request",
                 lambda servers, threads, size, options, per_request: django_strategy(
                     "django-pymemcache", servers, per_request), single_server=False, client_options=False,
                 also=(PYMEMCACHE,)),
    StrategyInfo("django-pylibmc", DJANGO, "Django's PyLibMCCache (a pylibmc Client per thread), with "
                 "request_finished every --ops-per-request ops (its close() does nothing)",
                 lambda servers, threads, size, options, per_request: django_strategy(
                     "django-pylibmc", servers, per_request), single_server=False, client_options=False),
    StrategyInfo("flask-memcached", FLASK, "Flask-Caching MemcachedCache: with pylibmc installed, cachelib lends "
                 "one pylibmc ClientPool of size 1 to all threads (they queue for it); app context popped every "
                 "--ops-per-request ops",
                 lambda servers, threads, size, options, per_request: flask_strategy(servers, per_request),
                 single_server=False, client_options=False),
    StrategyInfo("django-settings", DJANGO, "your Django project's default cache, as DJANGO_SETTINGS_MODULE "
                 "configures it (LOCATION pointed at the server under test), request_finished every "
                 "--ops-per-request ops", lambda servers, threads, size, options, per_request: project_django(
                     servers, per_request), single_server=False, client_options=False),
    StrategyInfo("flask-app", FLASK, "your Flask app's Flask-Caching cache, as the app FLASK_APP names configures "
                 "it (servers pointed at the server under test), app context popped every --ops-per-request ops",
                 lambda servers, threads, size, options, per_request: project_flask(servers, per_request),
                 single_server=False, client_options=False),
)


def info(name: str) -> StrategyInfo | None:
    return next((item for item in REGISTRY if item.name == name), None)


def build_other(name: str, servers: tuple[str, ...], threads: int, pool_size: int,
                options: tuple[tuple[str, Any], ...] = (), ops_per_request: int = 10) -> Strategy:
    found = info(name)
    assert found is not None and found.build is not None
    importlib.import_module(found.family.module)
    return found.build(servers, threads, pool_size, dict(options), ops_per_request)
