"""Framework cache setups as strategies: what a request thread of Django or Flask does with its cache.

Each load thread is a server thread serving requests one after another: a request is `ops_per_request`
consecutive ops, and after it the framework's own end-of-request step runs (Django sends `request_finished`,
which closes every cache; Flask pops the app context, which runs its teardown). The step also runs when a
thread ends, since a short-lived thread (check-leaks' churn) is one request.

The setups are what a typical settings file or app factory configures, with one change each, because mcpool
writes its key space with raw keys before the load and the frameworks prefix keys: Django gets a KEY_FUNCTION
that returns mcpool's key unchanged (its default makes `:1:key`), Flask-Caching a CACHE_KEY_PREFIX of ""
(its default is `flask_cache_`). Values are bytes, which both store raw (flags 0), so every read returns
exactly the bytes pylibmc's fill wrote.
"""

from __future__ import annotations

import threading
from typing import Any, ContextManager

from mcpool_cli.engine.strategies import Strategy

RAW_KEY = "mcpool_cli.engine.frameworks.raw_key"
DJANGO_BACKENDS = {
    "django-pymemcache": "django.core.cache.backends.memcached.PyMemcacheCache",
    "django-pylibmc": "django.core.cache.backends.memcached.PyLibMCCache",
}


def raw_key(key: str, key_prefix: str, version: int) -> str:
    """Django's KEY_FUNCTION that leaves mcpool's key as it is (Django's default is `prefix:version:key`)."""
    return key


class Front:
    """The framework's cache under pylibmc's call names, counting the calls of the request in progress."""

    __slots__ = ("cache", "calls")

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.calls = 0

    def get(self, key: str) -> Any:
        self.calls += 1
        return self.cache.get(key)

    def set(self, key: str, value: Any, ttl_s: int) -> Any:
        self.calls += 1
        return self.cache.set(key, value, ttl_s)

    def get_multi(self, keys: list[str]) -> dict[str, Any]:
        self.calls += 1
        return self.cache.get_many(keys)

    def delete(self, key: str) -> Any:
        self.calls += 1
        return self.cache.delete(key)


class FlaskFront(Front):
    """Flask-Caching's get_many returns a list with None for misses: get_multi asks get_dict and drops them,
    as pylibmc leaves misses out."""

    __slots__ = ()

    def get_multi(self, keys: list[str]) -> dict[str, Any]:
        self.calls += 1
        return {key: value for key, value in self.cache.get_dict(*keys).items() if value is not None}


class Request:
    """A thread's lease: a request begins at its first op and ends at the first lease exit after N calls
    (a lease may hold several calls, as check-leaks' churn does)."""

    __slots__ = ("strategy", "front", "token", "open")

    def __init__(self, strategy: "RequestStrategy", front: Front) -> None:
        self.strategy, self.front = strategy, front
        self.token: Any = None
        self.open = False

    def __enter__(self) -> Front:
        if not self.open:
            self.token = self.strategy.begin_request()
            self.open = True
        return self.front

    def __exit__(self, *exc: object) -> bool:
        if self.front.calls >= self.strategy.ops_per_request:
            self.finish()
        return False

    def finish(self) -> None:
        """The framework's end-of-request step, if a request is open."""
        if self.open:
            self.open, self.front.calls = False, 0
            self.strategy.end_request(self.token)


class RequestStrategy(Strategy):
    """Each thread serves requests of `ops_per_request` ops through the framework's cache; the loop reserves
    per op (`thread_client()` is None) so that every op passes the request's lease."""

    def __init__(self, name: str, ops_per_request: int) -> None:
        self.name = name
        self.ops_per_request = ops_per_request
        self._local = threading.local()

    def front(self) -> Front:
        raise NotImplementedError

    def begin_request(self) -> Any:
        """What the framework does as a request begins; returns what `end_request` needs."""
        return None

    def end_request(self, token: Any) -> None:
        raise NotImplementedError

    def reserve(self) -> ContextManager[Any]:
        try:
            return self._local.request
        except AttributeError:
            self._local.request = Request(self, self.front())
            return self._local.request

    def thread_done(self) -> None:
        request = self._local.__dict__.pop("request", None)
        if request is not None:
            request.finish()


# ---------------------------------------------------------------- Django


def configure_django(backend: str, servers: tuple[str, ...]) -> None:
    """Django set up once in this worker process, with CACHES as a typical settings file has them."""
    import django
    from django.conf import settings

    location: str | list[str] = servers[0] if len(servers) == 1 else list(servers)
    caches = {"default": {"BACKEND": backend, "LOCATION": location, "KEY_FUNCTION": RAW_KEY}}
    if settings.configured:
        if settings.CACHES != caches:
            raise RuntimeError("Django is already configured with other CACHES in this process")
        return
    settings.configure(CACHES=caches)
    django.setup()


def configure_project(servers: tuple[str, ...]) -> None:
    """The user's own Django project (DJANGO_SETTINGS_MODULE), set up once in this worker process: its default
    cache as its settings configure it, pointed at the server under test (LOCATION) and with mcpool's raw keys
    (KEY_FUNCTION); every other setting (BACKEND, OPTIONS, TIMEOUT, …) is the project's."""
    import django
    from django.conf import settings

    if not settings.configured or "default" not in settings.CACHES:
        settings.CACHES  # reading a setting loads DJANGO_SETTINGS_MODULE; a broken one raises here
    default = dict(settings.CACHES["default"])
    default.update(LOCATION=servers[0] if len(servers) == 1 else list(servers), KEY_FUNCTION=RAW_KEY)
    settings.CACHES = {**settings.CACHES, "default": default}
    django.setup()


class ProjectDjangoStrategy(RequestStrategy):
    """`django-settings`: the cache of the project DJANGO_SETTINGS_MODULE names, used as DjangoStrategy uses
    a typical one (a backend per thread, request_finished after each request)."""

    def __init__(self, servers: tuple[str, ...], ops_per_request: int) -> None:
        super().__init__("django-settings", ops_per_request)
        configure_project(servers)

    def front(self) -> Front:
        from django.core.cache import cache

        return Front(cache)

    def end_request(self, token: Any) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.signals import request_finished

        request_finished.send(sender=WSGIHandler)


class DjangoStrategy(RequestStrategy):
    """Django's cache in a request thread: `django.core.cache.cache` (one backend object per thread, as
    Django keeps them), and `request_finished` sent at the end of each request, as Django's handler does
    when a response closes; its receiver closes every cache of the thread."""

    def __init__(self, name: str, servers: tuple[str, ...], ops_per_request: int) -> None:
        super().__init__(name, ops_per_request)
        configure_django(DJANGO_BACKENDS[name], servers)

    def front(self) -> Front:
        from django.core.cache import cache

        return Front(cache)

    def end_request(self, token: Any) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.signals import request_finished

        request_finished.send(sender=WSGIHandler)


# ---------------------------------------------------------------- Flask


class FlaskStrategy(RequestStrategy):
    """A Flask app with Flask-Caching's MemcachedCache, shared by the threads as one app object is; each
    request runs in an app context, popped at its end (which runs the app's teardown functions).

    cachelib's MemcachedCache picks pylibmc when it imports, and then lends one `pylibmc.ClientPool` of size
    1 (pool_size's default), blocking: every thread's op waits for the one client.
    """

    name = "flask-memcached"

    def __init__(self, servers: tuple[str, ...], ops_per_request: int) -> None:
        from flask import Flask
        from flask_caching import Cache

        super().__init__(self.name, ops_per_request)
        self.app = Flask("mcpool")
        self.cache = Cache(self.app, config={"CACHE_TYPE": "MemcachedCache",
                                             "CACHE_MEMCACHED_SERVERS": list(servers), "CACHE_KEY_PREFIX": ""})

    def front(self) -> Front:
        return FlaskFront(self.cache)

    def begin_request(self) -> Any:
        context = self.app.app_context()
        context.push()
        return context

    def end_request(self, token: Any) -> None:
        token.pop()

    def held_clients(self) -> list[Any]:
        with self.app.app_context():
            client = self.cache.cache._client  # cachelib's pool (or the client, without pylibmc)
        return list(getattr(client, "queue", ()))

    def standing_clients(self) -> int:
        return 1


def load_flask_app(spec: str) -> Any:
    """The Flask app FLASK_APP names, as `flask run` finds it: `module`, `module:app` or `module:create_app()`
    (a module's `app`, or its `create_app()`)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        target = getattr(module, attr.removesuffix("()"))
        return target() if attr.endswith("()") else target
    return getattr(module, "app", None) or module.create_app()


class ProjectFlaskStrategy(FlaskStrategy):
    """`flask-app`: the user's own app (FLASK_APP) and its Flask-Caching cache as its config sets it up, pointed
    at the server under test (CACHE_MEMCACHED_SERVERS) and with mcpool's raw keys (CACHE_KEY_PREFIX "")."""

    name = "flask-app"

    def __init__(self, servers: tuple[str, ...], ops_per_request: int, spec: str) -> None:
        RequestStrategy.__init__(self, self.name, ops_per_request)
        self.app = load_flask_app(spec)
        caches = list((self.app.extensions.get("cache") or {}).keys())
        if not caches:
            raise RuntimeError(f"FLASK_APP={spec}: the app has no Flask-Caching Cache (init_app was not called)")
        self.cache = caches[0]
        self.app.config.update(CACHE_MEMCACHED_SERVERS=list(servers), CACHE_KEY_PREFIX="")
        self.cache.init_app(self.app)  # its backend built again from the app's config, now pointed here
