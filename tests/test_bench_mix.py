"""`mcpool bench` with an op mix (get, set, delete, get_multi) and a zipf key distribution."""

import io
import time

import pylibmc
import pytest
from rich.console import Console

from mcpool_cli.bench.loop import Batch, LoopTiming, Recorder, run_load
from mcpool_cli.engine.plan import Workload
from mcpool_cli.bench.render import run_report
from mcpool_cli.bench.results import RunResult, RunStats
from mcpool_cli.engine.outcomes import WorkerOutcome
from mcpool_cli.engine.workload import build_key_space, build_schedule, make_value
from mcpool_cli.engine.histograms import encode_ns
from tests.conftest import invoke_mcpool
from tests.test_cli_errors import one_line_error

MIX = "get=5,set=2,delete=1,get_multi=2"


@pytest.mark.parametrize("strategy", ["per-thread", "fifo"])  # a fixed client, and a reserve per op
def test_mixed_zipf_run_is_clean_and_times_every_op(bench_json, strategy):
    code, doc, err = bench_json("--strategy", strategy, "--mix", MIX, "--distribution", "zipf",
                                "--value-size", "100-4000")
    assert code == 0, err
    (run,) = doc["runs"]
    assert run["outcome"] == "ok" and run["error_count"] == 0
    assert run["wrong_values"] == 0 and run["corrupt_values"] == 0
    assert set(run["by_op"]) == {"get", "set", "delete", "get_multi"}
    assert all(block["count"] > 0 and block["latency_us"]["p50"] > 0 for block in run["by_op"].values())
    assert sum(block["count"] for block in run["by_op"].values()) == run["ops"]
    assert run["misses"] > 0  # deleted keys miss until a set writes them back: expected, and exit 0
    assert doc["options"]["mix"] == [["get", 5], ["set", 2], ["delete", 1], ["get_multi", 2]]
    assert doc["options"]["distribution"] == "zipf" and doc["options"]["zipf_s"] == 1.0
    assert doc["options"]["ratio"] is None and doc["options"]["value_size"] == [100, 4000]


def test_ratio_is_the_get_set_mix_and_by_op_keeps_its_shape(bench_json):
    code, doc, err = bench_json("--strategy", "per-thread", "--ratio", "3:1", "--distribution", "zipf",
                                "--zipf-s", "1.5")
    assert code == 0, err
    assert doc["options"]["ratio"] == [3, 1] and doc["options"]["mix"] == [["get", 3], ["set", 1]]
    assert doc["options"]["zipf_s"] == 1.5
    run = doc["runs"][0]
    assert set(run["by_op"]) == {"get", "set"} and run["misses"] == 0


def test_header_names_the_mix_and_distribution(bench):
    code, out, err = bench("--strategy", "per-thread", "--mix", "get=3,delete=1", "--distribution", "zipf",
                           "--zipf-s", "0.8")
    assert code == 0, err
    assert "keys 500 zipf s=0.8 · mix get=3,delete=1" in out.replace("\n", " ")
    assert "delete" in out and "get_multi" not in out


@pytest.mark.parametrize("args, fragments", [
    (["--mix", "get=1", "--ratio", "1:1"], ["--ratio and --mix"]),
    (["--zipf-s", "0", "--distribution", "zipf"], ["--zipf-s"]),
    (["--zipf-s", "nan", "--distribution", "zipf"], ["--zipf-s"]),
    (["--zipf-s", "1.2"], ["--zipf-s", "--distribution zipf"]),
    (["--distribution", "foo"], ["--distribution", "foo"]),
    (["--mix", "get=1,fetch=2"], ["--mix", "op mix"]),
    (["--mix", "get=0"], ["--mix", "add up to 0"]),
])
def test_bad_mix_and_distribution_are_one_line_and_exit_2(args, fragments):
    one_line_error(invoke_mcpool("bench", "--duration", "1s", *args), *fragments)


class _OneClient:
    """A strategy whose threads keep one client, as per-thread does."""

    def __init__(self, client):
        self.client = client

    def thread_client(self):
        return self.client


class _SwappingGetMulti:
    """A real client whose get_multi hands back one key's value under another key (an injected race)."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_multi(self, keys):
        found = self.client.get_multi(keys)
        if len(keys) > 1 and keys[0] in found and keys[1] in found:
            found[keys[0]], found[keys[1]] = found[keys[1]], found[keys[0]]
        return found


def load_once(client, workload, duration_s=0.3):
    """run_load in this thread against `client`, returning the batches it shipped."""
    space = build_key_space(workload)
    client.set_multi(dict(zip(space.keys, space.values)))
    start = time.perf_counter_ns()
    batches = []
    run_load(_OneClient(client), space, build_schedule(workload, 0), 60,
             LoopTiming(start, start + int(duration_s * 1e9), 50_000_000), batches.append)
    return batches


def test_loop_checks_each_get_multi_value_against_a_real_server(memcached):
    client = pylibmc.Client([memcached.spec])
    workload = Workload(keys=50, mix=(("get_multi", 1),), key_prefix="mix-test:swap:")
    batches = load_once(_SwappingGetMulti(client), workload)
    assert sum(len(b.get_multi_ns) for b in batches) > 0 and not any(b.get_ns or b.set_ns for b in batches)
    assert sum(b.wrong_values for b in batches) > 0
    assert any(b.has_anomalies for b in batches)
    example = next(e for b in batches for e in b.examples)
    assert example["kind"] == "wrong" and example["key"].startswith("mix-test:swap:k")


def test_loop_with_deletes_counts_misses_without_urgent_flushes(memcached):
    client = pylibmc.Client([memcached.spec])
    workload = Workload(keys=20, mix=(("get", 4), ("delete", 2), ("set", 1), ("get_multi", 1)),
                        distribution="zipf", key_prefix="mix-test:del:")
    batches = load_once(client, workload)
    assert sum(b.misses for b in batches) > 0
    assert not any(b.wrong_values or b.corrupt_values or b.errors for b in batches)
    assert not any(b.has_anomalies for b in batches)  # an expected miss is no reason to ship at once
    assert len(batches) < 15  # flushed every 50 ms, not every 5 ms
    for name in ("get_ns", "set_ns", "delete_ns", "get_multi_ns"):
        assert sum(len(getattr(b, name)) for b in batches) > 0, name


def test_a_miss_without_deletes_is_still_shipped_at_once():
    shipped = []
    recorder = Recorder(LoopTiming(0, 10**12, 10**9), shipped.append)
    assert recorder.anomaly("p:k1", make_value("p:k1", 20), None, 1_000, 10**9) == 1_000 + 5_000_000
    assert recorder.batch.misses == 1 and recorder.batch.has_anomalies
    expecting = Recorder(LoopTiming(0, 10**12, 10**9), shipped.append, op_codes=4, misses_expected=True)
    assert expecting.anomaly("p:k1", make_value("p:k1", 20), None, 1_000, 10**9) == 10**9
    assert expecting.batch.misses == 1 and not expecting.batch.has_anomalies


def test_get_multi_reply_is_judged_key_by_key():
    recorder = Recorder(LoopTiming(0, 10**12, 10**9), [].append, op_codes=4, misses_expected=True)
    keys = ["p:k1", "p:k2", "p:k3"]
    expected = {key: make_value(key, 30) for key in keys}
    got = {"p:k1": expected["p:k1"], "p:k2": expected["p:k3"]}  # k2 holds k3's value, k3 is missing
    assert recorder.anomaly(keys, expected, got, 1_000, 10**9) == 1_000 + 5_000_000
    batch = recorder.batch
    assert (batch.misses, batch.wrong_values, batch.corrupt_values) == (1, 1, 0)
    assert batch.examples[0]["key"] == "p:k2"
    recorder.anomaly(keys, expected, b"garbage", 2_000, 10**9)
    assert recorder.batch.corrupt_values == 1


def test_warmup_batches_of_a_mixed_loop_keep_four_failure_counters():
    shipped = []
    recorder = Recorder(LoopTiming(1_000, 10_000, 10**9), shipped.append, op_codes=4, now=500)
    record, _ = recorder.appenders()
    record[2](5)
    record[3](6)
    recorder.failure(ConnectionError("x"), 3, 900, 1_000)
    recorder.flush(1_000, completed=3)
    assert shipped[-1].delete_ns == [] and shipped[-1].get_multi_ns == [] and shipped[-1].failed == [0, 0, 0, 0]
    record, _ = recorder.appenders()
    record[2](7)
    recorder.failure(ConnectionError("x"), 3, 1_100, 10**9)
    recorder.flush(2_000, completed=5)
    assert shipped[-1].delete_ns == [7] and shipped[-1].failed == [0, 0, 0, 1]
    assert Batch().failed == [0, 0, 0, 0]


def snapshot(**lat_ns):
    return {"completed": sum(map(len, lat_ns.values())), "failed": {"get": 0, "set": 0, "delete": 1},
            "errors": {}, "wrong_values": 0, "corrupt_values": 0, "misses": 3, "exhausted": 0, "examples": [],
            "lat_ns": {name: encode_ns(values) for name, values in lat_ns.items()}}


def test_results_and_report_show_the_other_ops_only_when_run():
    stats = RunStats()
    stats.add_snapshot(snapshot(get=[100_000] * 5, set=[200_000], delete=[50_000] * 2, get_multi=[], acquire=[]))
    result = RunResult.measured("per-thread", 2, 1, None, 1.0, stats, (WorkerOutcome(measured_s=1.0),))
    doc = result.to_json()
    assert set(doc["by_op"]) == {"get", "set", "delete"}
    assert doc["by_op"]["delete"]["count"] == 3 and doc["ops"] == 9 and doc["failed_ops"] == 1
    assert 49 < doc["latency_us"]["min"] <= 50  # empty histograms do not drag the minimum to 0
    assert result.clean
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(run_report(result))
    rows = [line.split()[0] for line in out.getvalue().splitlines() if line.split()[:1]]
    assert "delete" in rows and "get_multi" not in rows
