"""`mcpool check-races` against a real memcached, each trial in a real worker process."""

import json

import pytest
from click.testing import CliRunner

from mcpool_cli.cli import cli
from tests.conftest import TESTS

QUICK = ["--duration", "500ms", "--trials", "2", "--threads", "4", "--quiet", "--json", "-"]


@pytest.fixture
def races(memcached, monkeypatch):
    monkeypatch.chdir(TESTS)

    def run(*args: str) -> tuple[int, dict, str]:
        result = CliRunner().invoke(cli, ["check-races", "-s", memcached.spec, *QUICK, *args])
        return result.exit_code, json.loads(result.stdout), result.stderr

    return run


def by_strategy(doc):
    return {result["strategy"]: result for result in doc["results"]}


def test_safe_builtins_come_out_safe(races):
    code, doc, err = races("--strategy", "fifo", "--strategy", "thread-mapped", "--strategy", "per-thread")
    assert code == 0, err
    assert doc["schema"] == "mcpool.check/1" and doc["check"] == "races"
    for result in doc["results"]:
        assert result["verdict"] == "safe", result
        assert result["anomaly_count"] == 0 and result["first_anomaly_s"] is None
        assert len(result["trials"]) == 2 and all(t["ops"] > 100 for t in result["trials"])
        assert set(result["anomalies"]) == {"other_key", "stale_own", "false_miss", "corrupt", "protocol_desync"}


def test_shared_client_is_unsafe_with_evidence(races):
    code, doc, _ = races("--strategy", "shared", "--threads", "8", "--hang-timeout", "1s")  # hung is a verdict too
    (result,) = doc["results"]
    assert result["verdict"] in ("crashed", "hung", "racy")
    assert result["trials_affected"] == 2
    assert code == 1


def test_a_racy_custom_pool_is_caught(races):
    code, doc, _ = races("--strategy", "fault_strategies:racy_pool")
    (result,) = doc["results"]
    assert result["verdict"] == "racy"
    assert result["anomalies"]["other_key"] > 0 and result["first_anomaly_s"] is not None
    example = result["examples"][0]
    assert example["kind"] == "other_key" and example["key"] and example["expected"] and example["got"]
    assert "Two threads held one client at once" in result["advice"]
    assert code == 1


def test_crash_and_hang_verdicts(races):
    code, doc, _ = races("--strategy", "fault_strategies:crash_pool", "--strategy", "fault_strategies:hang_pool",
                         "--hang-timeout", "1s", "--trials", "1", "--duration", "1s")  # both fail 0.6 s in
    results = by_strategy(doc)
    crash = results["fault_strategies:crash_pool"]
    assert crash["verdict"] == "crashed" and crash["trials"][0]["signal"] == "SIGABRT"
    assert crash["summary"].startswith("crashed in 1/1 trials: SIGABRT")
    assert results["fault_strategies:hang_pool"]["verdict"] == "hung"
    assert code == 1


def test_fork_check_catches_cross_process_replies(races):
    code, doc, _ = races("--fork", "--trials", "1")  # a stolen reply can stall a trial in libmemcached's 5 s poll
    (result,) = doc["results"]
    assert result["strategy"] == "fork"
    assert result["verdict"] in ("racy", "crashed")
    assert "fork()" in result["advice"]
    assert code == 1


def test_bad_input_is_exit_2(memcached):
    result = CliRunner().invoke(cli, ["check-races", "-s", memcached.spec, "--trials", "0"])
    assert result.exit_code == 2 and "--trials" in result.stderr
    result = CliRunner().invoke(cli, ["check-races", "-s", memcached.spec, "--strategy", "nope:make"])
    assert result.exit_code == 2 and "cannot import 'nope'" in result.stderr


def test_nothing_checked_is_inconclusive_not_safe(races):
    code, doc, _ = races("--strategy", "fault_strategies:refusing_pool", "--trials", "1")
    (result,) = doc["results"]
    assert result["verdict"] == "inconclusive"
    assert result["trials"][0]["checked"] == 0 and result["errors"]["RuntimeError"] > 0
    assert code == 1


def test_fork_takes_no_strategy_and_trials_need_time(memcached):
    result = CliRunner().invoke(cli, ["check-races", "-s", memcached.spec, "--fork", "--strategy", "fifo"])
    assert result.exit_code == 2 and "--fork" in result.stderr
    result = CliRunner().invoke(cli, ["check-races", "-s", memcached.spec, "--duration", "0s"])
    assert result.exit_code == 2 and "--duration" in result.stderr


def test_errors_raised_inside_a_shared_library_are_a_race_not_safe(races):
    """A pure-Python client shared by 8 threads raises KeyError / AttributeError / AssertionError from its own code
    in well under 1% of calls and never answers with another key's value: that is a race, with where it raised."""
    code, doc, _ = races("--strategy", "fault_strategies:inflight_pool", "--strategy", "fifo",
                         "--strategy", "per-thread", "--trials", "1", "--threads", "8")
    results = by_strategy(doc)
    shared = results["fault_strategies:inflight_pool"]
    assert shared["verdict"] == "racy" and shared["anomaly_count"] == 0, shared["summary"]
    assert shared["library_errors"] > 0 and shared["unexplained_errors"] == sum(shared["errors"].values())
    assert shared["error_sites"] and all(site.split(" at ")[1].startswith("fault_strategies.py:")
                                         for site in shared["error_sites"])
    assert set(shared["errors"]) <= {"KeyError", "AttributeError", "AssertionError"}
    assert shared["trials"][0]["error_sites"] == shared["error_sites"]
    assert "inside the client library" in shared["summary"] and "own code" in shared["advice"]
    for builtin in ("fifo", "per-thread"):
        assert results[builtin]["verdict"] == "safe" and results[builtin]["error_sites"] == {}
    assert code == 1
