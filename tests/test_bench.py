"""`mcpool bench` end to end against a real memcached, with workers as real child processes."""

import json

import pytest
from click.testing import CliRunner
from hdrh.histogram import HdrHistogram

from mcpool_cli.cli import cli
from mcpool_cli.engine.server import server_stats
from tests.conftest import QUICK

SAFE = ["per-thread", "fifo", "thread-mapped"]


@pytest.fixture(scope="module")
def safe_bench(memcached, tmp_path_factory):
    """One bench of the safe built-ins in turn, as a user compares them: (exit code, report, stderr, document)."""
    path = tmp_path_factory.mktemp("safe") / "safe.json"
    strategies = [part for name in SAFE for part in ("--strategy", name)]
    result = CliRunner().invoke(cli, ["bench", "-s", memcached.spec, *QUICK, *strategies, "--json", str(path)])
    return result.exit_code, result.stdout, result.stderr, json.loads(path.read_text())


@pytest.mark.parametrize("strategy", SAFE)
def test_safe_strategies_run_clean(safe_bench, strategy):
    code, _, err, doc = safe_bench
    assert code == 0, err
    assert [run["strategy"] for run in doc["runs"]] == SAFE
    run = doc["runs"][SAFE.index(strategy)]
    assert run["strategy"] == strategy and run["outcome"] == "ok"
    assert run["ops"] > 100 and run["ops_per_s"] > 0
    assert run["error_count"] == 0 and run["wrong_values"] == 0 and run["corrupt_values"] == 0
    assert run["by_op"]["get"]["count"] + run["by_op"]["set"]["count"] == run["ops"]
    assert HdrHistogram.decode(run["histogram"]).get_total_count() == run["ops"]
    latency = run["latency_us"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99_9"] <= latency["max"]
    # pools are timed per reserve; a per-thread client is never acquired per op
    assert run["acquire"]["count"] == (0 if strategy == "per-thread" else run["ops"])


def test_json_document_describes_the_run(bench_json, memcached):
    code, doc, err = bench_json("--strategy", "per-thread", "--ratio", "1:1", "--value-size", "32-2048")
    assert code == 0, err
    assert doc["schema"] == "mcpool.result/1"
    assert doc["server"]["addresses"] == [memcached.spec] and doc["server"]["embedded"] is False
    assert doc["server"]["version"].startswith("1.")
    assert doc["options"]["ratio"] == [1, 1] and doc["options"]["value_size"] == [32, 2048]
    assert doc["interrupted"] is False and doc["finished_at"]
    run = doc["runs"][0]
    share = run["by_op"]["set"]["count"] / run["ops"]
    assert 0.4 < share < 0.6


def test_several_strategies_are_compared(safe_bench):
    code, out, err, _ = safe_bench
    assert code == 0, err
    assert "comparison" in out
    assert "ran" in out and "faster than" in out


def test_all_includes_every_builtin_and_exits_1_for_shared(bench_json):
    code, doc, _ = bench_json("--strategy", "all", "--threads", "8", "--hang-timeout", "2s")
    assert [run["strategy"] for run in doc["runs"]] == ["shared", "fifo", "thread-mapped", "per-thread"]
    shared = doc["runs"][0]
    unsafe = shared["outcome"] != "ok" or shared["error_count"] or shared["wrong_values"] or shared["corrupt_values"]
    assert unsafe, shared
    assert code == 1
    assert all(run["outcome"] == "ok" for run in doc["runs"][1:])


def test_pool_exhaustion_is_counted_not_fatal(bench_json):
    code, doc, err = bench_json("--strategy", "fifo", "--threads", "6", "--pool-size", "1")
    assert code == 0, err
    run = doc["runs"][0]
    assert run["outcome"] == "ok" and run["pool_size"] == 1
    assert run["pool_exhausted"] > 0
    assert run["acquire"]["latency_us"]["max"] > 1000  # someone waited over a millisecond for the one client


def test_several_processes_are_merged(bench_json):
    code, doc, err = bench_json("--strategy", "per-thread", "--processes", "2", "--threads", "2")
    assert code == 0, err
    run = doc["runs"][0]
    assert run["processes"] == 2 and len(run["workers"]) == 2
    assert all(worker["outcome"] == "ok" for worker in run["workers"])


def test_crash_is_classified_with_signal_and_last_words(bench_json):
    code, doc, _ = bench_json("--strategy", "fault_strategies:crash_pool", "--duration", "5s")
    assert code == 1
    run = doc["runs"][0]
    assert run["outcome"] == "crashed"
    assert run["outcome_detail"]["signal"] == "SIGABRT"
    assert run["outcome_detail"]["stderr_tail"] == "mcpool-test: double free or corruption (simulated)"
    assert "SIGABRT" in run["outcome_detail"]["explanation"]
    assert run["ops_including_warmup"] > 1000  # what was streamed before the death is kept


def test_hang_is_detected_and_killed(bench_json):
    code, doc, _ = bench_json("--strategy", "fault_strategies:hang_pool", "--duration", "20s",
                              "--hang-timeout", "1s")
    assert code == 1
    run = doc["runs"][0]
    assert run["outcome"] == "hung"
    assert "no progress for 1 s" in run["outcome_detail"]["explanation"]
    assert run["ops_including_warmup"] >= 400


def test_python_error_in_worker_is_reported(bench_json):
    code, doc, _ = bench_json("--strategy", "fault_strategies:broken_factory")
    assert code == 1
    run = doc["runs"][0]
    assert run["outcome"] == "error"
    assert "pool factory exploded on purpose" in run["outcome_detail"]["message"]


def test_wrong_values_are_caught_and_exit_1(bench_json):
    code, doc, _ = bench_json("--strategy", "fault_strategies:racy_pool")
    run = doc["runs"][0]
    assert run["outcome"] == "ok"
    assert run["wrong_values"] > 0 and run["examples"]
    assert run["examples"][0]["kind"] == "wrong"
    assert code == 1


def test_servers_from_environment(bench, memcached, monkeypatch):
    monkeypatch.setenv("MCPOOL_SERVERS", memcached.spec)
    code, out, err = bench("--strategy", "per-thread", server=False)
    assert code == 0, err
    assert "memcached 1.6" in out and memcached.spec in out


def test_embedded_server_is_used_and_stopped(bench_json):
    code, doc, err = bench_json("--strategy", "per-thread", server=False)
    assert code == 0, err
    assert doc["server"]["embedded"] is True
    host, port = doc["server"]["addresses"][0].rsplit(":", 1)
    import socket
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()


def test_other_data_is_never_touched(bench, memcached):
    import pylibmc

    client = pylibmc.Client([memcached.spec])
    client.set("someone-else:key", b"precious")
    before = int(server_stats(memcached)["curr_items"])
    code, _, err = bench("--strategy", "per-thread", "--keys", "300")
    assert code == 0, err
    assert client.get("someone-else:key") == b"precious"
    assert int(server_stats(memcached)["curr_items"]) >= before + 300  # namespaced keys of this run, no flush


def test_binary_protocol_and_behaviors_reach_the_client(bench_json):
    code, doc, err = bench_json("--strategy", "per-thread", "--binary", "--behavior", "tcp_nodelay=1",
                                "--behavior", "retry_timeout=1")
    assert code == 0, err
    assert doc["options"]["binary"] is True
    assert doc["options"]["behaviors"] == [["tcp_nodelay", 1], ["retry_timeout", 1]]
    assert doc["runs"][0]["outcome"] == "ok" and doc["runs"][0]["ops"] > 100


def test_thread_mapped_without_relinquish_still_runs(bench_json):
    code, doc, err = bench_json("--strategy", "thread-mapped", "--no-relinquish")
    assert code == 0, err
    assert doc["options"]["relinquish"] is False
    assert doc["runs"][0]["outcome"] == "ok"


def test_a_load_thread_that_dies_makes_the_run_an_error(bench_json):
    code, doc, _ = bench_json("--strategy", "fault_strategies:thread_killer_pool", "--duration", "2s")
    run = doc["runs"][0]
    assert run["outcome"] == "error"
    assert "load thread" in run["outcome_detail"]["message"] and "SystemExit" in run["outcome_detail"]["message"]
    assert run["ops"] > 0  # what it measured before is kept
    assert code == 1


def test_printing_pool_does_not_corrupt_the_results(bench_json):
    # a ratio of two runs: long enough that one scheduling hiccup does not decide it
    code, doc, err = bench_json("--strategy", "fault_strategies:chatty_pool", "--strategy", "fifo",
                                "--duration", "700ms", "--warmup", "200ms")
    assert code == 0, err
    chatty, fifo = doc["runs"]
    assert chatty["outcome"] == "ok"
    assert chatty["ops_including_warmup"] > 0.3 * fifo["ops_including_warmup"]


def test_a_run_that_measured_nothing_is_not_clean():
    from mcpool_cli.bench.explain import explain
    from mcpool_cli.bench.results import RunResult, RunStats
    from mcpool_cli.bench.session import BenchOptions, BenchSession
    from mcpool_cli.engine.outcomes import WorkerOutcome
    from mcpool_cli.engine.plan import ClientConfig, RunPlan, Workload
    from mcpool_cli.engine.server import ServerAddress
    from mcpool_cli.engine.session import Servers

    plan = RunPlan("per-thread", ClientConfig(("127.0.0.1:1",)), Workload(), threads=3, duration_s=0.5)
    result = RunResult.judged(plan, RunStats(), (WorkerOutcome("ok", measured_s=0.5),), False, explain)
    assert result.outcome.outcome == "ok" and result.verdict == "unclean"
    assert "No operation succeeded" in result.explanation
    session = BenchSession(BenchOptions(("per-thread",)), Servers((ServerAddress("127.0.0.1", 1),), False, "1.6"),
                           results=[result])
    assert session.exit_code() == 1


def test_ops_in_flight_at_the_end_are_measured_not_lost(bench_json):
    """An op still running when the window closes belongs to its last slot: a stall at the end must show."""
    code, doc, err = bench_json("--strategy", "per-thread", "--duration", "1us")
    run = doc["runs"][0]
    assert run["outcome"] == "ok" and run["ops"] <= 3, err  # one in flight per thread, at most
    assert len(run["intervals"]) <= 1 and sum(i["ops"] for i in run["intervals"]) == run["ops"]


def test_workers_fill_the_key_space_before_any_loads(bench_json):
    code, doc, err = bench_json("--strategy", "per-thread", "--processes", "3", "--threads", "2",
                                "--warmup", "0s", "--keys", "6000")
    assert code == 0, err
    assert doc["runs"][0]["misses"] == 0
