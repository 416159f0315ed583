"""Pure pieces of the engine, without processes: exit classification, batch merging, the warm-up boundary."""

import signal

import pytest

from mcpool_cli.bench.loop import Batch, LoopTiming, Recorder
from mcpool_cli.engine.pacing import ARRIVALS, GAP_MASK, Pacer
from mcpool_cli.engine.runner import classify_exit
from mcpool_cli.bench.loop import merge_batches


def test_classify_exit():
    done = [{"type": "done"}]
    assert classify_exit(0, "", done, [], 1.0).outcome == "ok"
    crashed = classify_exit(-signal.SIGABRT, "", [], ["x", "double free or corruption (out)"], 0.5)
    assert (crashed.outcome, crashed.signal, crashed.stderr_tail) == ("crashed", "SIGABRT",
                                                                       "double free or corruption (out)")
    assert classify_exit(-9, "hung", [], [], 0.0).outcome == "hung"  # killed by us: our reason, not the signal
    error = classify_exit(1, "", [{"type": "error", "message": "RuntimeError: boom"}], [], 0.0)
    assert (error.outcome, error.message) == ("error", "RuntimeError: boom")
    thread_died = classify_exit(0, "", [{"type": "error", "message": "load thread 3 died"}, *done], [], 1.0)
    assert thread_died.outcome == "error"  # the worker finished, but not cleanly
    silent = classify_exit(0, "", [], ["last words"], 0.0)
    assert (silent.outcome, silent.message) == ("error", "last words")


def test_merge_batches_sums_and_caps_examples():
    one = Batch(completed=3, get_ns=[1, 2], errors={"ServerDown": 1}, wrong_values=1,
                examples=[{"key": "a", "kind": "wrong", "got": "b"}] * 4)
    two = Batch(completed=2, set_ns=[5], failed=[1, 0], errors={"ServerDown": 2, "Error": 1},
                examples=[{"key": "c", "kind": "wrong", "got": "d"}] * 4)
    total = merge_batches([one, two])
    assert total.completed == 5 and total.get_ns == [1, 2] and total.set_ns == [5]
    assert total.failed == [1, 0] and total.errors == {"ServerDown": 3, "Error": 1}
    assert len(total.examples) == 5


def test_recorder_drops_warmup_timings_but_keeps_what_went_wrong():
    shipped = []
    timing = LoopTiming(measure_start_ns=1_000_000, end_ns=100_000_000, slot_ns=10_000_000)
    recorder = Recorder(timing, shipped.append, now=500_000)
    assert recorder.batch.slot == -1  # warm-up
    assert recorder.next_flush(500_000) == 1_000_000  # the first flush falls due at the start of measurement
    record, record_acquire = recorder.appenders()
    record[0](123)
    record_acquire(7)
    recorder.failure(ConnectionError("x"), 1, 900_000, 1_000_000)
    next_flush = recorder.flush(1_000_000, completed=2)
    warmup = shipped[-1]
    assert warmup.get_ns == [] and warmup.acquire_ns == [] and warmup.failed == [0, 0]
    assert warmup.errors == {"ConnectionError": 1} and warmup.completed == 2
    assert recorder.batch.slot == 0 and next_flush == 11_000_000  # flushes follow the grid of slots
    record, _ = recorder.appenders()
    record[1](456)
    assert recorder.flush(25_000_000, completed=3) == 31_000_000
    assert shipped[-1].set_ns == [456] and shipped[-1].completed == 1 and shipped[-1].slot == 0
    assert recorder.batch.slot == 2
    recorder.flush(100_000_000 + 5_000_000, completed=4)  # an op that completed after the end
    assert recorder.batch.slot == 9  # belongs to the last slot of the measured window


def test_slot_grid_tiles_an_interval_with_slots_of_at_most_an_eighth_of_a_second():
    from mcpool_cli.bench.loop import slot_grid

    assert slot_grid(1.0) == (125_000_000, 8)
    assert slot_grid(0.3) == (100_000_000, 3)
    assert slot_grid(0.05) == (50_000_000, 1)
    assert slot_grid(2.5) == (125_000_000, 20)

def skipped_one_by_one(pacer, now_ns: int) -> int:
    """What Pacer.skip_missed does, without its shortcut: one gap at a time."""
    skipped = 0
    while now_ns - pacer.due >= pacer.gaps[pacer.k & GAP_MASK]:
        pacer.advance()
        skipped += 1
    return skipped


@pytest.mark.parametrize("arrival", ARRIVALS)
@pytest.mark.parametrize("rate, ops_before, behind_ns", [
    (200, 0, 0), (200, 3, 4_999_999), (200, 3, 5_000_000), (200, 10, 12_345_678), (100_000, 7, 60_000_000_000),
    (100_000, 5000, 81_920_000 * 2 + 1), (3333, 4095, 10**10)])
def test_skip_missed_drops_whole_gaps_and_a_long_stall_at_once_the_same(arrival, rate, ops_before, behind_ns):
    quick, slow = Pacer(rate, 10**9, arrival, seed=7), Pacer(rate, 10**9, arrival, seed=7)
    for _ in range(ops_before):
        quick.advance(), slow.advance()
    now = quick.due + behind_ns
    assert quick.skip_missed(now) == skipped_one_by_one(slow, now)
    assert (quick.due, quick.k) == (slow.due, slow.k)
    assert quick.due <= now < quick.due + quick.gaps[quick.k & GAP_MASK]  # the last op due stays due, starts now


def test_a_constant_pacer_spreads_its_first_op_and_keeps_the_mean_gap():
    pacer = Pacer(200, 10**9, "constant", seed=3)
    assert 10**9 <= pacer.due < 10**9 + 5_000_000 and pacer.mean_gap_ns == 5_000_000
    first = pacer.due
    assert [pacer.advance() - first for _ in range(3)] == [5_000_000, 10_000_000, 15_000_000]
    pacer.restart(7 * 10**9)
    assert pacer.due == 7 * 10**9 and pacer.skip_missed(7 * 10**9 + 4_999_999) == 0


def test_fold_after_files_later_intervals_under_the_last_one():
    from collections import Counter

    from mcpool_cli.engine.timeline import Timeline

    timeline = Timeline(0.5, 1)
    for slot, ok, failed, latency_ns in ((0, 3, 0, 1_000), (1, 2, 1, 2_000), (2, 1, 0, 9_000_000), (4, 0, 2, 0)):
        timeline.count(slot, ok, failed, failed)
        if latency_ns:
            timeline.record(slot, Counter({latency_ns: ok}))
    timeline.seal_old()
    timeline.fold_after(1)
    rows = timeline.to_json(1.0)
    assert [(row["ops"], row["failed_ops"], row["errors"]) for row in rows] == [(3, 0, 0), (3, 3, 3)]
    assert rows[1]["latency_us"]["max"] == pytest.approx(9_000, rel=1e-3)  # the late op's latency came along
    assert rows[1]["latency_us"]["p50"] == pytest.approx(2, rel=1e-3)  # an empty interval added no 0
    timeline.fold_after(5)
    assert timeline.to_json(1.0) == rows


def test_a_reserve_that_waited_past_the_end_is_filed_under_the_last_slot():
    import time

    now = time.perf_counter_ns()
    timing = LoopTiming(measure_start_ns=now - 1_000_000_000, end_ns=now - 500_000_000, slot_ns=125_000_000)
    recorder = Recorder(timing, [].append, now=now - 2_000_000_000)  # a batch begun in the warm-up
    recorder.waited_until_end(now - 1_500_000_000)
    assert recorder.batch.slot == 3  # the window's last slot, not one after the end
    assert len(recorder.batch.acquire_ns) == 1 and recorder.batch.acquire_ns[0] >= 1_000_000_000
