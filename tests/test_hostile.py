"""Hostile input and environments (issue 10): limits that match reality, and Ctrl-C at any moment."""

import subprocess
import sys

import click

from mcpool_cli.cli import cli
from mcpool_cli.scenarios import loader
from tests.conftest import TESTS, invoke_mcpool


def one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mcpool: error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_the_memory_cap_counts_every_worker_process():
    result = invoke_mcpool("bench", "-s", "127.0.0.1:1", "--keys", "2147", "--value-size", "1000000",
                           "--processes", "64")
    one_line_error(result, "137 GB", "64 worker processes", "--processes")


def test_a_folder_is_not_a_scenario(tmp_path):
    one_line_error(invoke_mcpool("run", str(tmp_path)), "is a folder")


def test_an_endless_duration_is_refused_with_or_without_a_quick_run(tmp_path):
    for value in ("inf", "nan", "-inf"):
        path = tmp_path / f"{value}.toml"
        path.write_text(f"[bench]\nduration = {value}\n")
        for quick in ([], ["--duration", "1s"]):
            one_line_error(invoke_mcpool("run", str(path), "-s", "127.0.0.1:1", *quick), "duration", "finite")
    path = tmp_path / "before.toml"
    path.write_text("[stale]\nbefore = inf\n")
    one_line_error(invoke_mcpool("run", str(path), "--duration", "1s"), "before", "finite")


def test_long_lists_in_a_scenario_are_not_fed_through_the_option_parser(tmp_path, monkeypatch):
    """click's parser takes time quadratic in the number of arguments (a 300,000-item list took minutes): the
    values of repeatable options are judged by their types, the parser sees only the rest."""
    seen = []
    make_context = click.Command.make_context

    def recording(self, name, args, **kwargs):
        seen.append(len(args))
        return make_context(self, name, args, **kwargs)

    monkeypatch.setattr(click.Command, "make_context", recording)
    path = tmp_path / "long.toml"
    items, limits = ", ".join(['"fifo"'] * 3000), ", ".join(['"p99<2ms"'] * 3000)
    path.write_text(f"[bench]\nstrategies = [{items}]\nthresholds = [{limits}]\nthreads = 2\n")
    scenario = loader.load(str(path), cli.commands)
    (phase,) = scenario.phases
    assert phase.params["strategies"] == ("fifo",) * 3000 and len(phase.params["thresholds"]) == 3000
    assert phase.params["threads"] == 2
    assert max(seen) < 100
    bad = tmp_path / "bad.toml"
    bad.write_text('[bench]\nthresholds = ["p99<2ms", "p99<<2"]\n')
    one_line_error(invoke_mcpool("run", str(bad), "-s", "127.0.0.1:1"), "thresholds")


def low_file_limit(limit):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


def test_a_low_open_files_limit_is_named_not_a_missing_memcached(memcached):
    quick = ("--duration", "300ms", "--warmup", "100ms", "--keys", "200", "--threads", "2", "--quiet")
    embedded = subprocess.run([sys.executable, "-m", "mcpool_cli", "bench", *quick], capture_output=True, text=True,
                              timeout=60, cwd=TESTS, preexec_fn=low_file_limit(256))
    one_line_error(embedded, "open-files limit", "ulimit -n", "memcached said")
    assert "install" not in embedded.stderr
    workers = subprocess.run([sys.executable, "-m", "mcpool_cli", "bench", "-s", memcached.spec, *quick,
                              "--processes", "40"], capture_output=True, text=True, timeout=60, cwd=TESTS,
                             preexec_fn=low_file_limit(64))
    one_line_error(workers, "open-files limit")


def test_a_worker_starved_of_cpu_is_not_called_stuck_in_calls(bench_json):
    code, doc, _ = bench_json("--strategy", "starving_strategies:spin_pool", "--duration", "20s", "--hang-timeout",
                              "1s")
    assert code == 1
    (run,) = doc["runs"]
    assert run["outcome"] == "hung"
    explanation = run["outcome_detail"]["explanation"]
    assert "starved" in explanation and "too little progress" in explanation, explanation
    assert "stuck in calls that never returned" not in explanation and "--threads" in explanation


def test_a_ctrl_c_while_the_report_prints_rewrites_the_json_as_interrupted(memcached, tmp_path, monkeypatch):
    """The late moment, made exact: the signal is noted while the report is rendered, after the JSON went out."""
    import json

    from mcpool_cli.bench import render
    from mcpool_cli.engine import interrupts

    monkeypatch.setattr(interrupts._state, "received", False)
    original = render.render

    def render_then_ctrl_c(session, console):
        original(session, console)
        interrupts.note()

    monkeypatch.setattr(render, "render", render_then_ctrl_c)
    out = tmp_path / "late.json"
    result = invoke_mcpool("bench", "-s", memcached.spec, "--strategy", "fifo", "--threads", "2", "--duration",
                           "200ms", "--warmup", "50ms", "--keys", "100", "--quiet", "--json", str(out))
    assert result.returncode == 130, result.stderr
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True
    (run,) = doc["runs"]
    assert run["outcome"] == "ok" and run["interrupted"] is False  # it had finished: it stays as it ended
