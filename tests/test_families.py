"""Strategies of other client libraries (pymemcache, python-memcached) against a real memcached: listed by
`mcpool strategies`, measured by bench, judged by check-races, refused with one line when they cannot run."""

from __future__ import annotations

import importlib.util
import json

import pytest

from mcpool_cli.engine.families import REGISTRY
from tests.conftest import invoke_mcpool

SAFE = ("pymemcache-pooled", "pymemcache-per-thread", "pymemcache-hash-pooled", "memcache-shared")
UNSAFE = ("pymemcache-shared", "pymemcache-hash")
QUICK_BENCH = ["--duration", "600ms", "--warmup", "100ms", "--keys", "300", "--quiet", "--json", "-"]


def strategy_args(names) -> list[str]:
    return [arg for name in names for arg in ("--strategy", name)]


def test_strategies_lists_every_one_with_its_package():
    result = invoke_mcpool("strategies")
    assert result.returncode == 0, result.stderr
    for name in ("shared", "fifo", "thread-mapped", "per-thread", *(item.name for item in REGISTRY)):
        assert name in result.stdout
    assert "pymemcache" in result.stdout and "python-memcached" in result.stdout
    assert "no: pip install" not in result.stdout  # the test extras install every library


def test_safe_strategies_run_clean_in_bench(memcached):
    result = invoke_mcpool("bench", "-s", memcached.spec, "--threads", "4", *QUICK_BENCH, *strategy_args(SAFE))
    assert result.returncode == 0, result.stderr
    runs = {run["strategy"]: run for run in json.loads(result.stdout)["runs"]}
    for name in SAFE:
        run = runs[name]
        assert run["outcome"] == "ok" and run["ops"] > 50, run
        assert run["error_count"] == 0 and run["wrong_values"] == 0 and run["corrupt_values"] == 0, run


def test_pooled_client_exhaustion_is_pool_exhaustion_not_an_error(memcached):
    result = invoke_mcpool("bench", "-s", memcached.spec, "--threads", "8", "--pool-size", "2", *QUICK_BENCH,
                           "--strategy", "pymemcache-pooled")
    (run,) = json.loads(result.stdout)["runs"]
    assert run["pool_exhausted"] > 0 and run["error_count"] == 0, run
    assert run["acquire"]["count"] > 0


def test_pymemcache_defaults_stalling_gets_behind_sets_are_explained(memcached):
    result = invoke_mcpool("bench", "-s", memcached.spec, "--threads", "2", *QUICK_BENCH, "--ratio", "1:1",
                           "--strategy", "pymemcache-per-thread", "--strategy", "memcache-shared")
    runs = {run["strategy"]: run for run in json.loads(result.stdout)["runs"]}
    stalled = runs["pymemcache-per-thread"]
    assert stalled["by_op"]["get"]["latency_us"]["p99"] > 20_000  # the delayed ACK, measured
    assert "delayed ACK" in stalled["outcome_detail"]["explanation"]
    assert "no_delay=True" in stalled["outcome_detail"]["explanation"]
    assert not runs["memcache-shared"]["outcome_detail"]["explanation"]


def test_client_options_reach_the_client_and_bad_ones_are_one_line(memcached):
    result = invoke_mcpool("bench", "-s", memcached.spec, "--threads", "2", *QUICK_BENCH, "--ratio", "1:1",
                           "--strategy", "pymemcache-per-thread", "--client-option", "no_delay=true")
    (run,) = json.loads(result.stdout)["runs"]
    assert run["by_op"]["get"]["latency_us"]["p99"] < 20_000  # no delayed ACK with TCP_NODELAY
    assert json.loads(result.stdout)["options"]["client_options"] == [["no_delay", 1]]
    for args, words in ((["--strategy", "pymemcache-pooled", "--client-option", "bogus=1"], "unexpected keyword"),
                        (["--strategy", "fifo", "--client-option", "no_delay=1"], "strategy fifo is pylibmc's")):
        bad = invoke_mcpool("bench", *args)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


@pytest.mark.parametrize("threads", ["8", "64"])
def test_race_checker_calls_the_safe_ones_safe(memcached, threads):
    result = invoke_mcpool("check-races", "-s", memcached.spec, "--threads", threads, "--trials", "1",
                           "--duration", "700ms", "--quiet", "--json", "-", *strategy_args(SAFE))
    verdicts = {row["strategy"]: row["verdict"] for row in json.loads(result.stdout)["results"]}
    assert verdicts == {name: "safe" for name in SAFE}, result.stderr[-2000:]
    assert result.returncode == 0


def test_race_checker_flags_the_shared_ones_on_every_trial(memcached):
    result = invoke_mcpool("check-races", "-s", memcached.spec, "--threads", "8", "--trials", "2",
                           "--duration", "700ms", "--quiet", "--json", "-", *strategy_args(UNSAFE))
    assert result.returncode == 1
    for row in json.loads(result.stdout)["results"]:
        assert row["verdict"] in ("racy", "crashed", "hung"), row
        assert row["trials_affected"] == 2, row
        assert "pymemcache" in row["advice"]


def test_a_missing_library_is_exit_2_with_its_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pymemcache" else real(name, *a))
    result = invoke_mcpool("bench", "--strategy", "pymemcache-pooled")
    assert result.returncode == 2
    assert result.stderr.strip() == ("mcpool: error: strategy pymemcache-pooled needs pymemcache, which is not "
                                     "installed: pip install 'mcpool[pymemcache]'")


@pytest.mark.parametrize("args, words", [
    (["--strategy", "pymemcache-pooled", "--behavior", "tcp_nodelay=1"], "--behavior sets pylibmc's behaviors"),
    (["--strategy", "memcache-shared", "--binary"], "--binary sets pylibmc's behaviors"),
    (["--strategy", "pymemcache-per-thread", "-s", "127.0.0.1:1", "-s", "127.0.0.1:2"], "use pymemcache-hash"),
    (["--strategy", "pymemcache-typo"], "unknown strategy 'pymemcache-typo'"),
])
def test_options_another_library_cannot_take_are_exit_2(args, words):
    result = invoke_mcpool("bench", *args)
    assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr


def test_python_memcached_hides_a_restart_as_silent_misses(tmp_path):
    """python-memcached marks a server dead for dead_retry seconds and answers every get with None meanwhile:
    a restart shows as false misses with no exception (here with dead_retry=1, so it recovers within the run)."""
    result = invoke_mcpool("check-stale", "--fault", "restart", "--strategy", "memcache-shared", "--client-option",
                           "dead_retry=1", "--before", "500ms", "--outage", "500ms", "--threads", "2", "--rate", "100",
                           "--keys", "100", "--quiet", "--json", "-")
    (row,) = json.loads(result.stdout)["results"]
    assert row["verdict"] == "false-misses" and row["false_misses"] > 0, row
    assert row["error_count"] == 0  # nothing raised: the caller cannot tell a dead server from a missing key
    assert result.returncode == 1
