"""Text from outside is shown as text, saved files are read within bounds, tables stay readable when narrow.

Pure tests: documents written by real runs are kept in tests/text_docs/ (bench, each check, and a run of
ci-smoke) and edited here; `mcpool report` and `mcpool compare` run in this process, with no server.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from mcpool_cli.cli import cli

DOCS = Path(__file__).parent / "text_docs"
NAMES = ("bench", "races", "leaks", "stale", "run")
# markup that rich would interpret (or refuse: a closing tag with no opening one), and terminal commands:
# clear the screen, set the window title, ring the bell, a C1 CSI, a lone surrogate
EVIL = "[/bold][red]x\x1b[2J\x1b]0;pwned\x07\x9b31m\ud800"
STRING_FIELDS = {"strategy", "advice", "summary", "explanation", "version", "fault_detail", "stderr_tail",
                 "message", "key", "got", "expected", "variant", "subject", "shown", "scenario", "run_id",
                 "started_at", "mcpool_version", "stopped_early", "command"}


def mcpool(*args, env=None):
    return CliRunner().invoke(cli, [str(arg) for arg in args], env=env)


def poisoned(value, inside=""):
    """Every outside string of a document with EVIL in it; error class names too."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if inside == "errors":
                key = key + EVIL
            out[key] = poisoned(item, key)
            if key in STRING_FIELDS and isinstance(item, str):
                out[key] = item + EVIL
        if "comparisons" in out and isinstance(out["comparisons"], list):
            out["comparisons"] = [*out["comparisons"], "a comparison " + EVIL]
        return out
    if isinstance(value, list):
        return [poisoned(item, inside) for item in value]
    return value


def write(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))  # ensure_ascii: the lone surrogate is written as \ud800
    return path


def assert_shown_as_text(result):
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    out = result.stdout
    for command in ("\x1b[2J", "\x1b]", "\x07", "\x9b", "\ud800"):
        assert command not in out
    assert "[/bold][red]x" in out  # markup shown, not interpreted
    assert "\\x1b[2J" in out and "\\x07" in out  # the escapes shown visibly


@pytest.mark.parametrize("name", NAMES)
def test_outside_text_in_a_saved_file_is_reported_as_text(tmp_path, name):
    document = poisoned(json.loads((DOCS / f"{name}.json").read_text()))
    path = write(tmp_path, f"{name}.json", document)
    assert_shown_as_text(mcpool("report", path))


@pytest.mark.parametrize("name", NAMES)
def test_outside_text_in_saved_files_is_compared_as_text(tmp_path, name):
    clean = write(tmp_path, f"clean-{name}.json", json.loads((DOCS / f"{name}.json").read_text()))
    evil = write(tmp_path, f"{name}[red]\x1b[2J.json",
                 poisoned(json.loads((DOCS / f"{name}.json").read_text())))
    assert_shown_as_text(mcpool("compare", evil, clean))
    assert_shown_as_text(mcpool("compare", clean, evil))


def test_a_custom_strategy_name_with_markup_is_compared_without_a_traceback(tmp_path):
    document = json.loads((DOCS / "bench.json").read_text())
    for run in document["runs"]:
        run["strategy"] = "mk:[/bold]"
    path = write(tmp_path, "mk.json", document)
    result = mcpool("compare", path, DOCS / "bench.json")
    assert result.exit_code == 0, result.exception
    assert "mk:[/bold]" in result.stdout


def test_printable_shows_control_characters_and_keeps_the_rest():
    from mcpool_cli.units import outside, printable

    assert printable("a\x1b[31mb\x00c\x7f\x9b") == "a\\x1b[31mb\\x00c\\x7f\\x9b"
    assert printable("line\nnext\tcol") == "line\\x0anext\\x09col"
    assert printable("line\nnext\tcol\r", lines=True) == "line\nnext\tcol\\x0d"
    assert printable("\ud800 µs · ✓ [b]") == "\\ud800 µs · ✓ [b]"
    console = Console(file=io.StringIO(), width=80)
    console.print(outside("[/bold] \x1b[2J", "bold"))
    assert console.file.getvalue() == "[/bold] \\x1b[2J\n"


def test_plain_progress_shows_a_strategy_name_as_text():
    from mcpool_cli.engine.progress import PlainProgress

    class Plan:
        strategy, duration_s = "mk:\x1b[2J", 1.0
        name = strategy  # what progress shows: the strategy, or check-failover's configuration

    stream = io.StringIO()
    progress = PlainProgress(stream, interval_s=0.0, get_time=lambda: 0.0)
    progress.phase(Plan(), "measure")
    progress.tick(Plan(), 0.5, 10, 20.0, 0)
    assert "\x1b" not in stream.getvalue() and stream.getvalue().count("[mk:\\x1b[2J]") == 2


# ---------------------------------------------------------------- saved files and scenarios read within bounds


def one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcpool: error: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_file_bigger_than_the_limit_is_refused(tmp_path, monkeypatch, command):
    from mcpool_cli.report import saved

    monkeypatch.setattr(saved, "MAX_FILE_BYTES", 1024 * 1024, raising=False)
    path = tmp_path / "big.json"
    path.write_text(" " * (1024 * 1024) + json.dumps(json.loads((DOCS / "leaks.json").read_text())))
    one_line_error(mcpool(command, path, DOCS / "leaks.json"), "big.json", "too big")


def test_a_device_that_never_ends_is_read_up_to_the_limit(monkeypatch):
    from mcpool_cli.report import saved

    if not hasattr(saved, "MAX_FILE_BYTES"):
        pytest.fail("no limit: /dev/zero would be read until memory runs out")
    monkeypatch.setattr(saved, "MAX_FILE_BYTES", 1024 * 1024)
    one_line_error(mcpool("report", "/dev/zero"), "/dev/zero", "too big", "not a file")


def test_a_number_of_5000_digits_is_exit_2_naming_the_file(tmp_path):
    text = (DOCS / "leaks.json").read_text().replace('"churn": 10', '"churn": ' + "9" * 5000)
    path = tmp_path / "digits.json"
    path.write_text(text)
    one_line_error(mcpool("report", path), "digits.json", "not a result document", "digits")
    one_line_error(mcpool("compare", DOCS / "leaks.json", path), "digits.json")


@pytest.mark.parametrize("depth", [500, 5000])
def test_a_result_nested_deep_is_exit_2_naming_the_file(tmp_path, depth):
    document = json.loads((DOCS / "bench.json").read_text())
    text = json.dumps(document).replace('"keys": 200', '"keys": ' + "[" * depth + "]" * depth)
    path = tmp_path / "deep.json"
    path.write_text(text)
    one_line_error(mcpool("report", path), "deep.json")
    one_line_error(mcpool("compare", DOCS / "bench.json", path), "deep.json")


@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "{ b = " * 5000 + "1" + " }" * 5000, "9" * 5000])
def test_a_scenario_nested_deep_or_with_a_huge_number_is_exit_2(tmp_path, value):
    path = tmp_path / "deep.toml"
    path.write_text(f"description = {value}\n")
    one_line_error(mcpool("run", path), "deep.toml", "not a scenario")


# ---------------------------------------------------------------- tables readable at COLUMNS=30

CUT_NUMBER = re.compile(r"\d…")


@pytest.mark.parametrize(("name", "width"), [*((name, 30) for name in NAMES), ("races", 45), ("stale", 45)])
def test_report_and_compare_cut_no_number_when_narrow(name, width):
    """A narrow terminal (COLUMNS=30): numbers whole, text wrapped, less important columns dropped (and said)."""
    path = DOCS / f"{name}.json"
    for args in (["report", path], ["compare", path, path]):
        result = mcpool(*args, env={"COLUMNS": str(width)})
        assert result.exit_code == 0, result.exception
        assert not CUT_NUMBER.search(result.stdout), result.stdout
        assert "…" not in result.stdout, result.stdout
        assert max(len(line) for line in result.stdout.splitlines()) <= width


def test_a_narrow_latency_table_keeps_p50_and_p99_and_says_what_it_dropped():
    from mcpool_cli.bench.session import BenchSession

    document = json.loads((DOCS / "bench.json").read_text())
    console = Console(file=io.StringIO(), width=30)
    from mcpool_cli.bench.render import render

    render(BenchSession.from_json(document), console)
    out = console.file.getvalue()
    assert not CUT_NUMBER.search(out) and "…" not in out
    assert "p50" in out and "p99" in out and "too narrow for min" in out
    wide = Console(file=io.StringIO(), width=120)
    render(BenchSession.from_json(document), wide)
    assert "too narrow" not in wide.file.getvalue() and "p99.9 ms" in wide.file.getvalue()


def test_fitted_drops_columns_in_order_until_the_numbers_fit():
    from rich.table import Table

    from mcpool_cli.units import Fitted

    table = Table(box=None, pad_edge=False)
    table.add_column("name")
    for header in ("alpha", "beta", "gamma"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_row("a long strategy name", "123,456,789", "2,345,678", "3,456,789")
    narrow = Console(file=io.StringIO(), width=30)
    narrow.print(Fitted(table, ("beta", "gamma")))
    out = narrow.file.getvalue()
    assert "123,456,789" in out and "2,345,678" not in out and "3,456,789" in out
    assert "(too narrow for beta)" in out and "…" not in out
    wide = Console(file=io.StringIO(), width=80)
    wide.print(Fitted(table, ("beta", "gamma")))
    assert "2,345,678" in wide.file.getvalue() and "too narrow" not in wide.file.getvalue()


def test_live_progress_shows_a_strategy_name_as_text():
    from mcpool_cli.engine.progress import LiveProgress

    class Plan:
        strategy, duration_s = "mk:[/bold]\x1b[2J", 1.0
        name = strategy

    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    progress = LiveProgress(console)
    progress.phase(Plan(), "measure")
    progress.tick(Plan(), 0.5, 10, 20.0, 0)
    progress._progress.refresh()
    progress.close()
    out = console.file.getvalue()
    assert "mk:[/bold]\\x1b[2J" in out and "\x1b[2J" not in out


@pytest.mark.parametrize("content", [None, "not json", '{"schema": "x"}', '{"schema": "mcpool.check/1", "check": 1}'])
def test_a_file_name_in_an_error_is_shown_as_text(tmp_path, content):
    path = tmp_path / "a\x1b[2Jb.json"
    if content is not None:
        path.write_text(content)
    result = mcpool("report", path)
    one_line_error(result, "a\\x1b[2Jb.json")
    assert "\x1b" not in result.stderr


def test_kinds_that_differ_name_the_files_as_text(tmp_path):
    path = tmp_path / "a\x1b[2Jb.json"
    path.write_text((DOCS / "leaks.json").read_text())
    result = mcpool("compare", path, DOCS / "races.json")
    one_line_error(result, "a\\x1b[2Jb.json")
    assert "\x1b" not in result.stderr
