"""The registry of command kinds: what bench and each check declare once, for the shared modules to loop over.

A kind lives in one folder, with the same file names for the same jobs:

    kind.py     its declaration (KIND): command, schema, metrics, good verdicts and styles, worker modes
    loop.py     worker side: what its threads run, and the snapshot messages they send (MODES)
    session.py  parent side: options, the session that runs the workers, its JSON document and `from_json`
    render.py   rich renderables of its report (`render`; `saved=True` for `mcpool report`) and of saved
                documents side by side (`compare`)
    html.py     its part of an HTML report, from saved documents: `verdicts(data)` (cards), `charts(sources)`
                (plotly figures, and what the documents cannot show), `tables(data)`
    command.py  the click command: `validate(params) -> options`, then `start(options, ...)` a session

thresholds, JUnit, report, compare, scenarios and the worker host ask the registry, never a kind by name.
Adding a check means a folder under checks/ with those files, and its KIND in `registered()` below.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping

CHECK_SCHEMA = "mcpool.check/1"  # every check's document, with the kind's name in "check"
RUN_SCHEMA = "mcpool.run/1"  # what `mcpool run --json` writes: its phases' documents in one
LATENCY = ("min", "mean", "p50", "p90", "p99", "p99_9", "max")  # the names of a latency summary, in µs in JSON
FAILED_STYLE = "bold red"


def plain_metric(row: dict[str, Any], metric: str) -> float | None:
    """A metric that is a number field of the row; `errors` sums the errors by class when there is no count."""
    if metric == "errors":
        return row["error_count"] if "error_count" in row else sum((row.get("errors") or {}).values())
    value = row.get(metric)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def no_exemption(row: dict[str, Any], metric: str) -> str:
    return ""


def strategy_label(document: dict[str, Any], row: dict[str, Any]) -> str:
    return str(row.get("strategy", "?"))


@dataclass(frozen=True, eq=False)  # one object per kind: compared and hashed by identity
class Kind:
    """What one command kind declares: the shared modules take everything kind-specific from here."""

    name: str  # bench, races, leaks, stale: its section in scenario files, its "check" in JSON
    command: str  # the CLI command
    package: str  # the folder holding its files (see the module docstring)
    schema: str
    metrics: tuple[str, ...]  # what --threshold may name
    good_verdicts: tuple[str, ...]  # verdicts that pass: exit 0 and a passing JUnit case
    verdict_styles: Mapping[str, str]  # how the report shows each verdict; any other is a failure, bold red
    modes: tuple[str, ...]  # the worker modes its loop.MODES runs
    rows: str = "results"  # the document's list of per-strategy entries
    quick_keys: tuple[str, ...] = ()  # scenario keys that `mcpool run --duration` caps
    time_metrics: tuple[str, ...] = ()  # metrics that are times, beyond those named *_s
    metrics_hint: str = ""  # said after the plain metrics when a threshold names none of them
    metric_value: Callable[[dict[str, Any], str], float | None] = plain_metric
    not_applicable: Callable[[dict[str, Any], str], str] = no_exemption  # why a metric has no value here
    row_label: Callable[[dict[str, Any], dict[str, Any]], str] = strategy_label
    junit_case: Callable[["Kind", dict[str, Any]], tuple[str, str | None]] | None = None
    words: str = field(default="")  # how compare names a document of this kind

    def module(self, job: str) -> ModuleType:
        """Its `loop`, `session`, `render` or `command` module, imported when first asked for."""
        return importlib.import_module(f"{self.package}.{job}")

    @property
    def check(self) -> str | None:
        """Its name in a check document's "check" field; None for bench."""
        return self.name if self.schema == CHECK_SCHEMA else None

    def style(self, verdict: str) -> str:
        return self.verdict_styles.get(verdict, FAILED_STYLE)

    def judged_case(self, row: dict[str, Any]) -> tuple[str, str | None]:
        """(what was judged, why it failed or None) for one run or result of a document, for JUnit."""
        if self.junit_case is not None:
            return self.junit_case(self, row)
        verdict = row.get("verdict")
        if verdict in self.good_verdicts:
            return f"verdict {verdict}", None
        return f"verdict {verdict}", row.get("advice") or f"verdict {verdict}"


@functools.cache
def registered() -> tuple[Kind, ...]:
    """Every kind, in the order commands, scenario sections and reports list them."""
    from mcpool_cli.bench.kind import KIND as bench
    from mcpool_cli.checks.failover.kind import KIND as failover
    from mcpool_cli.checks.leaks.kind import KIND as leaks
    from mcpool_cli.checks.races.kind import KIND as races
    from mcpool_cli.checks.stale.kind import KIND as stale

    return bench, races, leaks, stale, failover


def by_name(name: str) -> Kind:
    return next(kind for kind in registered() if kind.name == name)


def by_mode(mode: str) -> Kind:
    return next(kind for kind in registered() if mode in kind.modes)


def schemas() -> tuple[str, ...]:
    """Every schema a saved file may have: the kinds' own, then a run's."""
    return (*dict.fromkeys(kind.schema for kind in registered()), RUN_SCHEMA)


def of_document(document: dict[str, Any]) -> Kind | None:
    """The kind that wrote a bench or check document; None when none did."""
    for kind in registered():
        if document.get("schema") == kind.schema and (kind.check is None or document.get("check") == kind.check):
            return kind
    return None
