"""The open model (--rate): paced ops, latency from the intended start, sweeps, the timeline and its log."""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import time

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from mcpool_cli.engine.pacing import GAP_CYCLE, Pacer, first_due, gap_cycle, still_due
from mcpool_cli.engine.server import EmbeddedServer
from mcpool_cli.units import parse_rates
from tests.conftest import invoke_mcpool
from tests.test_interrupt import start_measuring


# ---------------------------------------------------------------- the pacer, without processes


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_a_cycle_of_gaps_offers_exactly_the_rate(arrival):
    gaps = gap_cycle(3_000, arrival, random.Random(1))
    assert len(gaps) == GAP_CYCLE and sum(gaps) == round(GAP_CYCLE * 1e9 / 3_000)
    if arrival == "constant":
        assert max(gaps) - min(gaps) <= 1
    else:  # exponential gaps: as many above the mean as a coin would say, and a spread like the mean's
        mean = sum(gaps) / len(gaps)
        assert 0.8 < statistics.pstdev(gaps) / mean < 1.2
        assert 0.3 < sum(gap < mean for gap in gaps) / len(gaps) - 0.33 < 0.4  # P(X < mean) = 1 - 1/e


def test_first_due_spreads_threads_over_one_gap_and_the_backlog_is_counted():
    gaps = gap_cycle(1_000, "constant", random.Random(0))  # 1 ms apart
    starts = {first_due(0, gaps, random.Random(seed)) for seed in range(50)}
    assert all(0 <= start < 1_000_000 for start in starts) and len(starts) > 40
    assert still_due(0, 0, gaps, 10_000_000) == 10  # due at 0, 1, ..., 9 ms
    assert still_due(10_000_000, 0, gaps, 10_000_000) == 0


def test_pacer_skips_whole_missed_gaps_only():
    pacer = Pacer(1_000, start_ns=0, seed=3)
    first = pacer.due
    assert pacer.skip_missed(first + 500_000) == 0  # late, but inside its own gap: it still runs
    assert pacer.skip_missed(first + 3_500_000) == 3  # stuck for three and a half gaps: three are lost
    assert pacer.due == first + 3_000_000


@pytest.mark.parametrize("text, rates", [("5000", (5000.0,)), ("20k", (20000.0,)), ("1.5k", (1500.0,)),
                                         ("10k,2k,5k", (2000.0, 5000.0, 10000.0)), ("1M", (1e6,))])
def test_rates_parse(text, rates):
    assert parse_rates(text) == rates


@pytest.mark.parametrize("args, said", [
    (["--rate", "0"], "a rate must be above 0"),
    (["--rate", "-5"], "a rate must be above 0"),
    (["--rate", "abc"], "is not a rate"),
    (["--rate", "2k,2k"], "names a rate twice"),
    (["--rate", "1k", "--interval", "20s", "--duration", "5s"], "--interval 20s is longer than --duration 5s"),
    (["--rate", "1k", "--interval", "0s"], "--interval must be longer than 0"),
    (["--budget", "p99<2ms"], "--budget judges a --rate sweep"),
    (["--rate", "1k,2k", "--budget", "errors<3"], "give a latency and its limit"),
    (["--arrival", "poisson"], "add --rate"),
    (["--rate", "5", "--threads", "12", "--duration", "1s"], "gives fewer ops than the 12 threads"),
    (["--rate", "10M", "--threads", "2"], "more than one thread can offer"),
])
def test_bad_open_model_options_are_one_line_and_exit_2(args, said):
    result = invoke_mcpool("bench", "-s", "127.0.0.1:1", *args)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- real runs against memcached


@pytest.mark.parametrize("strategy", ["per-thread", "fifo", "thread-mapped", "shared", "fault_strategies:racy_pool"])
def test_every_strategy_runs_paced_and_reports_both_latencies(bench_json, strategy):
    code, doc, err = bench_json("--strategy", strategy, "--rate", "600", "--duration", "1s", "--threads", "2")
    run = doc["runs"][0]
    if strategy == "shared" and (run["outcome"] != "ok" or not run["ops_per_s"]):
        pytest.skip("the shared client crashed or every op failed, as it may")
    assert run["outcome"] == "ok", err
    rate = run["rate"]
    assert rate["target_per_s"] == 600 and rate["arrival"] == "constant"
    if strategy != "shared":  # a shared client may stall a thread on a desynced reply
        assert 0.9 < rate["achieved_ratio"] <= 1.02  # 600 ops/s is a fraction of what two threads can do
    assert run["ops"] > 0 and rate["lateness_us"]["p50"] is not None
    assert rate["lateness_histogram"] and run["uncorrected_histogram"]
    for block in [*run["by_op"].values(), run["acquire"]]:
        if block["count"]:
            assert "uncorrected_latency_us" in block and block["uncorrected_histogram"]
    # from the intended start is never shorter than from the moment sent
    assert run["latency_us"]["p50"] >= run["uncorrected_latency_us"]["p50"]
    assert run["latency_us"]["max"] >= run["uncorrected_latency_us"]["max"]
    assert sum(interval["ops"] for interval in run["intervals"]) == run["ops"] - run["failed_ops"]


def test_a_closed_run_has_a_timeline_but_no_rate_block(bench_json):
    code, doc, err = bench_json("--strategy", "per-thread", "--duration", "1s", "--interval", "250ms")
    assert code == 0, err
    run = doc["runs"][0]
    assert run["rate"] is None and "uncorrected_latency_us" not in run
    assert [interval["t_s"] for interval in run["intervals"]] == [0.0, 0.25, 0.5, 0.75]
    assert sum(interval["ops"] for interval in run["intervals"]) == run["ops"]
    assert all(HdrHistogram.decode(i["histogram"]).get_total_count() == i["ops"] for i in run["intervals"])
    assert doc["options"]["interval_s"] == 0.25


def test_a_sweep_runs_each_rate_for_each_strategy_and_judges_the_budget(bench):
    code, out, err = bench("--strategy", "per-thread", "--strategy", "fifo", "--pool-size", "1", "--rate", "300,900",
                           "--budget", "p99<1s", "--duration", "500ms", "--json", "-")
    assert code == 0, err
    doc = json.loads(out)
    assert [(run["strategy"], run["rate"]["target_per_s"]) for run in doc["runs"]] == [
        ("per-thread", 300), ("per-thread", 900), ("fifo", 300), ("fifo", 900)]
    sweep = {entry["strategy"]: entry for entry in doc["sweep"]}
    assert set(sweep) == {"per-thread", "fifo"}
    assert sweep["per-thread"]["max_sustained_per_s"] == 900  # a light load, far inside a 1 s budget
    assert [point["rate_per_s"] for point in sweep["fifo"]["points"]] == [300, 900]
    assert "latency against offered load" in err  # the report goes to stderr when the JSON takes stdout
    assert "per-thread: sustained up to 900 ops/s within p99<1s" in err


def test_a_pool_that_raises_in_reserve_is_told_as_the_pool_s_failure(bench_json):
    code, doc, err = bench_json("--strategy", "fault_strategies:small_list_pool", "--threads", "4",
                                "--duration", "500ms")
    run = doc["runs"][0]
    assert code == 1 and run["outcome"] == "ok"
    sites = run["errors_by_site"]
    assert sites["reserve"].get("IndexError", 0) > 0 and not sites["release"]
    assert "reserve() raised" in run["outcome_detail"]["explanation"]
    assert "the pool's failure, not memcached's" in run["outcome_detail"]["explanation"]
    # a closed loop does not retry an empty pool at full speed: at most one attempt a millisecond a thread
    assert sites["reserve"]["IndexError"] < 4 * 1000 * 0.6 + 100


def test_the_hdr_log_is_read_back_by_hdrh(bench, tmp_path):
    log = tmp_path / "run.hlog"
    code, out, err = bench("--strategy", "per-thread", "--strategy", "fifo", "--rate", "500", "--duration", "600ms",
                           "--interval", "200ms", "--hdr-log", str(log), "--json", "-")
    assert code == 0, err
    doc = json.loads(out)
    reader = HistogramLogReader(str(log), HdrHistogram(1, 3_600_000_000_000, 3))
    seen: dict[str, int] = {}
    while (histogram := reader.get_next_interval_histogram()) is not None:
        seen[histogram.get_tag()] = seen.get(histogram.get_tag(), 0) + histogram.get_total_count()
    assert seen == {f"{run['strategy']}@500/s": sum(i["ops"] for i in run["intervals"]) for run in doc["runs"]}


def test_a_frozen_server_shows_in_latency_from_the_intended_start_only(tmp_path):
    """memcached stopped (SIGSTOP) for 1 s under a fixed rate: requests kept arriving and waited for it."""
    out = tmp_path / "frozen.json"
    with EmbeddedServer(memory_mb=64) as server:
        process = start_measuring("bench", "-s", server.address.spec, "--strategy", "per-thread", "--threads", "4",
                                  "--rate", "2k", "--duration", "4s", "--warmup", "200ms", "--keys", "500",
                                  "--json", str(out))
        try:
            time.sleep(1.0)
            os.kill(server.pid, signal.SIGSTOP)
            time.sleep(1.0)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        process.communicate(timeout=60)
    run = json.loads(out.read_text())["runs"][0]
    assert run["outcome"] == "ok" and run["error_count"] == 0
    corrected, uncorrected = run["latency_us"], run["uncorrected_latency_us"]
    assert corrected["p99"] > 300_000  # hundreds of ms: a quarter of the requests arrived during the freeze
    assert uncorrected["p99"] < 50_000  # timed from their send, only the few in flight saw the freeze
    assert uncorrected["max"] > 500_000  # ... and those did
    assert max(interval["latency_us"]["max"] or 0 for interval in run["intervals"]) > 500_000
    assert run["rate"]["late_ops"] > 1000  # the backlog: sent late, and counted
