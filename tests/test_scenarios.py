"""Scenarios: the TOML format, `mcpool run` and `mcpool scenarios`, and every shipped scenario in quick mode."""

import json
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mcpool_cli.cli import cli
from mcpool_cli.scenarios.loader import load, shipped, shipped_folder
from tests.conftest import invoke_mcpool, run_mcpool

SHIPPED = [name for name, _ in shipped()]


def test_at_least_six_shipped_each_with_a_description_and_a_comment():
    assert len(SHIPPED) >= 6
    assert {"web-cache", "session-store", "hot-key", "large-values", "pool-exhaustion", "thread-churn",
            "restart-under-load", "ci-smoke"} <= set(SHIPPED)
    for path in shipped_folder().glob("*.toml"):
        assert path.read_text().startswith("# "), f"{path.name} says what it models in a comment"
    listed = invoke_mcpool("scenarios")
    assert listed.returncode == 0
    for name, description in shipped():
        assert name in listed.stdout and description.split()[0] in listed.stdout


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_is_valid(name):
    scenario = load(name, cli.commands)
    assert scenario.phases and scenario.description


@pytest.mark.parametrize("body, message", [
    ('colour = "red"\n[bench]\n', "unknown key 'colour'; expected description, servers"),
    ("[bench]\nthreds = 4\n", "[bench] unknown key 'threds'; expected one of"),
    ('[bench]\nthreads = "four"\n', "[bench] threads: expected an integer, got 'four'"),
    ("[bench]\nthreads = 0\n", "[bench] threads: 0 is not in the range"),
    ('[bench]\nduration = "soon"\n', "[bench] duration: 'soon' is not a duration"),
    ('[bench]\nstrategies = "fifo"\n', "[bench] strategies: expected a list of strings"),
    ('[bench]\nthresholds = ["p99<2"]\n', "[bench] thresholds: threshold 'p99<2': p99 is a time"),
    ('[leaks]\nthresholds = ["p99<2ms"]\n', "leaks has no metric 'p99'"),
    ('[stale]\nfault = "explode"\n', "[stale] fault: 'explode' is not one of"),
    ('[leaks]\nrelinquish = "yes"\n', "[leaks] relinquish: expected true or false"),
    ('description = "nothing"\n', "nothing to run"),
    ("[bench\n", "not valid TOML"),
    ('[bench]\nduration_s = "30s"\n', "[bench] unknown key 'duration_s'"),
    ("[bench]\ncheck_only = true\n", "[bench] unknown key 'check_only'"),
])
def test_a_bad_file_is_exit_2_with_the_file_and_the_key(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    process = invoke_mcpool("run", str(path))
    assert process.returncode == 2, process.stderr
    assert len(process.stderr.strip().splitlines()) == 1 and "Traceback" not in process.stderr
    assert str(path) in process.stderr and message in process.stderr


def test_a_restart_against_a_given_server_is_refused_before_any_phase_runs(memcached, tmp_path):
    path = tmp_path / "restart.toml"
    path.write_text('[bench]\nduration = "30s"\n[stale]\nstrategies = ["fifo"]\n')  # restart: check-stale's default
    process = invoke_mcpool("run", str(path), "-s", memcached.spec)
    assert process.returncode == 2 and "needs the memcached mcpool starts" in process.stderr
    assert "▶" not in process.stdout  # not even the bench phase began


def test_a_missing_scenario_names_the_shipped_ones():
    process = invoke_mcpool("run", "no-such-scenario")
    assert process.returncode == 2 and "ci-smoke" in process.stderr


def test_run_writes_one_bundle_and_one_junit(memcached, tmp_path):
    scenario = tmp_path / "mine.toml"
    scenario.write_text('description = "two phases"\n'
                        '[bench]\nstrategies = ["per-thread"]\nthreads = 2\nkeys = 200\nduration = "10s"\n'
                        'thresholds = ["errors==0", "ops_per_s>1e9"]\n'
                        '[leaks]\nstrategies = ["fifo"]\nchurn = 20\nconcurrency = 4\n')
    results, report = tmp_path / "out.json", tmp_path / "junit.xml"
    process = invoke_mcpool("run", str(scenario), "--duration", "300ms", "-s", memcached.spec, "-q",
                         "--threshold", "leaked_connections==0", "--json", str(results), "--junit", str(report))
    assert process.returncode == 1, process.stderr  # ops_per_s>1e9 cannot hold
    bundle = json.loads(results.read_text())
    assert bundle["schema"] == "mcpool.run/1" and bundle["scenario"] == "mine"
    bench, leaks = bundle["documents"]
    assert bench["options"]["duration_s"] == 0.3  # --duration shortened the phase
    assert [p["exit_code"] for p in bundle["phases"]] == [1, 0]
    assert [(r["phase"], r["expr"], r["ok"]) for r in bundle["thresholds"]] == [
        ("bench", "errors==0", True), ("bench", "ops_per_s>1e9", False),
        ("check-leaks", "leaked_connections==0", True)]
    suites = ET.parse(report).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["mcpool bench", "mcpool check-leaks"]
    assert [s.get("failures") for s in suites] == ["1", "0"]
    assert "2/3 thresholds held" in process.stdout


SHIPPED_AT_ONCE = 3  # restart-under-load mostly waits on timers; the others on round trips more than on the CPU


@pytest.fixture(scope="module")
def shipped_runs(tmp_path_factory):
    """Every shipped scenario run once in quick mode as a real process, several at a time; name → (process, bundle path).

    Each run gets the memcached mcpool starts for it (no -s, no MCPOOL_SERVERS): a restart needs mcpool's own
    server, and runs side by side must not share one, as a leak check counts the connections on its server.
    Running them side by side only makes latency thresholds fail more often, which the test accepts (exit 1).
    """
    folder = tmp_path_factory.mktemp("shipped")

    def run(name: str):
        results = folder / f"{name}.json"
        process = run_mcpool("run", name, "--duration", "300ms", "-q", "--json", str(results),
                             env={"MCPOOL_SERVERS": ""}, timeout=240)
        return process, results

    longest_first = sorted(SHIPPED, key=lambda name: name not in ("restart-under-load", "web-cache", "session-store"))
    with ThreadPoolExecutor(max_workers=SHIPPED_AT_ONCE) as pool:
        running = {name: pool.submit(run, name) for name in longest_first}
    return {name: future.result() for name, future in running.items()}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_runs_quick_and_exits_as_its_thresholds_say(shipped_runs, name):
    process, results = shipped_runs[name]
    assert process.returncode in (0, 1), process.stderr
    assert "Traceback" not in process.stderr
    bundle = json.loads(results.read_text())
    assert bundle["scenario"] == name and bundle["quick_s"] == 0.3
    failed_thresholds = [r for r in bundle["thresholds"] if not r["ok"]]
    failed_phases = [p for p in bundle["phases"] if p["exit_code"]]
    assert len(bundle["phases"]) == len(load(name, cli.commands).phases)
    assert bool(failed_phases) == (process.returncode == 1)
    assert not failed_thresholds or process.returncode == 1
    assert bundle["thresholds"], "every shipped scenario has thresholds"


def test_scenarios_folder_at_the_top_is_the_shipped_one():
    top = Path(__file__).parent.parent / "scenarios"
    assert sorted(p.name for p in top.glob("*.toml")) == sorted(p.name for p in shipped_folder().glob("*.toml"))


def test_ctrl_c_between_phases_keeps_the_finished_ones(memcached, tmp_path):
    scenario = tmp_path / "two.toml"
    scenario.write_text('[bench]\nstrategies = ["per-thread"]\nthreads = 2\nkeys = 200\nduration = "500ms"\n'
                        'warmup = "100ms"\n[races]\nstrategies = ["fifo"]\nduration = "20s"\ntrials = 1\n')
    results, report = tmp_path / "out.json", tmp_path / "junit.xml"
    process = subprocess.Popen([sys.executable, "-m", "mcpool_cli", "run", str(scenario), "-s", memcached.spec, "-q",
                                "--json", str(results), "--junit", str(report)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, line = time.monotonic() + 60, ""
    while "mcpool check-races" not in line and time.monotonic() < deadline:
        line = process.stdout.readline()
    assert "mcpool check-races" in line
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    bundle = json.loads(results.read_text())
    assert bundle["interrupted"] is True and bundle["documents"][0]["runs"][0]["ops"] > 0
    assert ET.parse(report).getroot().find("testsuite").get("name") == "mcpool bench"


def test_json_to_stdout_is_only_json(memcached):
    process = run_mcpool("run", "ci-smoke", "-s", memcached.spec, "--duration", "300ms", "-q", "--json", "-")
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout)["schema"] == "mcpool.run/1"
    assert "mcpool bench" in process.stderr  # the reports went to stderr


def test_late_checks_run_before_any_phase(tmp_path):
    path = tmp_path / "late.toml"
    path.write_text('[bench]\nduration = "30s"\n[stale]\nfault = "drop"\nbehaviors = { no_such = 1 }\n')
    process = invoke_mcpool("run", str(path))
    assert process.returncode == 2 and f"{path}: [stale] --behavior" in process.stderr
    assert "▶" not in process.stdout


def test_the_readme_scenario_example_is_valid(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks
    for index, block in enumerate(blocks):
        path = tmp_path / f"readme{index}.toml"
        path.write_text(block)
        assert load(str(path), cli.commands).phases
