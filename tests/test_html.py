"""HTML reports, opened in a real headless Chromium: every page loads offline with no console error, every
chart draws, and the cards say what the run said. Screenshots go to tmp_path, or to $MCPOOL_SCREENSHOTS when
set (to look at them)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.browser import Browser, chromium_path
from tests.conftest import invoke_mcpool
from tests.test_interrupt import start_measuring

QUICK_BENCH = ["--warmup", "100ms", "--keys", "500", "--threads", "3", "--quiet"]
MAX_PAGE_BYTES = 6 * 1024 * 1024


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test the HTML reports in a browser: install Debian's chromium package")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    opened = Browser(executable)
    yield opened
    opened.close()


def figures_of(page: Path) -> list[dict]:
    """The charts' figures as the page embeds them."""
    match = re.search(r"<script type=application/json id=mcpool-figures>(.*?)</script>", page.read_text(), re.S)
    assert match, "no figures in the page"
    return json.loads(match.group(1))


def opened(browser: Browser, page: Path, tmp_path: Path, charts_at_least: int = 1):
    """The page loaded in the browser: no console problem, no request off the machine, every chart drawn.
    A screenshot of the whole page is kept."""
    shot = tmp_path / (page.stem + ".png")
    seen = browser.open(page, screenshot=shot)
    keep = os.environ.get("MCPOOL_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
        shutil.copy(page, Path(keep) / page.name)
    assert seen.problems == [], seen.problems
    assert json.loads(seen.body["errors"]) == []
    assert seen.requests == [], f"the page fetched {seen.requests}"
    assert len(seen.charts) >= charts_at_least, seen.charts
    for chart in seen.charts:
        assert chart["svg"] >= 1 and chart["shapes"] >= 1 and chart["drawn_attr"] >= 1, chart
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
    assert page.stat().st_size < MAX_PAGE_BYTES
    return seen


def run(*args: str) -> tuple[int, str]:
    result = invoke_mcpool(*args)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stderr


def test_bench_page_tells_which_run_crashed_and_when(memcached, browser, tmp_path):
    page, saved = tmp_path / "bench.html", tmp_path / "bench.json"
    code, _ = run("bench", "-s", memcached.spec, *QUICK_BENCH, "--duration", "1500ms", "--strategy", "per-thread",
                  "--strategy", "fault_strategies:crash_pool", "--html", str(page), "--json", str(saved))
    assert code == 1
    seen = opened(browser, page, tmp_path, charts_at_least=3)
    document = json.loads(saved.read_text())
    outcomes = {run["strategy"]: run["outcome"] for run in document["runs"]}
    assert outcomes["fault_strategies:crash_pool"] == "crashed"
    assert "per-thread\nclean" in seen.text and "fault_strategies:crash_pool\ncrashed" in seen.text
    assert "SIGABRT" in seen.text  # the explanation the terminal prints, on the card
    assert "The terminal report" in seen.text and "could not be drawn" not in seen.text
    printed = browser.open(page, pdf=tmp_path / "bench.pdf")
    assert printed.problems == [] and (tmp_path / "bench.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "bench.pdf").stat().st_size > 50_000  # the charts printed, not an empty page
    titles = [chart["title"] for chart in seen.charts]
    assert titles[:2] == ["Throughput, failures and latency over time", "Latency by percentile"]
    notes = [note["text"] for figure in figures_of(page) for note in figure["layout"].get("annotations", [])]
    assert any(note.startswith("fault_strategies:crash_pool crashed (SIGABRT) +") for note in notes), notes
    # mcpool report --html draws the saved file into the same charts
    again = tmp_path / "again.html"
    assert run("report", str(saved), "--html", str(again))[0] == 0
    assert figures_of(again) == figures_of(page)


def test_paced_sweep_page_draws_latency_against_load_with_its_budget(memcached, browser, tmp_path):
    page = tmp_path / "sweep.html"
    code, err = run("bench", "-s", memcached.spec, *QUICK_BENCH, "--duration", "1s", "--strategy", "per-thread",
                    "--rate", "300,900", "--budget", "p99<50ms", "--html", str(page))
    assert code == 0, err
    seen = opened(browser, page, tmp_path, charts_at_least=4)
    assert "Sweep: p99 against offered load" in [chart["title"] for chart in seen.charts]
    figures = {figure["name"]: figure for figure in figures_of(page)}
    names = [trace["name"] for trace in figures["latency-percentiles"]["data"]]
    assert names == ["per-thread @300/s", "per-thread @300/s uncorrected", "per-thread @900/s",
                     "per-thread @900/s uncorrected"]
    assert [shape["y0"] for shape in figures["sweep"]["layout"]["shapes"]] == [50.0]  # the budget, in ms
    targets = [trace for trace in figures["timeline"]["data"] if trace["name"].endswith("target")]
    assert sorted(trace["y"][0] for trace in targets) == [300, 900]


def test_check_pages_show_each_verdict_with_its_evidence(memcached, browser, tmp_path):
    pages = {name: tmp_path / f"{name}.html" for name in ("races", "leaks", "stale")}
    run("check-races", "-s", memcached.spec, "--strategy", "per-thread", "--strategy", "fault_strategies:racy_pool",
        "--trials", "1", "--duration", "1s", "--threads", "4", "--quiet", "--html", str(pages["races"]))
    run("check-leaks", "-s", memcached.spec, "--strategy", "fifo", "--strategy", "thread-mapped", "--no-relinquish",
        "--churn", "30", "--concurrency", "5", "--quiet", "--html", str(pages["leaks"]))
    run("check-stale", "--strategy", "per-thread", "--fault", "restart", "--before", "500ms", "--outage", "500ms",
        "--threads", "2", "--rate", "100", "--keys", "100", "--quiet", "--html", str(pages["stale"]))
    races = opened(browser, pages["races"], tmp_path, charts_at_least=2)
    assert "per-thread\nsafe" in races.text and "fault_strategies:racy_pool\nracy" in races.text
    assert "Evidence: what a thread read back (examples)" in races.text
    leaks = opened(browser, pages["leaks"], tmp_path, charts_at_least=1)
    assert "fifo\nclean" in leaks.text and "thread-mapped (no relinquish)\nleak" in leaks.text
    stale = opened(browser, pages["stale"], tmp_path, charts_at_least=1)
    assert re.search(r"per-thread\n(recovered|false-misses)", stale.text), stale.text[:500]
    (figure,) = figures_of(pages["stale"])
    notes = [note["text"] for note in figure["layout"]["annotations"]]
    assert any(note.startswith("▼ fault +") for note in notes) and any(note.startswith("▲ server back +") for note in notes)


def test_failover_page_draws_each_configuration_around_the_fault(browser, tmp_path):
    page, saved = tmp_path / "failover.html", tmp_path / "failover.json"
    code, err = run("check-failover", "--config", "modula", "--config", "ketama-eject-2s", "--outage", "1s",
                    "--before", "500ms", "--after", "1500ms", "--quiet", "--html", str(page), "--json", str(saved))
    assert code in (0, 1), err
    seen = opened(browser, page, tmp_path, charts_at_least=3)
    rows = json.loads(saved.read_text())["results"]
    assert [row["config"] for row in rows] == ["modula", "ketama-eject-2s"]
    for row in rows:  # each card says what the file says, with its figures and advice
        assert f"{row['config']}\n{row['verdict']}" in seen.text
        assert f"{row['error_count']:,} errors · misses {row['misses_failed_keys']:,} failed" in seen.text
        assert row["advice"] in seen.text
    assert [chart["title"] for chart in seen.charts] == ["Keys moved to another node, per configuration",
                                                         "modula: keys per node and ops around the fault",
                                                         "ketama-eject-2s: keys per node and ops around the fault"]
    figures = {figure["name"]: figure for figure in figures_of(page)}
    assert [shape["y0"] for shape in figures["failover-moved"]["layout"]["shapes"]] == [1 / 3]
    for row in rows:
        figure = figures[f"failover-{row['config']}"]
        notes = [note["text"] for note in figure["layout"]["annotations"]]
        assert notes == [f"node 1 killed +{row['fault_at_s']:.2f} s ▼", f"▲ node 1 back +{row['back_at_s']:.2f} s"]
        failed = next(trace for trace in figure["data"] if trace["name"] == "node 1 (failed)")
        # its proxy refused connections, so no key reached it (open ones close within the proxy's 0.2 s accept timeout)
        out = [y for x, y in zip(failed["x"], failed["y"]) if row["fault_at_s"] + 0.3 < x < row["back_at_s"] - 0.1]
        assert out and set(out) == {0}, failed
    assert "Errors the callers saw, by class" in seen.text and "modula\tServerDown" in seen.text


def test_interrupted_run_still_gets_its_page(memcached, browser, tmp_path):
    page = tmp_path / "interrupted.html"
    process = start_measuring("bench", "-s", memcached.spec, "--strategy", "per-thread", "--threads", "2",
                              "--duration", "30s", "--warmup", "100ms", "--keys", "500", "--html", str(page))
    time.sleep(1.2)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 130
    seen = opened(browser, page, tmp_path)
    assert "The run was interrupted (Ctrl-C)" in seen.text and "per-thread\ninterrupted" in seen.text


def test_run_that_measured_nothing_says_so(memcached, browser, tmp_path):
    page = tmp_path / "nothing.html"
    code, _ = run("bench", "-s", memcached.spec, *QUICK_BENCH, "--duration", "500ms", "--strategy",
                  "fault_strategies:refusing_pool", "--html", str(page))
    assert code == 1
    seen = browser.open(page, screenshot=tmp_path / "nothing.png")
    assert seen.problems == [] and json.loads(seen.body["errors"]) == []
    assert "fault_strategies:refusing_pool\nnot clean" in seen.text
    assert "no op succeeded (" in seen.text and "all failed), so there is no latency to draw" in seen.text


def test_older_file_renders_what_it_has_and_names_what_it_lacks(memcached, browser, tmp_path):
    saved = tmp_path / "new.json"
    run("bench", "-s", memcached.spec, *QUICK_BENCH, "--duration", "800ms", "--strategy", "fifo",
        "--json", str(saved))
    document = json.loads(saved.read_text())
    for row in document["runs"]:  # as mcpool wrote it before intervals and the open model
        for field in ("intervals", "interval_s", "measure_started_unix", "errors_by_site"):
            row.pop(field, None)
    older = tmp_path / "older.json"
    older.write_text(json.dumps(document))
    page = tmp_path / "older.html"
    code, err = run("report", str(older), "--html", str(page))
    assert code == 0, err
    seen = opened(browser, page, tmp_path)
    assert "fifo: no intervals in this file" in seen.text
    assert "Throughput, failures and latency over time" not in [chart["title"] for chart in seen.charts]


def test_compare_page_draws_every_files_runs(memcached, browser, tmp_path):
    files = []
    for name in ("before", "after"):
        files.append(tmp_path / f"{name}.json")
        run("bench", "-s", memcached.spec, *QUICK_BENCH, "--duration", "600ms", "--strategy", "per-thread",
            "--json", str(files[-1]))
    page = tmp_path / "compare.html"
    assert run("compare", *map(str, files), "--html", str(page))[0] == 0
    seen = opened(browser, page, tmp_path, charts_at_least=2)
    assert "before.json · per-thread\nclean" in seen.text and "after.json · per-thread\nclean" in seen.text
    names = [trace["name"] for trace in figures_of(page)[1]["data"]]
    assert names == ["before.json · per-thread", "after.json · per-thread"]


def test_scenario_page_has_every_phase(memcached, browser, tmp_path):
    scenario = tmp_path / "two.toml"
    scenario.write_text('[bench]\nstrategies = ["fifo"]\nthreads = 2\nduration = "600ms"\nwarmup = "100ms"\n'
                        'thresholds = ["errors==0"]\n[leaks]\nstrategies = ["fifo"]\nchurn = 20\nconcurrency = 4\n')
    page = tmp_path / "scenario.html"
    code, err = run("run", str(scenario), "-s", memcached.spec, "--quiet", "--html", str(page))
    assert code == 0, err
    seen = opened(browser, page, tmp_path, charts_at_least=3)
    assert "two · bench" in seen.text and "two · check-leaks" in seen.text and "errors==0" in seen.text


def test_four_strategy_page_stays_small(memcached, tmp_path):
    saved = tmp_path / "one.json"
    run("bench", "-s", memcached.spec, *QUICK_BENCH, "--duration", "600ms", "--strategy", "fifo",
        "--json", str(saved))
    document = json.loads(saved.read_text())
    run_row = document["runs"][0]
    run_row["intervals"] = [copy.deepcopy(run_row["intervals"][0]) for _ in range(60)]  # a minute's intervals
    document["runs"] = [{**copy.deepcopy(run_row), "strategy": name} for name in ("a", "b", "c", "d")]
    four = tmp_path / "four.json"
    four.write_text(json.dumps(document))
    page = tmp_path / "four.html"
    assert run("report", str(four), "--html", str(page))[0] == 0
    assert page.stat().st_size < MAX_PAGE_BYTES


def test_bad_html_targets_and_damaged_files_are_one_line(memcached, tmp_path):
    for args, words in ((("bench", "--html", "-"), "--html needs a file name"),
                        (("bench", "--json", "x.json", "--html", "x.json"), "are the same file"),
                        (("bench", "--html", str(tmp_path / "no" / "x.html")), "does not exist or is not writable")):
        code, err = run(*args)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"schema": "mcpool.result/1", "runs": [')
    page = tmp_path / "damaged.html"
    code, err = run("report", str(damaged), "--html", str(page))
    assert code == 2 and "not JSON" in err and len(err.strip().splitlines()) == 1 and not page.exists()
