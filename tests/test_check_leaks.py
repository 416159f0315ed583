"""`mcpool check-leaks` against a real memcached: connections counted on the server."""

import json
import os

from click.testing import CliRunner

from mcpool_cli.cli import cli
from mcpool_cli.checks.leaks.loop import ChurnFigures
from mcpool_cli.checks.leaks.session import leak_verdict


def leaks(memcached, *args):
    result = CliRunner().invoke(cli, ["check-leaks", "-s", memcached.spec, "--churn", "120", "--concurrency", "10",
                                      "--quiet", "--json", "-", *args])
    return result.exit_code, {r["strategy"]: r for r in json.loads(result.stdout)["results"]}


def connections(result):
    return [point["connections"] for point in result["connections_over_time"]]


def assert_a_series_of_the_churn(result):
    """From the baseline reading (t 0, no thread started) to the reading after; the samples' thinning keeps each
    span's highest, so the series peaks at peak_connections exactly."""
    series = result["connections_over_time"]
    assert series[0] == {"t_s": 0.0, "connections": result["baseline_connections"], "threads_started": 0}
    assert series[-1]["connections"] == result["after_connections"]
    assert series[-1]["threads_started"] == result["threads_started"]
    assert max(connections(result)) == result["peak_connections"]
    assert [p["t_s"] for p in series] == sorted(p["t_s"] for p in series) and series[-1]["t_s"] >= 0.5  # the settle
    assert [p["threads_started"] for p in series] == sorted(p["threads_started"] for p in series)
    assert len(series) <= 500


def time_wait_left(result):
    """Client sockets the churn added in TIME_WAIT to the server, None off Linux; less any that earlier tests left
    and that expired meanwhile (a minute after they closed)."""
    if not os.path.exists("/proc/net/tcp"):
        assert result["time_wait_after"] is None and result["time_wait_before"] is None
        return None
    return result["time_wait_after"] - result["time_wait_before"]


def test_thread_mapped_without_relinquish_leaks_even_with_reused_idents(memcached):
    code, results = leaks(memcached, "--strategy", "thread-mapped", "--no-relinquish")
    result = results["thread-mapped"]
    assert result["verdict"] == "leak"
    # bounded by peak concurrency (a thread frees its slot just before it ends), not by 120 threads: idents are reused
    assert 0 < result["leaked_connections"] <= 20
    assert result["dead_thread_clients"] == result["held_by_pool"] > 0
    assert result["threads_started"] == 120
    assert_a_series_of_the_churn(result)
    assert connections(result)[-1] > connections(result)[0]  # it rose, and stayed up
    assert (time_wait_left(result) or 0) <= 1  # the leaked clients never closed: nothing to wait out
    assert code == 1


def assert_a_connection_per_request(result):
    """A client per thread, closed as the thread ends: about one connection a thread, each close leaving a socket
    in TIME_WAIT on the side that closed first. libmemcached sends `quit` then closes, and on loopback the server's
    close often wins the race: from a tenth to nine tenths of them were the client's in runs here."""
    assert 0.9 <= result["connections_per_thread"] <= 1.1
    assert 0 < result["churn_s"] < 30 and result["connections_opened_per_s"] == round(
        result["connections_opened"] / result["churn_s"], 1)
    left = time_wait_left(result)
    assert left is None or left <= result["connections_opened"] + 2, result
    if left is not None and left >= 10:
        assert "TIME_WAIT" in result["advice"] and "Errno 99" in result["advice"]
    return left or 0


def test_relinquishing_and_fifo_do_not_leak(memcached):
    code, results = leaks(memcached, "--strategy", "thread-mapped", "--strategy", "fifo", "--strategy", "per-thread",
                          "--threshold", "time_wait_after<100000", "--threshold", "connections_opened_per_s>0")
    assert results["fifo"]["verdict"] == "clean" and results["fifo"]["connections_opened"] <= 10
    assert results["thread-mapped"]["verdict"] == "churn" and results["thread-mapped"]["leaked_connections"] == 0
    assert results["per-thread"]["verdict"] == "churn"
    assert results["thread-mapped"]["connections_opened"] >= 100  # a connection per thread, then closed
    for result in results.values():
        assert {"leaked_connections", "connections_opened", "threads_started", "peak_connections"} <= set(result)
        assert_a_series_of_the_churn(result)
    assert max(connections(results["fifo"])) - results["fifo"]["baseline_connections"] <= 10  # its pool's size
    assert code == 0
    # a connection a thread leaves TIME_WAIT behind; a pool that reuses its connections does not
    left = assert_a_connection_per_request(results["thread-mapped"]) + assert_a_connection_per_request(
        results["per-thread"])
    assert left >= 240 // 10 or not os.path.exists("/proc/net/tcp")  # 120 connections each
    fifo = results["fifo"]
    assert fifo["connections_per_thread"] <= 10 / 120 and (time_wait_left(fifo) or 0) <= 1
    assert "TIME_WAIT" not in fifo["advice"]


def figures(**changes):
    base = dict(threads_started=100, concurrency=10, baseline_connections=5, baseline_drift=0, peak_connections=15,
                after_connections=5, connections_opened=3, standing_clients=0, held_by_pool=0,
                dead_thread_clients=0, open_sockets_after=1)
    return ChurnFigures(**{**base, **changes})


def test_leak_verdicts():
    assert leak_verdict(figures()) == ("clean", 0)
    assert leak_verdict(figures(connections_opened=100)) == ("churn", 0)
    assert leak_verdict(figures(after_connections=12)) == ("leak", 7)
    assert leak_verdict(figures(after_connections=15, standing_clients=10, connections_opened=10)) == ("clean", 0)
    assert leak_verdict(figures(dead_thread_clients=3)) == ("leak", 3)


def test_a_churn_whose_threads_raise_is_not_clean(memcached, monkeypatch):
    from tests.conftest import TESTS

    monkeypatch.chdir(TESTS)
    code, results = leaks(memcached, "--strategy", "fault_strategies:erring_pool", "--strategy", "fifo")
    erring = results["fault_strategies:erring_pool"]
    assert erring["verdict"] == "inconclusive" and erring["leaked_connections"] == 0, erring
    assert erring["churn_errors"] > 0
    assert list(erring["churn_error_sites"]) == ["KeyError at fault_strategies.py:get"]
    assert results["fifo"]["verdict"] == "clean" and results["fifo"]["churn_errors"] == 0
    assert code == 1


def test_errors_keep_a_churn_from_clean_but_not_from_leak():
    assert leak_verdict(figures(churn_errors=3)) == ("inconclusive", 0)
    assert leak_verdict(figures(connections_opened=100, churn_errors=1)) == ("inconclusive", 0)
    assert leak_verdict(figures(after_connections=12, churn_errors=3)) == ("leak", 7)
