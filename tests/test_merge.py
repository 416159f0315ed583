"""`mcpool merge`: four real bench processes aligned by --start-at and merged exactly; every refusal; the timeline's
alignment on the wall clock."""

import datetime
import json
import os
import subprocess
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

import pytest

from mcpool_cli.bench.loop import slot_grid
from mcpool_cli.bench.merging import interval_shift, merge_stats
from mcpool_cli.bench.results import RunStats
from mcpool_cli.engine.histograms import decode_histogram, latency_summary_us, new_histogram, quantize_counts
from mcpool_cli.engine.timeline import Timeline
from tests.conftest import TESTS, invoke_mcpool

SOURCES = 4
BENCH = ["--strategy", "per-thread", "--threads", "2", "--duration", "2s", "--warmup", "200ms", "--run-id", "T1",
         "--quiet"]
START_IN_S = 6  # time for four interpreters to start and fill the key space on two cores
SUMMARY = ("p50", "p90", "p99", "p99_9", "max")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, memcached):
    """Four `mcpool bench` processes started at once, as four machines would be, and their merge."""
    folder = tmp_path_factory.mktemp("merge")
    raw = folder / "raw"
    raw.mkdir()
    env = {**os.environ, "MCPOOL_RAW_LATENCIES_DIR": str(raw)}
    paths = [folder / f"host{i}.json" for i in range(SOURCES)]
    # one absolute time for all, as machines are given: `+6s` would be counted from each process's own start,
    # which differ by the time an interpreter takes to start on a busy machine (up to 0.16 s seen here)
    start_at = datetime.datetime.fromtimestamp(time.time() + START_IN_S, datetime.timezone.utc).isoformat()
    benches = [subprocess.Popen([sys.executable, "-m", "mcpool_cli", "bench", "-s", memcached.spec, *BENCH,
                                 "--start-at", start_at, "--json", str(path)], env=env, cwd=TESTS, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for path in paths]
    for bench in benches:
        out, err = bench.communicate(timeout=60)
        assert bench.returncode == 0, err
    merged = folder / "all.json"
    done = invoke_mcpool("merge", *map(str, paths), "-o", str(merged))
    assert done.returncode == 0, done.stderr
    return {"paths": paths, "raw": raw, "merged": merged, "printed": done.stdout,
            "sources": [json.loads(path.read_text()) for path in paths], "doc": json.loads(merged.read_text())}


def every_raw_latency(folder: Path) -> tuple[int, object]:
    """The raw values the four parents received, recorded into one histogram as bench records them."""
    histogram, count = new_histogram(), 0
    for path in folder.glob("*-per-thread.i64"):
        values = array("q")
        values.frombytes(path.read_bytes())
        if sys.byteorder != "little":
            values.byteswap()
        count += len(values)
        for value, times in quantize_counts(values).items():
            assert histogram.record_value(value, times)
    return count, histogram


def test_the_merged_percentiles_are_those_of_every_latency_recorded_in_one_histogram(fleet):
    count, reference = every_raw_latency(fleet["raw"])
    run = fleet["doc"]["runs"][0]
    assert len(list(fleet["raw"].glob("*.i64"))) == SOURCES
    assert count == run["ops"] == decode_histogram(run["histogram"]).get_total_count()
    expected = latency_summary_us(reference)
    assert {name: run["latency_us"][name] for name in SUMMARY} == {name: expected[name] for name in SUMMARY}


def test_counts_and_throughput_are_the_sums_of_the_sources(fleet):
    run, sources = fleet["doc"]["runs"][0], [source["runs"][0] for source in fleet["sources"]]
    assert run["ops"] == sum(source["ops"] for source in sources)
    assert run["ops_including_warmup"] == sum(source["ops_including_warmup"] for source in sources)
    assert run["ops_per_s"] == pytest.approx(sum(source["ops_per_s"] for source in sources), abs=0.1)
    assert run["processes"] == SOURCES and run["threads"] == 2 and len(run["workers"]) == SOURCES
    assert sum(interval["ops"] for interval in run["intervals"]) == run["ops"] - run["failed_ops"]
    assert fleet["doc"]["run_id"] == "T1" and fleet["doc"]["schema"] == "mcpool.result/1"
    kept = fleet["doc"]["merged_from"]
    assert [entry["file"] for entry in kept] == [path.name for path in fleet["paths"]]
    assert [entry["runs"][0]["ops_per_s"] for entry in kept] == [source["ops_per_s"] for source in sources]


def test_start_at_aligned_the_measured_windows(fleet):
    starts = [source["runs"][0]["measure_started_unix"] for source in fleet["sources"]]
    assert max(starts) - min(starts) < 0.2
    assert len({source["runs"][0]["start_at_unix"] for source in fleet["sources"]}) == 1
    assert fleet["doc"]["runs"][0]["measure_started_unix"] == min(starts)
    assert all(0 <= source["runs"][0]["start_late_s"] < 0.2 for source in fleet["sources"])


def test_report_compare_thresholds_junit_and_html_read_the_merged_file(fleet, tmp_path):
    merged, first = str(fleet["merged"]), str(fleet["paths"][0])
    shown = invoke_mcpool("report", merged)
    assert shown.returncode == 0 and f"merges {SOURCES} files" in shown.stdout.replace("\n", " ")
    assert "× 4 processes" in shown.stdout
    compared = invoke_mcpool("compare", first, merged)
    assert compared.returncode == 0 and "faster" in compared.stdout
    junit, html = tmp_path / "merged.xml", tmp_path / "merged.html"
    again = invoke_mcpool("merge", *map(str, fleet["paths"]), "-o", str(tmp_path / "again.json"),
                          "--threshold", "p99<10s", "--threshold", "ops_per_s>1", "--junit", str(junit),
                          "--html", str(html))
    assert again.returncode == 0, again.stderr
    assert "<testcase" in junit.read_text() and "<html" in html.read_text()[:2000].lower()
    judged = json.loads((tmp_path / "again.json").read_text())["thresholds"]
    assert [item["ok"] for item in judged] == [True, True]
    failing = invoke_mcpool("merge", *map(str, fleet["paths"]), "-o", str(tmp_path / "fail.json"),
                            "--threshold", "ops_per_s<1")
    assert failing.returncode == 1
    assert invoke_mcpool("report", merged, "--html", str(tmp_path / "report.html")).returncode == 0


# ---------------------------------------------------------------- refusals


def refused(*args: str, env: dict | None = None) -> str:
    done = invoke_mcpool(*args, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcpool: error: "), done.stderr
    return lines[0]


def variant(fleet, tmp_path: Path, name: str, change) -> str:
    data = json.loads(fleet["paths"][1].read_text())
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_merge_refuses_what_is_not_one_run(fleet, tmp_path):
    a, b = str(fleet["paths"][0]), str(fleet["paths"][1])
    out = str(tmp_path / "out.json")
    assert "2 or more" in refused("merge", a, "-o", out)
    assert "merge takes bench results (mcpool.result/1)" in refused("merge", a, str(TESTS / "text_docs/stale.json"),
                                                                    "-o", out)
    assert "check-stale results" in refused("merge", a, str(TESTS / "text_docs/stale.json"), "-o", out)
    assert "mcpool.run/1" in refused("merge", a, str(TESTS / "text_docs/run.json"), "-o", out)
    newer = variant(fleet, tmp_path, "newer.json", lambda d: d.update(schema="mcpool.result/2"))
    assert "another version of mcpool" in refused("merge", a, newer, "-o", out)
    damaged = variant(fleet, tmp_path, "damaged.json", lambda d: d.pop("runs"))
    assert "damaged.json" in refused("merge", a, damaged, "-o", out)
    threads = variant(fleet, tmp_path, "eight.json", lambda d: d["options"].update(threads=8))
    assert f"options differ: threads is 2 in {a}, 8 in {threads}" in refused("merge", a, threads, "-o", out)
    other_id = variant(fleet, tmp_path, "other-id.json", lambda d: d.update(run_id="T2"))
    line = refused("merge", a, other_id, "-o", out)
    assert "run ids differ: T1" in line and "--run-id" in line and "MCPOOL_RUN_ID" in line
    no_runs = variant(fleet, tmp_path, "none.json", lambda d: d.update(runs=[]))
    assert "runs differ: per-thread in" in refused("merge", a, no_runs, "-o", out)
    assert "again" in refused("merge", a, a, "-o", out)

    def later(data: dict) -> None:
        data["runs"][0]["measure_started_unix"] += 100
    line = refused("merge", a, variant(fleet, tmp_path, "later.json", later), "-o", out)
    assert "never loaded the server together" in line and "--start-at" in line
    assert "(schema mcpool.result/1)" in refused("merge", a, str(tmp_path / "missing.json"), "-o", out)
    assert not os.path.exists(out)
    assert b  # the unchanged source merges (the fixture's merge)


@pytest.mark.parametrize("args, env, said", [
    (["--run-id", "a b"], {}, "--run-id 'a b'"),
    (["--run-id", "x" * 65], {}, "1-64 characters"),
    ([], {"MCPOOL_RUN_ID": "no/slash"}, "MCPOOL_RUN_ID='no/slash'"),
    (["--strategy", "fifo", "--start-at", "2020-01-01T00:00:00Z"], {}, "has passed"),
    (["--strategy", "fifo", "--start-at", "2030-01-01T00:00:00"], {}, "with its zone"),
    (["--strategy", "fifo", "--start-at", "+25h"], {}, "more than 24 h"),
    (["--start-at", "+10s"], {}, "3 strategies would run"),
    (["--strategy", "fifo", "--rate", "1k,2k", "--start-at", "+10s"], {}, "a --rate sweep"),
])
def test_bench_refuses_a_bad_run_id_or_start_at(args, env, said, memcached):
    assert said in refused("bench", "-s", memcached.spec, *args, env=env)


# ---------------------------------------------------------------- pure: the timeline aligned on the wall clock


def stats_with(started_unix: float, per_interval: dict[int, list[int]]) -> RunStats:
    """A RunStats whose timeline holds, per interval index, ops that took these latencies (ns)."""
    slots = slot_grid(1.0)[1]
    timeline = Timeline(1.0, slots)
    for index, latencies in per_interval.items():
        timeline.count(index * slots, len(latencies), 0, 0)
        timeline.record(index * slots, quantize_counts(array("q", latencies)))
    return RunStats(interval_s=1.0, timeline=timeline, started_unix=started_unix)


def test_interval_shift_rounds_to_the_nearest_interval():
    assert interval_shift(100.0, 100.0, 1.0) == 0
    assert interval_shift(100.4, 100.0, 1.0) == 0
    assert interval_shift(100.6, 100.0, 1.0) == 1
    assert interval_shift(102.1, 100.0, 0.5) == 4
    assert interval_shift(0.0, 100.0, 1.0) == 0  # a source without a start time is not moved


def test_timelines_are_added_interval_by_interval_after_the_shift():
    early = stats_with(100.0, {0: [1000], 1: [2000, 2000], 2: [3000]})
    late = stats_with(102.1, {0: [50_000], 1: [60_000, 70_000]})  # starts two intervals after `early`
    merged = merge_stats([late, early])
    rows = merged.timeline.to_json(4.0)
    assert [row["ops"] for row in rows] == [1, 2, 2, 2]
    assert merged.started_unix == 100.0
    histograms = [decode_histogram(row["histogram"]) for row in rows]
    assert [h.get_total_count() for h in histograms] == [1, 2, 2, 2]
    assert histograms[2].get_min_value() == 3000 and histograms[2].get_max_value() >= 50_000
    assert rows[3]["latency_us"]["max"] == pytest.approx(70, rel=1e-3)


def test_merged_stats_add_counters_and_keep_empty_histograms_out():
    one, two = stats_with(1.0, {0: [10]}), stats_with(1.0, {})
    one.succeeded["get"], two.succeeded["get"] = 3, 4
    one.errors["ServerDown"], two.errors["ServerDown"] = 1, 2
    two.site_errors["reserve"] = Counter({"IndexError": 5})
    one.examples, two.examples = [{"n": str(i)} for i in range(4)], [{"m": str(i)} for i in range(4)]
    merged = merge_stats([one, two])
    assert merged.succeeded["get"] == 7 and merged.errors["ServerDown"] == 3
    assert merged.errors_by_site()["reserve"] == {"IndexError": 5} and len(merged.examples) == 5
    assert merged.histogram("get").get_total_count() == 0  # both empty: still empty, no min of 0 taken
