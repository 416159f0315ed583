"""`mcpool report` and `mcpool compare` on documents written by real runs against a real memcached."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from mcpool_cli.cli import cli
from mcpool_cli.errors import UsageProblem
from mcpool_cli.report.compare import short_labels
from mcpool_cli.report.saved import kind_of
from tests.conftest import run_mcpool

BENCH = ["--duration", "300ms", "--warmup", "100ms", "--keys", "200", "--quiet"]


def mcpool(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def saved(tmp_path_factory, memcached):
    """Real documents, written once: two bench runs, and one of each check; (path, what the command printed).

    The leak check runs first and alone, as it counts the server's connections; the others then run side by
    side as real processes (nothing asserted here depends on their speed)."""
    folder = tmp_path_factory.mktemp("saved")
    server = ["-s", memcached.spec]
    commands = {
        "a": ["bench", *server, *BENCH, "--threads", "2", "--strategy", "fifo", "--strategy", "per-thread",
              "--threshold", "errors==0", "--threshold", "ops_per_s>1000000000"],
        "b": ["bench", *server, *BENCH, "--threads", "3", "--strategy", "fifo"],
        "races": ["check-races", *server, "--strategy", "per-thread", "--trials", "1", "--duration", "200ms",
                  "--quiet"],
        "stale": ["check-stale", *server, "--fault", "drop", "--strategy", "per-thread", "--before", "100ms",
                  "--recover-within", "500ms", "--quiet"],
    }
    written = {}
    path = folder / "leaks.json"
    result = mcpool("check-leaks", *server, "--strategy", "fifo", "--churn", "10", "--concurrency", "2", "--quiet",
                    "--json", path)
    assert result.exit_code in (0, 1), result.stderr
    written["leaks"] = (path, result.stdout)
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        running = {name: pool.submit(run_mcpool, *args, "--json", str(folder / f"{name}.json"))
                   for name, args in commands.items()}
    for name, future in running.items():
        process = future.result()
        assert process.returncode in (0, 1), process.stderr
        written[name] = (folder / f"{name}.json", process.stdout)
    return written


def edited(path, target, change):
    """A copy of a real document with one result changed, so that a comparison has a known change to tell."""
    document = json.loads(path.read_text())
    change(document["results"][0])
    target.write_text(json.dumps(document))
    return target


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcpool: error: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("name", ["a", "races", "stale", "leaks"])
def test_report_prints_what_the_command_printed(saved, name):
    path, printed = saved[name]
    result = mcpool("report", path)
    assert result.exit_code == 0, result.stderr
    source, rest = result.stdout.split("\n", 1)
    assert source.startswith(f"{path}")
    assert printed.strip() and printed in rest


def test_report_closes_with_the_thresholds_and_exits_0_when_one_failed(saved):
    result = mcpool("report", saved["a"][0])
    assert result.exit_code == 0
    marks = [line.split()[:3] for line in result.stdout.splitlines() if line.startswith(("✓", "✗"))]
    assert ["✓", "errors==0", "fifo"] in marks and ["✗", "ops_per_s>1000000000", "per-thread"] in marks
    assert result.stdout.rstrip().splitlines()[-1].startswith("✗  ops_per_s>1000000000  per-thread")


def test_report_adds_a_table_to_check_leaks(saved):
    result = mcpool("report", saved["leaks"][0])
    row = next(line for line in result.stdout.splitlines() if line.startswith("fifo ") and "clean" in line)
    assert row.split()[:3] == ["fifo", "on", "clean"]


def test_compare_bench_relative_and_sentences(saved, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    a, b = saved["a"][0], saved["b"][0]
    result = mcpool("compare", a, b)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("a.json ", "b.json ")) and " ran " not in line]
    assert [row[:2] for row in rows] == [["a.json", "fifo"], ["b.json", "fifo"], ["a.json", "per-thread"]]
    assert rows[0][3] == "1.00" and rows[2][3] == "1.00"  # each against the first file's run of its strategy
    b_over_a = json.loads(b.read_text())["runs"][0]["ops_per_s"] / json.loads(a.read_text())["runs"][0]["ops_per_s"]
    assert rows[1][3] == f"{b_over_a:.2f}"
    assert re.search(r"b\.json fifo ran (\d+\.\d\d× (faster|slower) than|as fast as) a\.json fifo; "
                     r"p99 [\d.,]+ (µs|ms) → [\d.,]+ (µs|ms) \([+-]\d+\.\d%\)", out), out
    assert "b.json ran with other options than a.json: threads 2 → 3" in out
    assert "p99.9" in out and "speed" in out


def test_compare_check_stale_says_what_changed(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")

    before = edited(saved["stale"][0], tmp_path / "before.json",
                    lambda r: r.update(verdict="false-misses", false_misses=8, outage_s=2.5, recovery_s=2.41))
    after = edited(saved["stale"][0], tmp_path / "after.json",
                   lambda r: r.update(verdict="recovered", false_misses=0, outage_s=1.06, recovery_s=1.06))
    result = mcpool("compare", before, after)
    assert result.exit_code == 0, result.stderr
    assert "changes from before.json to after.json:" in result.stdout
    assert ("  per-thread: recovery 2.41 s → 1.06 s, outage 2.50 s → 1.06 s, false misses 8 → 0, "
            "verdict false-misses → recovered") in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("before.json", "after.json"))]
    assert rows == [["before.json", "per-thread", "false-misses", "8", rows[0][4], "2.50", "s", "2.41", "s"],
                    ["after.json", "per-thread", "recovered", "0", rows[0][4], "1.06", "s", "1.06", "s"]]


def test_compare_checks_of_leaks_and_races(saved, tmp_path):
    leaky = edited(saved["leaks"][0], tmp_path / "leaky.json",
                   lambda r: r.update(verdict="leak", leaked_connections=3))
    result = mcpool("compare", saved["leaks"][0], leaky)
    assert result.exit_code == 0, result.stderr
    assert "  fifo: leaked 0 → 3, verdict clean → leak" in result.stdout
    result = mcpool("compare", saved["races"][0], saved["races"][0])
    assert result.exit_code == 0, result.stderr
    assert "  per-thread: no change (safe)" in result.stdout


def test_a_run_document_is_reported_and_compared_kind_by_kind(saved, tmp_path, memcached, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    scenario = tmp_path / "tiny.toml"
    scenario.write_text('description = "tiny"\n[bench]\nstrategies = ["per-thread"]\nthreads = 2\n'
                        'duration = "300ms"\nwarmup = "100ms"\nkeys = 200\nthresholds = ["errors==0"]\n')
    path = tmp_path / "run.json"
    ran = mcpool("run", scenario, "-s", memcached.spec, "--quiet", "--json", path)
    assert ran.exit_code == 0, ran.stderr
    result = mcpool("report", path)
    assert result.exit_code == 0, result.stderr
    assert ran.stdout.splitlines()[0] in result.stdout  # ▶ tiny · mcpool bench
    assert result.stdout.rstrip().endswith("1/1 thresholds held")
    result = mcpool("compare", path, saved["b"][0])  # a run's bench document against a plain one
    assert result.exit_code == 0, result.stderr
    assert "b.json fifo" in result.stdout and "run.json per-thread" in result.stdout
    one_line_error(mcpool("compare", path, saved["leaks"][0]), "leaks.json holds check-leaks results",
                   "run.json holds bench results")


def test_mixing_kinds_is_exit_2_in_one_line(saved):
    one_line_error(mcpool("compare", saved["a"][0], saved["stale"][0]),
                   'stale.json holds check-stale results (mcpool.check/1 "stale")', "a.json holds bench results")
    one_line_error(mcpool("compare", saved["races"][0], saved["leaks"][0]), "compare files of one kind")


BAD = {
    "missing.json": (None, "missing.json: no such file"),
    "text.json": ("not json at all", "text.json: not JSON (Expecting value at line 1, column 1)"),
    "list.json": ("[1, 2]", "list.json: JSON, but not an object"),
    "noschema.json": ('{"runs": []}', 'noschema.json: no "schema" field'),
    "v2.json": ('{"schema": "mcpool.result/2", "runs": []}',
                'v2.json: schema "mcpool.result/2", from another version of mcpool'),
    "other.json": ('{"schema": "k6.summary/1"}', 'other.json: schema "k6.summary/1"; expected'),
    "kind.json": ('{"schema": "mcpool.check/1", "check": "speed"}',
                  'kind.json: mcpool.check/1 with "check" "speed"; expected "races", "leaks", "stale" or "failover"'),
    "nested.json": ('{"schema": "mcpool.run/1", "documents": [{"schema": "mcpool.run/1"}]}',
                    'nested.json: documents[0]: schema "mcpool.run/1"; expected'),
    "damaged.json": ('{"schema": "mcpool.result/1", "options": {}}',
                     'damaged.json: a damaged mcpool.result/1 document (no "server" field)'),
}


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_file_is_exit_2_in_one_line_naming_it(saved, tmp_path, command, name):
    text, fragment = BAD[name]
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    files = [path] if command == "report" else [saved["a"][0], path]
    one_line_error(mcpool(command, *files), str(tmp_path / fragment), "expected")


def test_damaged_values_are_exit_2_before_any_output(saved, tmp_path):
    document = json.loads(saved["b"][0].read_text())
    document["runs"][0]["by_op"]["get"]["histogram"] = "not base64"
    (tmp_path / "h.json").write_text(json.dumps(document))
    one_line_error(mcpool("report", tmp_path / "h.json"), "h.json: a damaged mcpool.result/1 document",
                   "a histogram does not decode")
    leaks = edited(saved["leaks"][0], tmp_path / "l.json", lambda r: r.update(peak_connections="many"))
    one_line_error(mcpool("report", saved["a"][0], leaks), "l.json: a damaged mcpool.check/1 document")


def test_labels_and_kinds():
    assert short_labels(["x/a.json", "y/b.json"]) == ["a.json", "b.json"]
    assert short_labels(["x/a.json", "y/a.json"]) == ["x/a.json", "y/a.json"]
    assert short_labels(["a.json", "a.json"]) == ["a.json", "a.json (2)"]
    assert kind_of({"schema": "mcpool.check/1", "check": "stale"}, "f").command == "check-stale"
    assert kind_of({"schema": "mcpool.run/1"}, "f") is None  # a run: a document of documents
    with pytest.raises(UsageProblem, match="f: documents"):
        kind_of({"schema": "mcpool.run/1"}, "f: documents", ("mcpool.result/1", "mcpool.check/1"))
