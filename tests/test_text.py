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

    stream = io.StringIO()
    progress = PlainProgress(stream, interval_s=0.0, get_time=lambda: 0.0)
    progress.phase(Plan(), "measure")
    progress.tick(Plan(), 0.5, 10, 20.0, 0)
    assert "\x1b" not in stream.getvalue() and stream.getvalue().count("[mk:\\x1b[2J]") == 2
