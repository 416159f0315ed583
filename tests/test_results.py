import random
from array import array

from hdrh.histogram import HdrHistogram

from mcpool_cli.bench.results import RunResult, RunStats
from mcpool_cli.engine.histograms import new_histogram, quantize_counts
from mcpool_cli.engine.outcomes import WorkerOutcome, worst_outcome
from mcpool_cli.engine.histograms import encode_ns


def snapshot(get_ns, set_ns=(), acquire_ns=(), **counts):
    base = {"completed": len(get_ns) + len(set_ns), "failed": {"get": 0, "set": 0}, "errors": {},
            "wrong_values": 0, "corrupt_values": 0, "misses": 0, "exhausted": 0, "examples": []}
    base.update(counts)
    base["lat_ns"] = {"get": encode_ns(list(get_ns)), "set": encode_ns(list(set_ns)),
                      "acquire": encode_ns(list(acquire_ns))}
    return base


def test_quantized_recording_matches_recording_each_value():
    rng = random.Random(1)
    values = array("q", (int(rng.lognormvariate(11.7, 0.8)) for _ in range(20_000)))
    each, counted = new_histogram(), new_histogram()
    for v in values:
        each.record_value(v)
    for v, n in quantize_counts(values).items():
        counted.record_value(v, n)
    for p in (0, 50, 90, 99, 99.9, 100):
        assert each.get_value_at_percentile(p) == counted.get_value_at_percentile(p)
    assert each.get_total_count() == counted.get_total_count() == len(values)


def test_snapshots_merge_counts_and_histograms():
    stats = RunStats()
    stats.add_snapshot(snapshot([100_000, 200_000], [300_000], [500], errors={"ServerDown": 2},
                                failed={"get": 1, "set": 1}, wrong_values=1))
    stats.add_snapshot(snapshot([150_000], acquire_ns=[700], errors={"ServerDown": 1, "Error": 1}))
    assert stats.ops("get") == 4 and stats.ops("set") == 2 and stats.ops() == 6
    assert stats.errors == {"ServerDown": 3, "Error": 1}
    assert stats.wrong_values == 1
    assert stats.all_ops_histogram().get_total_count() == 4
    assert stats.histogram("acquire").get_total_count() == 2


def test_values_out_of_range_are_counted_not_dropped():
    stats = RunStats()
    stats.add_snapshot(snapshot([100, 5 * 3_600_000_000_000]))
    assert stats.histogram("get").get_total_count() == 1
    assert stats.out_of_range == 1


def test_json_carries_a_decodable_histogram():
    stats = RunStats()
    stats.add_snapshot(snapshot([120_000] * 90 + [900_000] * 10, [200_000] * 5))
    result = RunResult.measured("fifo", 4, 1, 4, 1.0, stats, (WorkerOutcome(measured_s=1.0),))
    doc = result.to_json()
    assert doc["ops"] == 105 and doc["ops_per_s"] == 105.0
    assert doc["by_op"]["get"]["count"] == 100
    assert abs(doc["by_op"]["get"]["latency_us"]["p50"] - 120) < 1
    assert HdrHistogram.decode(doc["histogram"]).get_total_count() == 105
    assert result.clean


def test_worst_outcome_wins():
    outcomes = [WorkerOutcome("ok"), WorkerOutcome("crashed", signal="SIGSEGV"), WorkerOutcome("hung")]
    assert worst_outcome(outcomes).outcome == "crashed"


def test_a_bench_run_and_its_session_load_back_as_they_were_written():
    from mcpool_cli.bench.loop import Batch
    from mcpool_cli.bench.session import BenchOptions, BenchSession, from_json
    from mcpool_cli.engine.server import ServerAddress
    from mcpool_cli.engine.session import Servers

    stats = RunStats()
    batch = Batch(completed=9, get_ns=[1000, 2000, 3000], set_ns=[4000], acquire_ns=[10, 20, 30, 40],
                  failed=[1, 0, 0, 0], errors={"ServerDown": 1}, wrong_values=1,
                  examples=[{"key": "a", "kind": "wrong", "got": "b'x'"}])
    assert Batch.from_message(batch.to_message(0.5)).to_message(0.5) == batch.to_message(0.5)
    stats.add_snapshot(batch.to_message(0.5))
    result = RunResult.measured("fifo", 4, 1, 4, 1.0, stats, (WorkerOutcome("crashed", "SIGSEGV", measured_s=0.5),))
    assert result.ops_per_s == 8.0 and result.verdict == "crashed"
    assert RunResult.from_json(result.to_json()) == result
    session = BenchSession(BenchOptions(("fifo",), threads=4), Servers((ServerAddress("127.0.0.1", 1),), False, "1.6"),
                           results=[result])
    loaded = from_json(session.to_json())
    assert (loaded.options, loaded.servers, loaded.results) == (session.options, session.servers, session.results)


def test_a_snapshot_line_is_its_message_as_json():
    import json

    from mcpool_cli.bench.loop import Batch

    batch = Batch(completed=7, get_ns=[1000, 2**40], set_ns=[4000], acquire_ns=[], failed=[0, 1, 0, 0],
                  errors={"Error \"quoted\"\n": 1}, examples=[{"key": "k\u00e9", "kind": "corrupt", "got": "b'\\x00'"}])
    line = batch.to_line(0.25)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == batch.to_message(0.25)
    empty = Batch.from_message(json.loads(Batch().to_line(0.0)))
    assert {name: list(values) for name, values in empty.latencies().items()} == Batch().latencies()
