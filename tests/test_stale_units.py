"""check-stale without memcached: verdicts judged once, results and sessions read back as written."""

import io
import json

import pytest
from rich.console import Console

from mcpool_cli.checks.stale.analysis import OverTime, StaleFigures, StaleStats, interval_for
from mcpool_cli.engine.faults import FaultTimes
from mcpool_cli.checks.stale.command import check_stale, validate
from mcpool_cli.checks.stale.loop import StaleBatch
from mcpool_cli.checks.stale.render import render
from mcpool_cli.checks.stale.session import StaleCheck, StaleOptions, StaleSession, from_json
from mcpool_cli.commandkit import split_params
from mcpool_cli.engine.outcomes import WorkerOutcome
from mcpool_cli.engine.server import parse_server
from mcpool_cli.engine.session import Servers
from mcpool_cli.errors import UsageProblem


def figures(**changed) -> StaleFigures:
    base = dict(false_misses=0, false_miss_ops=0, unverified_misses=1, errors={"ServerDown": 12}, wrong_values=0,
                ops_scheduled=400, ops_ok=380, ops_skipped=8, outage_s=1.25, recovery_s=0.4, longest_op_s=0.05,
                first_failure_s=0.002)
    return StaleFigures(**{**base, **changed})


def check(strategy="fifo", variant="defaults", worker=WorkerOutcome(), bound_s=5.0, **changed) -> StaleCheck:
    found = None if changed.pop("no_fault", False) else figures(**changed)
    return StaleCheck.judged(strategy, variant, (("retry_timeout", 1),), "drop", worker, found,
                             "the proxy closed 4 client connections at once", bound_s)


def test_verdict_and_advice_are_judged_once():
    assert check().verdict == "recovered" and "failed loudly" in check().advice
    assert check(errors={}).advice == "Nothing failed: calls waited out the fault and went on."
    assert check(false_misses=4, false_miss_ops=1).verdict == "false-misses"
    assert check(recovery_s=None).verdict == "not-recovered"
    assert check(recovery_s=6.0).verdict == "slow-recovery" and "5 s after the server was back" in check(
        recovery_s=6.0).advice
    assert check(no_fault=True).verdict == "no-fault"
    hung = check(worker=WorkerOutcome("hung", message="no progress for 10 s"))
    assert (hung.verdict, hung.outcome) == ("hung", "hung")
    assert hung.advice == "The run did not finish (no progress for 10 s)."


def test_errors_the_fault_does_not_explain_keep_a_run_from_recovered():
    early = check(errors_before_fault=3)
    assert early.verdict == "unexplained-errors" and "3 before the fault" in early.advice
    assert check(errors_after_settled=2).verdict == "unexplained-errors"
    assert check(errors_before_fault=3, false_misses=4, false_miss_ops=1).verdict == "false-misses"
    assert "unexplained-errors" not in StaleSession.KIND.good_verdicts
    row = early.to_json()
    assert row["unexplained_errors"] == 3 and StaleCheck.from_json(json.loads(json.dumps(row))) == early
    old = {k: v for k, v in check().to_json().items()
           if k not in ("errors_before_fault", "errors_after_settled", "unexplained_errors")}
    assert StaleCheck.from_json(old) == check()


@pytest.mark.parametrize("made", [check(), check(no_fault=True), check(worker=WorkerOutcome("crashed", "SIGSEGV")),
                                  check(false_misses=4, false_miss_ops=1, first_failure_s=None)])
def test_a_check_reads_back_as_written(made):
    assert StaleCheck.from_json(made.to_json()) == made
    assert StaleCheck.from_json(json.loads(json.dumps(made.to_json()))) == made


def test_a_check_writes_the_fields_it_always_wrote():
    row = check().to_json()
    assert {"strategy", "behaviors", "variant", "fault", "verdict", "outcome", "fault_detail", "recovery_bound_s",
            "advice", "error_count", "ops_failed", "ops_lost", "false_misses", "outage_s"} <= set(row)
    assert row["behaviors"] == {"retry_timeout": 1} and row["error_count"] == 12 and row["ops_lost"] == 20
    assert check(no_fault=True).to_json()["false_misses"] is None


def session() -> StaleSession:
    options = StaleOptions(strategies=("fifo", "per-thread"), fault="drop", compare_behaviors=True,
                           behaviors=(("tcp_nodelay", 1),), mix=(("get", 3), ("set", 1)))
    results = [check(variant="tcp_nodelay=1"), check(variant="tcp_nodelay=1+retry_timeout=1", outage_s=0.5),
               check("per-thread", worker=WorkerOutcome("interrupted"))]
    return StaleSession(options, Servers((parse_server("127.0.0.1:11311"),), False, "1.6.21"), run_id="ab12cd34",
                        proxy_addresses=("127.0.0.1:40001",), results=results, stopped_early="port taken",
                        interrupted=False)


def test_a_session_reads_back_as_written():
    written = session()
    document = json.loads(json.dumps(written.to_json()))
    assert document["server"] == {"addresses": ["127.0.0.1:11311"], "embedded": False, "version": "1.6.21",
                                  "proxies": ["127.0.0.1:40001"]}
    assert document["stopped_early"] == "port taken" and document["check"] == "stale"
    assert document["comparisons"] == ["fifo: tcp_nodelay=1+retry_timeout=1 shortened the outage to 0.50 s "
                                       "from 1.25 s with tcp_nodelay=1"]
    assert "import_path" not in document["options"]
    read = from_json(document)
    assert read.options == written.options and read.servers == written.servers
    assert read.results == written.results and read.proxy_addresses == written.proxy_addresses
    assert (read.run_id, read.stopped_early, read.interrupted) == ("ab12cd34", "port taken", False)
    assert json.loads(json.dumps(read.to_json())) == document


def test_batches_cross_the_pipe_unchanged():
    batch = StaleBatch(ok=5, scheduled=7, skipped=1, ok_ms={1001: 3, 1002: 2}, fail_ms={1003: 1},
                       error_ms={1003: 1}, ok_end_ms=[1001, 1001, 1001, 1002, 1002], ok_ns=[90_000, 1, 2, 3, 4],
                       errors={"ServerDown": 1}, misses=[(10, 20), (10, 20)], slow=[(5, 60_000_005)], wrong=1,
                       max_op_ns=60_000_000)
    assert StaleBatch.from_message(batch.to_message()) == batch
    assert StaleBatch.from_message(json.loads(json.dumps(batch.to_message(t0_ns=5)))) == batch


def params(*args: str) -> tuple[tuple, dict]:
    servers, _, own = split_params(check_stale.make_context("check-stale", list(args)).params)
    return servers, own


def test_validate_is_pure_and_checks_everything(monkeypatch):
    monkeypatch.delenv("MCPOOL_SERVERS", raising=False)
    options = validate(params("--fault", "drop", "--behavior", "retry_timeout=1")[1])
    assert options.strategies == ("fifo", "thread-mapped", "per-thread") and options.behaviors == (("retry_timeout", 1),)
    servers, own = params("-s", "127.0.0.1:11211", "--fault", "idle")
    with pytest.raises(UsageProblem, match="--fault idle needs the memcached mcpool starts itself"):
        validate(own, servers)
    with pytest.raises(UsageProblem, match="--behavior"):
        validate(params("--compare-behaviors", "--behavior", "retry_timeout=0")[1])
    with pytest.raises(UsageProblem, match="only reads can show a false miss"):
        validate(params("--mix", "set=1")[1])


def test_the_report_says_why_it_stopped_early():
    console = Console(file=io.StringIO(), width=160)
    render(session(), console)
    out = console.file.getvalue()
    assert "check-stale · fault drop · 8 threads × 200 ops/s" in out and "Behaviors compared:" in out
    assert "per-thread · defaults: the proxy closed 4 client connections at once" in out
    assert "errors: ServerDown 12" in out and out.rstrip().endswith("stopped early: port taken")


MS = 1_000_000
T0_NS = 7_000 * MS + 400_000  # the worker's load started 0.4 ms into a millisecond: the origin is 7000 ms


def snapshot(ok_ms=(), fail_ms=(), error_ms=(), latencies=(), misses=()) -> dict:
    """A worker's snapshot: `ok_ms` etc. as ms from the origin; `latencies` as (ms from the origin, ns)."""
    at = lambda ms: 7_000 + ms  # noqa: E731
    batch = StaleBatch(ok=len(latencies), scheduled=len(latencies), ok_ms={at(t): n for t, n in ok_ms},
                       fail_ms={at(t): n for t, n in fail_ms}, error_ms={at(t): n for t, n in error_ms},
                       ok_end_ms=[at(t) for t, _ in latencies], ok_ns=[ns for _, ns in latencies],
                       misses=[(at(start) * MS, at(end) * MS) for start, end in misses])
    return json.loads(json.dumps(batch.to_message(T0_NS)))


def filled_stats() -> StaleStats:
    """1 s of load at 0.5 s intervals: ok ops before the fault, failures and a false miss in it, slow oks after;
    two batches of one interval arriving apart, and an op that completed after the load's end (1 s)."""
    stats = StaleStats(0.5)
    stats.add_snapshot(snapshot(ok_ms=[(10, 2), (499, 1)], latencies=[(10, 100_000), (10, 120_000), (499, 90_000)]))
    stats.add_snapshot(snapshot(fail_ms=[(500, 3), (600, 1)], error_ms=[(500, 3)], misses=[(640, 641)] * 4))
    stats.add_snapshot(snapshot(ok_ms=[(700, 1), (999, 1), (1000, 1)],
                                latencies=[(700, 40 * MS), (999, 200_000), (1000, 50_000)]))
    stats.add_snapshot(snapshot(ok_ms=[(20, 1)], latencies=[(20, 110_000)]))  # late, from a thread that was stuck
    return stats


def test_ops_are_filed_under_the_interval_of_the_millisecond_they_completed_in():
    stats = filled_stats()
    over_time = stats.over_time(FaultTimes(start_ns=T0_NS + 500 * MS, back_ns=T0_NS + 650 * MS), load_s=1.0)
    rows = over_time.timeline.to_json(over_time.measured_s)
    assert [(r["t_s"], r["length_s"], r["ops"], r["failed_ops"], r["errors"]) for r in rows] == [
        (0.0, 0.5, 4, 0, 0), (0.5, 0.5, 3, 5, 3)]  # the op at 1000 ms (after the end) is in the last interval
    assert sum(r["ops"] for r in rows) == stats.total.ok == sum(stats.total.ok_ms.values())
    assert rows[0]["ops_per_s"] == 8.0 and rows[0]["latency_us"]["max"] == pytest.approx(120, rel=1e-3)
    assert rows[1]["latency_us"]["max"] == pytest.approx(40_000, rel=1e-3)  # the slow op shows in its interval
    assert over_time.measured_s == 1.0
    # the origin is the load's start floored to the ms: the fault, planned 500 ms after it, is 0.5004 s after that
    assert (over_time.fault_at_s, over_time.back_at_s) == (0.5004, 0.6504)
    assert stats.total.ok_end_ms == [] and stats.total.ok_ms[7_010] == 2  # the total keeps ms counts, not latencies


def test_without_a_fault_or_an_end_the_timeline_still_stands():
    plain = filled_stats().over_time(None, None)
    assert (plain.fault_at_s, plain.back_at_s) == (None, None)
    rows = plain.timeline.to_json(plain.measured_s)
    assert len(rows) == 3 and rows[2]["length_s"] == 0.001 and plain.measured_s == 1.001  # nothing folded
    assert sum(r["failed_ops"] for r in rows) == 4  # misses are not failures until the fault tells them false
    assert StaleStats(0.5).over_time(None, 1.0) == OverTime(StaleStats(0.5).timeline)  # no snapshot came


@pytest.mark.parametrize("duration_s, interval_s", [(60, 1.0), (16, 1.0), (11, 0.5), (6.5, 0.25), (3.3, 0.2),
                                                    (1.0, 0.1)])
def test_a_short_run_gets_shorter_intervals(duration_s, interval_s):
    assert interval_for(duration_s) == interval_s


def checked_with_timeline() -> StaleCheck:
    over_time = filled_stats().over_time(FaultTimes(start_ns=T0_NS + 500 * MS, back_ns=T0_NS + 650 * MS), 1.0)
    return StaleCheck.judged("fifo", "defaults", (), "drop", WorkerOutcome(), figures(), "dropped", 5.0, over_time)


def test_a_check_with_its_timeline_reads_back_as_written_and_an_older_one_without():
    made = checked_with_timeline()
    row = json.loads(json.dumps(made.to_json()))
    assert row["interval_s"] == 0.5 and row["fault_at_s"] == 0.5004 and len(row["intervals"]) == 2
    assert set(row["intervals"][0]) == {"t_s", "length_s", "ops", "failed_ops", "errors", "ops_per_s", "latency_us",
                                        "histogram"}
    assert StaleCheck.from_json(row) == made and StaleCheck.from_json(row).to_json() == row
    older = {k: v for k, v in row.items() if k not in ("interval_s", "fault_at_s", "back_at_s", "intervals")}
    read = StaleCheck.from_json(older)
    assert read.over_time is None and read.to_json() == older
    assert StaleCheck.from_json(check(no_fault=True).to_json()).over_time is None


def test_a_session_with_timelines_reads_back_as_written():
    written = session()
    written.results.append(checked_with_timeline())
    document = json.loads(json.dumps(written.to_json()))
    read = from_json(document)
    assert read.results == written.results and json.loads(json.dumps(read.to_json())) == document


def test_the_report_draws_the_timeline_with_the_fault_marked():
    stats = StaleStats(0.5)  # 4 s: failures from 1.0 s to 2.6 s, the server usable again at 2.2 s
    oks = [t for t in range(0, 4000, 10) if not 1000 <= t < 2600]
    stats.add_snapshot(snapshot(ok_ms=[(t, 1) for t in oks], latencies=[(t, 100_000) for t in oks],
                                fail_ms=[(t, 1) for t in range(1000, 2600, 10)]))
    over_time = stats.over_time(FaultTimes(start_ns=T0_NS + 1000 * MS, back_ns=T0_NS + 2200 * MS), 4.0)
    result = StaleCheck.judged("fifo", "defaults", (), "freeze", WorkerOutcome(), figures(recovery_s=0.4),
                               "frozen", 5.0, over_time)
    console = Console(file=io.StringIO(), width=100)
    render(StaleSession(StaleOptions(strategies=("fifo",), fault="freeze"),
                        Servers((parse_server("127.0.0.1:11311"),), False, "1.6.21"), run_id="ab12cd34",
                        results=[result]), console)
    lines = console.file.getvalue().splitlines()
    title = next(i for i, line in enumerate(lines) if "over time" in line)
    assert "0.5 s a mark, 0–3.99 s from the load's start" in lines[title]
    ok, failed, p99, marks, words = lines[title + 1:title + 6]
    column = ok.index("█")  # the first mark's column
    assert ok.split()[0] == "ok/s" and ok[column:column + 8] == "██   ▇██"  # 2.5–3 s: 0.4 s of successes
    assert failed.split()[0] == "failed/s" and failed[column:column + 8] == "  ███▂  "
    assert p99.split()[0] == "p99" and p99[column:column + 8] == "▁▁···▁▁▁"  # one latency throughout: the floor
    assert marks.split()[0] == "fault" and marks[column:column + 8] == "  ▼━▲✓  "
    assert words.split() == ["▼", "fault", "struck", "+1.00", "s", "·", "▲", "server", "usable", "again", "+2.20",
                             "s", "·", "✓", "recovered", "+2.60", "s"]


def test_a_stall_long_after_the_server_came_back_does_not_stretch_the_outage():
    from mcpool_cli.checks.stale.analysis import analyse
    from mcpool_cli.engine.faults import FaultTimes
    from mcpool_cli.checks.stale.loop import StaleBatch

    ms = 1_000_000
    oks = {t: 1 for t in [*range(900, 1000, 10), *range(2210, 9000, 10)]}
    batch = StaleBatch(ok=len(oks), scheduled=len(oks) + 100, ok_ms=oks, fail_ms={t: 1 for t in range(1000, 2200, 12)},
                       errors={"ServerDown": 100}, slow=[(8_000 * ms, 8_070 * ms)], max_op_ns=70 * ms)
    figures = analyse(batch, FaultTimes(start_ns=1_000 * ms, back_ns=2_000 * ms))
    assert figures.recovery_s == 0.21  # the first success after the last failure, not after the stall at 8 s
    near = StaleBatch(ok=len(oks), scheduled=len(oks) + 100, ok_ms=oks, fail_ms={t: 1 for t in range(1000, 2200, 12)},
                      errors={"ServerDown": 100}, slow=[(2_500 * ms, 2_570 * ms)], max_op_ns=70 * ms)
    assert analyse(near, FaultTimes(start_ns=1_000 * ms, back_ns=2_000 * ms)).recovery_s == 0.51  # still the fault's
