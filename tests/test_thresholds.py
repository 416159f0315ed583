"""Thresholds (k6's meaning: the condition must hold) and the JUnit report built from result documents."""

import json
import xml.etree.ElementTree as ET

import pytest

from mcpool_cli.report import junit
from mcpool_cli.errors import UsageProblem
from mcpool_cli.kinds import by_name
from mcpool_cli.report.thresholds import check_metrics, evaluate, parse_threshold
from tests.conftest import invoke_mcpool


def test_parse_units_and_operators():
    threshold = parse_threshold("get.p99_9 < 5ms")
    assert (threshold.metric, threshold.op, threshold.limit, threshold.unit) == ("get.p99_9", "<", 0.005, "ms")
    assert parse_threshold("p99<=250us").limit == pytest.approx(250e-6)
    assert parse_threshold("recovery_s<3s").limit == 3.0
    assert parse_threshold("ops_per_s>20000").unit == ""  # a rate, not a time
    assert parse_threshold("errors==0").holds(0) and not parse_threshold("errors==0").holds(1)
    assert not parse_threshold("p99<2ms").holds(None)  # no value never passes


@pytest.mark.parametrize("text, message", [
    ("p99<2", "is a time; give a unit"),
    ("errors==0ms", "takes no unit"),
    ("p99 about 2ms", "is not METRIC OP VALUE"),
    ("p99<<2ms", "is not METRIC OP VALUE"),
    ("", "is not METRIC OP VALUE"),
])
def test_malformed_expressions(text, message):
    with pytest.raises(UsageProblem, match=message):
        parse_threshold(text)


def test_metrics_must_belong_to_the_command():
    check_metrics((parse_threshold("acquire.p99<1ms"),), by_name("bench"))
    check_metrics((parse_threshold("false_misses==0"),), by_name("stale"))
    with pytest.raises(UsageProblem, match="leaks has no metric 'p99'"):
        check_metrics((parse_threshold("p99<1ms"),), by_name("leaks"))


BENCH_DOC = {"schema": "mcpool.result/1", "interrupted": False, "runs": [
    {"strategy": "fifo", "outcome": "ok", "ops_per_s": 30000.0, "error_count": 0, "wrong_values": 0,
     "corrupt_values": 0, "latency_us": {"p99": 1500.0}, "by_op": {"get": {"count": 900, "latency_us": {"p99_9": 6000.0}}},
     "acquire": {"count": 0, "latency_us": {"p99": None}}},
    {"strategy": "shared", "outcome": "crashed", "ops_per_s": 0, "error_count": 3, "wrong_values": 2,
     "corrupt_values": 0, "latency_us": {"p99": None}, "by_op": {"get": {"count": 12, "latency_us": {}}},
     "acquire": {}},
]}


def test_every_run_is_held_to_every_threshold():
    results = evaluate(BENCH_DOC, tuple(parse_threshold(t) for t in ("p99<2ms", "get.p99_9<5ms", "errors==0")))
    assert [(r["subject"], r["expr"], r["ok"]) for r in results] == [
        ("fifo", "p99<2ms", True), ("shared", "p99<2ms", False),
        ("fifo", "get.p99_9<5ms", False), ("shared", "get.p99_9<5ms", False),
        ("fifo", "errors==0", True), ("shared", "errors==0", False)]
    assert results[0]["shown"] == "1.5 ms" and results[1]["shown"] == "no value"


def test_a_scope_the_run_never_used_is_not_applicable():
    (fifo, shared) = evaluate(BENCH_DOC, (parse_threshold("acquire.p99<1ms"),))
    assert fifo["ok"] and fifo["skipped"] and fifo["shown"] == "n/a: no acquire step"
    (fifo, shared) = evaluate(BENCH_DOC, (parse_threshold("delete.p99<1ms"),))
    assert fifo["shown"] == "n/a: no delete ops"


def test_shown_values_never_contradict_the_verdict():
    assert parse_threshold("ops_per_s>1000").shown(999.5) == "999.5"
    assert parse_threshold("get.p99<1s").shown(0.00018) == "0.00018 s"
    assert parse_threshold("p99<1ms").shown(2.005926) == "2006 ms"


def test_junit_has_a_case_per_verdict_and_threshold():
    document = dict(BENCH_DOC, thresholds=evaluate(BENCH_DOC, (parse_threshold("errors==0"),)))
    stale = {"schema": "mcpool.check/1", "check": "stale", "results": [
        {"strategy": "fifo", "verdict": "false-misses", "advice": "silent"},
        {"strategy": "per-thread", "verdict": "recovered"}]}
    root = ET.fromstring(junit.render([document, stale]))
    bench_suite, stale_suite = root.findall("testsuite")
    assert bench_suite.get("tests") == "4" and bench_suite.get("failures") == "2"
    names = [case.get("name") for case in bench_suite.iter("testcase")]
    assert names == ["fifo: run", "shared: run", "fifo: errors==0", "shared: errors==0"]
    failure = bench_suite.findall("testcase")[1].find("failure")
    assert "outcome crashed" in failure.get("message") and "2 wrong values" in failure.get("message")
    assert stale_suite.get("name") == "mcpool check-stale" and stale_suite.get("failures") == "1"


def test_thresholds_on_a_real_bench(memcached, tmp_path):
    report, results = tmp_path / "junit.xml", tmp_path / "out.json"
    process = invoke_mcpool("bench", "-s", memcached.spec, "--strategy", "per-thread", "--threads", "2",
                         "--duration", "500ms", "--warmup", "100ms", "--keys", "200", "--quiet",
                         "--threshold", "errors==0", "--threshold", "p99<10s", "--threshold", "ops_per_s>1e9",
                         "--junit", str(report), "--json", str(results))
    assert process.returncode == 1, process.stderr  # the run was clean; one threshold failed
    assert "✓  errors==0" in process.stdout and "✗  ops_per_s>1e9" in process.stdout
    judged = json.loads(results.read_text())["thresholds"]
    assert [r["ok"] for r in judged] == [True, True, False]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1"


def test_a_bad_threshold_is_exit_2_before_any_load(memcached):
    for args in (["--threshold", "p99<2"], ["--threshold", "false_misses==0"]):
        process = invoke_mcpool("bench", "-s", memcached.spec, *args)
        assert process.returncode == 2 and len(process.stderr.strip().splitlines()) == 1, process.stderr
        assert "Traceback" not in process.stderr and "measuring" not in process.stderr
