"""HTML reports: one self-contained page per command, report or comparison, with plotly charts.

The page fetches nothing: plotly.js (from the plotly package, MIT) and the styles are inlined once, the figures
follow as JSON. Every page is built from saved documents (`saved.SavedDocument`), the same way whether the
command just ran (`--html` on bench and the checks) or the file was written long ago (`mcpool report --html`),
so the two pages of one run are the same. Each kind's `html.py` gives its verdict cards and its charts;
this module lays them out with what every kind shares: the options, the thresholds, what the file lacks and
the terminal report itself.

A page tells a browser test what it drew: once every chart has been drawn, `<body>` gets `data-ready`,
`data-errors` (script errors and console.error calls, as JSON) and `data-height`, and each chart
`data-drawn` (how many of its SVG shapes have a geometry).
"""

from __future__ import annotations

import functools
import html
import importlib.util
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from mcpool_cli.units import printable

PLOTLY_JS = ("package_data", "plotly.min.js")


@dataclass(frozen=True)
class Chart:
    """One plotly figure: its traces and layout as plotly.js takes them."""

    title: str
    data: list[dict[str, Any]]
    layout: dict[str, Any]
    caption: str = ""  # under the chart: how to read it
    height_px: int = 420
    name: str = "chart"  # the file name its download buttons offer


@dataclass(frozen=True)
class Verdict:
    """A card above the charts: what was run, how it ended, in the command's own words."""

    label: str
    verdict: str
    good: bool | None  # None: neither a pass nor a failure (inconclusive, interrupted)
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass
class Section:
    """One document's part of a page (or one kind's part of a comparison)."""

    title: str
    subtitle: str = ""
    verdicts: list[Verdict] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # options and where it ran
    missing: list[str] = field(default_factory=list)  # what this document cannot show, and why
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    terminal_html: str = ""  # the terminal report, as rich exported it


@dataclass(frozen=True)
class Source:
    """One document a chart draws from: its label in legends ("" when the page has one document) and data."""

    label: str
    data: dict[str, Any]

    def name(self, what: str) -> str:
        """A legend entry: `what`, after the source's label when there is one."""
        return f"{self.label} · {what}" if self.label else what


def rows_of(data: dict[str, Any], key: str = "results") -> list[dict[str, Any]]:
    """A document's per-strategy entries (its `results`, or bench's `runs`), skipping what is not an object."""
    rows = data.get(key)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def passed(kind: Any, verdict: str) -> bool | None:
    """A card's state: True for a verdict the kind calls good, None for one that is neither, else False."""
    if verdict in kind.good_verdicts:
        return True
    return None if verdict in ("interrupted", "inconclusive") else False


# ---------------------------------------------------------------- pages from saved documents


def html_of(data: dict[str, Any], where: str) -> bytes:
    """The page of a document a command just made (a bench or check document, or a run's), read back as
    `mcpool report --html` reads a file, so both pages are the same."""
    from mcpool_cli.report.saved import from_data

    saved = from_data(data, where, label="")
    title = f"mcpool {saved.scenario or saved.documents[0].kind.command if saved.documents else 'run'}"
    return document_page([saved], title).encode()


def document_page(saved_files: list[Any], title: str) -> str:
    """A page of every document in the files (`saved.SavedFile`), each in its own section."""
    sections = []
    for saved in saved_files:
        for index, doc in enumerate(saved.documents):
            heading = doc.kind.command
            if saved.scenario is not None:
                command = saved.phases[index][0] if index < len(saved.phases) else heading
                heading = f"{saved.scenario} · {command}"
            sections.append(document_section(doc, heading))
        if saved.scenario is not None:
            sections[-1].tables.append(run_end_table(saved))
    return page(title, sections)


def document_section(doc: Any, heading: str) -> Section:
    """One document: the kind's cards and charts, then the options, thresholds and terminal report."""
    module = doc.kind.module("html")
    data = doc.data
    section = Section(f"mcpool {heading}", subtitle_of(data, doc.label), facts=facts_of(data))
    section.verdicts = drawn(lambda: module.verdicts(data), section, "verdicts") or []
    charts, missing = drawn(lambda: module.charts([Source("", data)]), section, "charts") or ([], [])
    section.charts, section.missing = charts, section.missing + missing
    section.tables = (drawn(lambda: module.tables(data), section, "tables") or []) + thresholds_tables(data)
    if data.get("interrupted"):
        section.missing.insert(0, "The run was interrupted (Ctrl-C): what is shown is what was measured until then.")
    section.terminal_html = terminal_html(lambda console: doc.kind.module("render").render(doc.content, console,
                                                                                          saved=True))
    return section


def comparison_page(kinds_docs: list[tuple[Any, list[Any]]], title: str) -> str:
    """`mcpool compare --html`: per kind, every file's cards, the charts with every file's runs, and the
    comparison the terminal prints."""
    from mcpool_cli.report.compare import comparison

    sections = []
    for kind, docs in kinds_docs:
        module = kind.module("html")
        section = Section(f"{kind.words} compared", " · ".join(doc.label for doc in docs))
        for doc in docs:
            cards = drawn(lambda: module.verdicts(doc.data), section, "verdicts") or []
            section.verdicts += [Verdict(f"{doc.label} · {card.label}", card.verdict, card.good, card.lines)
                                 for card in cards]
        sources = [Source(doc.label, doc.data) for doc in docs]
        section.charts, missing = drawn(lambda: module.charts(sources), section, "charts") or ([], [])
        section.missing += missing
        section.terminal_html = terminal_html(lambda console: console.print(comparison(kind, docs)))
        sections.append(section)
    return page(title, sections)


def drawn(build: Callable[[], Any], section: Section, what: str) -> Any:
    """What `build` returns; None, and a line in the section's missing list, when the document's fields are
    not what this mcpool writes (an older or hand-edited file)."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError) as exc:
        section.missing.append(f"Its {what} could not be drawn: the file lacks or mistypes a field "
                               f"({printable(type(exc).__name__)}: {printable(str(exc))[:160]}).")
        return None


def subtitle_of(data: dict[str, Any], label: str) -> str:
    parts = [label, data.get("run_id") and f"run {data['run_id']}", data.get("started_at"),
             data.get("mcpool_version") and f"mcpool {data['mcpool_version']}"]
    return " · ".join(printable(part) for part in parts if part)


def facts_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Where it ran and with which options, as `name: value` pairs."""
    server = data.get("server") if isinstance(data.get("server"), dict) else {}
    facts = []
    if server:
        where = ", ".join(printable(a) for a in server.get("addresses") or ())
        embedded = " (embedded)" if server.get("embedded") else ""
        facts.append(("server", f"{where}{embedded}, memcached {printable(server.get('version') or '?')}"))
    options = data.get("options") if isinstance(data.get("options"), dict) else {}
    for name, value in options.items():
        if value in ([], "", None):
            continue
        shown = ", ".join(option_text(v) for v in value) if isinstance(value, list) else option_text(value)
        facts.append((printable(name), shown))
    return facts


def option_text(value: Any) -> str:
    if isinstance(value, list):
        return ":".join(printable(v) for v in value)
    return printable(value)


def thresholds_tables(data: dict[str, Any]) -> list[Table]:
    judged = data.get("thresholds")
    if not isinstance(judged, list) or not judged:
        return []
    rows = tuple(("✓ held" if item.get("ok") else "✗ not held", printable(item.get("expr")),
                  printable(item.get("subject") or "-"), printable(item.get("shown") or item.get("value")))
                 for item in judged if isinstance(item, dict))
    return [Table("Thresholds", ("", "condition", "on", "value"), rows)]


def run_end_table(saved: Any) -> Table:
    rows = tuple((printable(command), "passed" if code == 0 else f"exit {code}") for command, code in saved.phases)
    return Table(f"Scenario {printable(saved.scenario)}: phases", ("command", "ended"), rows)


def terminal_html(draw: Callable[[Any], None]) -> str:
    """What the terminal report prints, in HTML with its colours; "" when it cannot be drawn."""
    from rich.console import Console

    console = Console(record=True, file=io.StringIO(), width=110, color_system="truecolor", force_terminal=True)
    try:
        draw(console)
    except Exception:  # a saved file the renderer cannot read: the page says so instead
        return ""
    return console.export_html(inline_styles=True, code_format="<pre class=terminal>{code}</pre>")


# ---------------------------------------------------------------- the page


def page(title: str, sections: list[Section]) -> str:
    """The whole HTML document."""
    figures, body = [], []
    for number, section in enumerate(sections):
        body.append(section_html(section, number, figures))
    figures_json = safe_json(figures)
    return (f"<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>\n"
            f"<title>{html.escape(printable(title))}</title>\n<style>{STYLE}</style>\n"
            f"<script>{ERROR_CATCHER}</script>\n</head>\n<body>\n"
            f"<header><h1>{html.escape(printable(title))}</h1></header>\n<main>\n{''.join(body)}</main>\n"
            f"<noscript><p class=missing>The charts need JavaScript; the cards and tables above are complete "
            f"without it.</p></noscript>\n"
            f"<script>{plotly_js()}</script>\n"
            f"<script type=application/json id=mcpool-figures>{figures_json}</script>\n"
            f"<script>{DRAW}</script>\n</body>\n</html>\n")


def section_html(section: Section, number: int, figures: list[dict[str, Any]]) -> str:
    parts = [f"<section>\n<h2>{text(section.title)}</h2>"]
    if section.subtitle:
        parts.append(f"<p class=subtitle>{text(section.subtitle)}</p>")
    if section.verdicts:
        parts.append("<div class=cards>" + "".join(card_html(card) for card in section.verdicts) + "</div>")
    parts += [f"<p class=missing>{text(line)}</p>" for line in section.missing]
    if section.facts:
        parts.append("<details class=facts><summary>Options</summary><dl>" +
                     "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in section.facts) + "</dl></details>")
    for index, chart in enumerate(section.charts):
        chart_id = f"chart-{number}-{index}"
        figures.append({"id": chart_id, "data": chart.data, "layout": chart_layout(chart), "name": chart.name})
        caption = f"<figcaption>{text(chart.caption)}</figcaption>" if chart.caption else ""
        parts.append(f"<figure><h3>{text(chart.title)}</h3><div class=chart id={chart_id} "
                     f"style='height:{chart.height_px}px'></div>{caption}</figure>")
    parts += [table_html(table) for table in section.tables]
    if section.terminal_html:
        parts.append(f"<details class=terminal-report><summary>The terminal report</summary>"
                     f"{terminal_body(section.terminal_html)}</details>")
    else:
        parts.append("<p class=missing>The terminal report could not be drawn from this file.</p>")
    parts.append("</section>\n")
    return "\n".join(parts)


def card_html(card: Verdict) -> str:
    state = {True: "good", False: "bad", None: "neutral"}[card.good]
    lines = "".join(f"<p>{text(line)}</p>" for line in card.lines)
    return (f"<div class='card {state}'><div class=card-head><span class=label>{text(card.label)}</span>"
            f"<span class=verdict>{text(card.verdict)}</span></div>{lines}</div>")


def table_html(table: Table) -> str:
    head = "".join(f"<th>{text(cell)}</th>" for cell in table.header)
    rows = "".join("<tr>" + "".join(f"<td>{text(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f"<h3>{text(table.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def terminal_body(exported: str) -> str:
    """The <pre> block of rich's exported page, without its own <html> frame and stylesheet."""
    start, end = exported.find("<pre"), exported.rfind("</pre>")
    return exported[start:end + len("</pre>")] if start >= 0 and end > start else ""


def chart_layout(chart: Chart) -> dict[str, Any]:
    base = {"margin": {"l": 70, "r": 30, "t": 30, "b": 50}, "font": {"family": FONT, "size": 12},
            "legend": {"orientation": "h", "y": -0.18}, "hovermode": "closest",
            "paper_bgcolor": "white", "plot_bgcolor": "white"}
    return {**base, **chart.layout}


def text(value: Any) -> str:
    return html.escape(printable(value))


def safe_json(value: Any) -> str:
    """JSON that can sit inside a <script> element: no `<`, `>` or `&` left to end it early."""
    return (json.dumps(value, separators=(",", ":"), allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@functools.cache
def plotly_js() -> str:
    """plotly.js as the plotly package ships it, read without importing the package."""
    spec = importlib.util.find_spec("plotly")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = os.path.join(folder, *PLOTLY_JS)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                return handle.read().replace("</script", "<\\/script")
    from mcpool_cli.errors import UsageProblem

    raise UsageProblem("--html needs the plotly package, which ships the charting script: pip install plotly")


def label(value: Any) -> str:
    """A user's string (a strategy's or file's name) as plotly shows text: its markup escaped."""
    return html.escape(printable(value))


def names(values: Iterable[Any]) -> list[str]:
    return [label(value) for value in values]


FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

STYLE = """
:root { --good: #1a7f37; --bad: #cf222e; --neutral: #9a6700; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: var(--ink); }
header { background: #24292f; color: white; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 24px 40px; }
section { border-bottom: 1px solid var(--line); padding-bottom: 24px; }
h2 { font-size: 20px; margin: 24px 0 2px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.subtitle { color: var(--muted); margin: 0 0 12px; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-left: 6px solid var(--neutral); border-radius: 6px; padding: 10px 14px; }
.card.good { border-left-color: var(--good); } .card.bad { border-left-color: var(--bad); }
.card-head { display: flex; justify-content: space-between; gap: 12px; font-weight: 600; }
.card.good .verdict { color: var(--good); } .card.bad .verdict { color: var(--bad); }
.card.neutral .verdict { color: var(--neutral); }
.card p { margin: 4px 0 0; font-size: 13px; }
.missing { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; font-size: 14px; }
details { margin: 10px 0; } summary { cursor: pointer; color: var(--muted); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 13px; margin: 8px 0; }
dt { color: var(--muted); } dd { margin: 0; font-family: ui-monospace, monospace; }
figure { margin: 8px 0 18px; break-inside: avoid; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 2px; }
.chart { width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 12px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
td { font-family: ui-monospace, monospace; word-break: break-all; }
pre.terminal { font: 12px/1.3 ui-monospace, 'DejaVu Sans Mono', monospace; background: #0d1117; color: #e6edf3;
  padding: 12px; overflow-x: auto; border-radius: 6px; }
@media print {
  header { background: none; color: black; padding: 0; }
  main { max-width: none; padding: 0; }
  pre.terminal { background: white; color: black; white-space: pre-wrap; }
  .modebar { display: none !important; }
}
"""

ERROR_CATCHER = """
window.mcpoolErrors = [];
window.addEventListener('error', function (e) { window.mcpoolErrors.push(String(e.message || e)); });
window.addEventListener('unhandledrejection', function (e) { window.mcpoolErrors.push(String(e.reason)); });
(function () {
  var original = console.error;
  console.error = function () {
    window.mcpoolErrors.push(Array.prototype.map.call(arguments, String).join(' '));
    return original.apply(console, arguments);
  };
})();
"""

DRAW = """
(function () {
  var figures = JSON.parse(document.getElementById('mcpool-figures').textContent);
  function shapesDrawn(gd) {
    var shapes = gd.querySelectorAll('.main-svg .cartesianlayer .trace path, .main-svg .cartesianlayer .trace rect');
    var drawn = 0;
    shapes.forEach(function (shape) {
      var d = shape.getAttribute('d');
      if ((d && d !== 'M0,0Z' && d.length > 4) || (shape.tagName === 'rect' && shape.getAttribute('width') > 0)) {
        drawn += 1;
      }
    });
    return drawn;
  }
  function config(figure) {
    var download = {filename: figure.name, format: 'png', scale: 2};
    var svg = {name: 'Download plot as SVG', icon: Plotly.Icons.camera,
               click: function (gd) { Plotly.downloadImage(gd, {format: 'svg', filename: figure.name}); }};
    return {responsive: true, displaylogo: false, toImageButtonOptions: download, modeBarButtonsToAdd: [svg]};
  }
  function done() {
    document.body.dataset.errors = JSON.stringify(window.mcpoolErrors);
    document.body.dataset.height = String(document.documentElement.scrollHeight);
    document.body.dataset.ready = 'yes';
  }
  if (typeof Plotly === 'undefined') {
    window.mcpoolErrors.push('plotly.js did not load');
    done();
    return;
  }
  var drawing = figures.map(function (figure) {
    return Plotly.newPlot(figure.id, figure.data, figure.layout, config(figure)).then(function (gd) {
      gd.dataset.drawn = String(shapesDrawn(gd));
    });
  });
  Promise.all(drawing).catch(function (e) { window.mcpoolErrors.push(String(e)); }).then(done);
  window.addEventListener('beforeprint', function () {
    document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  });
})();
"""
