"""Framework cache setups (Django's PyMemcacheCache and PyLibMCCache, Flask-Caching's MemcachedCache) against a real
memcached: clean in bench, safe in check-races, the end-of-request step every --ops-per-request ops (seen on the
server: Django's request_finished closes pymemcache's connection, so each request opens one), refused with one
line when the framework is missing."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from mcpool_cli.engine.frameworks import Front, RequestStrategy
from mcpool_cli.engine.server import server_stats
from tests.conftest import invoke_mcpool

FRAMEWORKS = ("django-pymemcache", "django-pylibmc", "flask-memcached")
QUICK_BENCH = ["--duration", "600ms", "--warmup", "100ms", "--keys", "300", "--quiet", "--json", "-"]


def strategy_args(names) -> list[str]:
    return [arg for name in names for arg in ("--strategy", name)]


def total_connections(memcached) -> int:
    return int(server_stats(memcached)["total_connections"])


# ---------------------------------------------------------------- the request lease, without a framework


class Memory(dict):
    def set(self, key: str, value: Any, ttl_s: int) -> None:
        self[key] = value


class Counted(RequestStrategy):
    """A setup whose requests are only counted: begun and ended, per thread."""

    def __init__(self, ops_per_request: int) -> None:
        super().__init__("counted", ops_per_request)
        self.begun, self.ended = 0, []

    def front(self) -> Front:
        return Front(Memory())

    def begin_request(self) -> Any:
        self.begun += 1
        return self.begun

    def end_request(self, token: Any) -> None:
        self.ended.append(token)


def test_a_request_ends_after_n_ops_and_when_its_thread_ends():
    strategy = Counted(3)
    for _ in range(7):
        with strategy.reserve() as cache:
            cache.get("k")
    assert strategy.ended == [1, 2]  # two full requests; the third has one op so far
    strategy.thread_done()
    assert strategy.ended == [1, 2, 3] and strategy.begun == 3
    strategy.thread_done()  # nothing open: no request ends twice
    assert strategy.ended == [1, 2, 3]


def test_a_lease_of_several_calls_ends_its_request_at_the_lease_exit():
    strategy = Counted(2)
    with strategy.reserve() as cache:  # check-leaks' churn: a set and a get under one lease
        cache.set("k", b"v", 60)
        cache.get("k")
        cache.get("k")
        assert strategy.ended == []
    assert strategy.ended == [1]


# ---------------------------------------------------------------- against memcached


def test_strategies_lists_the_framework_setups():
    result = invoke_mcpool("strategies")
    assert result.returncode == 0, result.stderr
    words_out = " ".join(result.stdout.split())  # a description may wrap in its column
    for words in (*FRAMEWORKS, "Django", "Flask-Caching", "ClientPool of size 1"):
        assert words in words_out


def test_framework_setups_run_clean_in_bench_with_every_op(memcached):
    result = invoke_mcpool("bench", "-s", memcached.spec, "--threads", "4", "--mix", "get=5,set=2,delete=1,get_multi=2",
                           *QUICK_BENCH, *strategy_args(FRAMEWORKS))
    assert result.returncode == 0, result.stderr
    runs = {run["strategy"]: run for run in json.loads(result.stdout)["runs"]}
    for name in FRAMEWORKS:
        run = runs[name]
        assert run["outcome"] == "ok" and run["ops"] > 50, run
        assert run["error_count"] == 0 and run["wrong_values"] == 0 and run["corrupt_values"] == 0, run


@pytest.mark.parametrize("per_request", [5, 50])
def test_django_pymemcache_opens_a_connection_per_request(memcached, per_request):
    """request_finished closes the thread's pymemcache client: the server counts a new connection per request."""
    before = total_connections(memcached)
    result = invoke_mcpool("bench", "-s", memcached.spec, "--threads", "3", "--ops-per-request", str(per_request),
                           *QUICK_BENCH, "--strategy", "django-pymemcache")
    opened = total_connections(memcached) - before
    (run,) = json.loads(result.stdout)["runs"]
    requests = run["ops_including_warmup"] / per_request
    assert run["ops_including_warmup"] > 20 * per_request, run
    assert requests * 0.95 - 3 <= opened <= requests * 1.05 + 10, (opened, requests)


def test_django_pylibmc_keeps_its_connections_across_requests(memcached):
    """PyLibMCCache.close() does nothing: request_finished costs no connection."""
    before = total_connections(memcached)
    result = invoke_mcpool("bench", "-s", memcached.spec, "--threads", "3", "--ops-per-request", "2",
                           *QUICK_BENCH, "--strategy", "django-pylibmc")
    (run,) = json.loads(result.stdout)["runs"]
    assert run["ops_including_warmup"] > 200 and total_connections(memcached) - before <= 3 + 10, run


@pytest.mark.parametrize("per_request, requests_per_thread", [(2, 3), (4, 2), (10, 1)])
def test_a_churn_thread_ends_its_request_as_it_ends(memcached, per_request, requests_per_thread):
    """check-leaks' churn threads make 6 calls (3 leases of set and get): with django-pymemcache each request
    opens one connection, and the last request ends with the thread."""
    result = invoke_mcpool("check-leaks", "-s", memcached.spec, "--strategy", "django-pymemcache", "--churn", "40",
                           "--concurrency", "8", "--ops-per-request", str(per_request), "--quiet", "--json", "-")
    (row,) = json.loads(result.stdout)["results"]
    assert row["leaked_connections"] == 0 and row["churn_errors"] == 0, row
    assert abs(row["connections_opened"] - 40 * requests_per_thread) <= 2, row


@pytest.mark.parametrize("threads", ["8", "64"])
def test_race_checker_calls_the_framework_setups_safe(memcached, threads):
    result = invoke_mcpool("check-races", "-s", memcached.spec, "--threads", threads, "--trials", "1",
                           "--duration", "700ms", "--quiet", "--json", "-", *strategy_args(FRAMEWORKS))
    verdicts = {row["strategy"]: row["verdict"] for row in json.loads(result.stdout)["results"]}
    assert verdicts == {name: "safe" for name in FRAMEWORKS}, result.stderr[-2000:]
    assert result.returncode == 0


def test_a_scenario_sets_ops_per_request(memcached, tmp_path):
    scenario = tmp_path / "django.toml"
    scenario.write_text('[bench]\nstrategies = ["django-pymemcache"]\nops_per_request = 5\nthreads = 2\n'
                        'duration = "300ms"\nwarmup = "100ms"\nkeys = 100\n')
    result = invoke_mcpool("run", str(scenario), "-s", memcached.spec, "--quiet", "--json", "-")
    assert result.returncode == 0, result.stderr
    (document,) = json.loads(result.stdout)["documents"]
    assert document["options"]["ops_per_request"] == 5
    assert "--ops-per-request" in json.loads(result.stdout)["phases"][0]["args"]


@pytest.mark.parametrize("module, strategy, extra", [
    ("django", "django-pymemcache", "django"),
    ("flask_caching", "flask-memcached", "flask"),
])
def test_a_missing_framework_is_exit_2_with_its_pip_command(monkeypatch, module, strategy, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    result = invoke_mcpool("bench", "--strategy", strategy)
    assert result.returncode == 2
    distribution = "Django" if module == "django" else "Flask-Caching"
    assert result.stderr.strip() == (f"mcpool: error: strategy {strategy} needs {distribution}, which is not "
                                     f"installed: pip install 'mcpool[{extra}]'")


@pytest.mark.parametrize("args", [["--client-option", "no_delay=true"], ["--behavior", "tcp_nodelay=1"]])
def test_framework_setups_take_no_client_options(args):
    result = invoke_mcpool("bench", "--strategy", "django-pymemcache", *args)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "django-pymemcache" in result.stderr
