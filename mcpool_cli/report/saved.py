"""Saved JSON results read back: schema checks, and the objects each command reported from.

A document is rebuilt into the library's own objects (BenchSession and RunResult, StrategyCheck, LeakCheck,
StaleCheck), so the commands' renderers draw it as they did when it ran. The judgements it carries (outcome,
ops/s, verdict, summary, advice) are the saved ones, never recomputed: a report shows what was decided then.
Comparing documents side by side is `comparison`'s.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from hdrh.histogram import HdrHistogram
from rich.table import Table
from rich.text import Text

from mcpool_cli.bench.session import BenchOptions, BenchSession
from mcpool_cli.checks.leaks.session import LeakCheck
from mcpool_cli.checks.races.session import CHECK_SCHEMA, RaceStats, StrategyCheck, Trial
from mcpool_cli.checks.stale.session import StaleCheck, StaleOptions
from mcpool_cli.errors import UsageProblem
from mcpool_cli.checks.leaks.loop import ChurnFigures
from mcpool_cli.engine.outcomes import OPS, RESULT_SCHEMA, RunResult, RunStats, WorkerOutcome
from mcpool_cli.engine.server import parse_server
from mcpool_cli.checks.stale.faults import StaleFigures

RUN_SCHEMA = "mcpool.run/1"  # what `mcpool run --json` writes: its phases' documents in one
SCHEMAS = (RESULT_SCHEMA, CHECK_SCHEMA, RUN_SCHEMA)
CHECK_KINDS = ("races", "leaks", "stale")
COMMAND = {"bench": "bench", "races": "check-races", "leaks": "check-leaks", "stale": "check-stale"}
VERDICT_STYLE = {"safe": "bold green", "clean": "bold green", "recovered": "bold green", "churn": "bold yellow",
                 "inconclusive": "bold yellow", "interrupted": "bold yellow"}  # any other verdict is a failure
T = TypeVar("T")


def expected(schemas: tuple[str, ...]) -> str:
    return f"expected mcpool's JSON results (schema {', '.join(schemas[:-1])} or {schemas[-1]})"


# ---------------------------------------------------------------- reading and checking files


def read_json(path: str) -> Any:
    """The parsed file; a UsageProblem naming it when it is missing, unreadable or not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a folder"
    except OSError as exc:
        problem = f"cannot read it ({exc.strerror or exc})"
    except json.JSONDecodeError as exc:
        problem = f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except UnicodeDecodeError:
        problem = "not JSON (not UTF-8 text)"
    except RecursionError:
        problem = "not a result document (nested too deep)"
    raise UsageProblem(f"{path}: {problem}; {expected(SCHEMAS)}")


def kind_of(data: Any, where: str, schemas: tuple[str, ...] = SCHEMAS) -> str:
    """bench, races, leaks, stale, or run (a document of documents); a UsageProblem for any other schema."""
    if not isinstance(data, dict):
        raise UsageProblem(f"{where}: JSON, but not an object; {expected(schemas)}")
    if "schema" not in data:
        raise UsageProblem(f'{where}: no "schema" field; {expected(schemas)}')
    schema = data["schema"]
    if schema not in schemas:
        ours = schema not in SCHEMAS and str(schema).rpartition("/")[0] in {s.rpartition("/")[0] for s in SCHEMAS}
        raise UsageProblem(f"{where}: schema {json.dumps(schema)}{', from another version of mcpool' if ours else ''}; "
                           f"{expected(schemas)}")
    if schema != CHECK_SCHEMA:
        return "bench" if schema == RESULT_SCHEMA else "run"
    if data.get("check") not in CHECK_KINDS:
        raise UsageProblem(f'{where}: {CHECK_SCHEMA} with "check" {json.dumps(data.get("check"))}; expected '
                           '"races", "leaks" or "stale"')
    return data["check"]


def read_thresholds(data: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The thresholds judged on a document, as `thresholds.render` takes them (`shown` made when missing)."""
    from mcpool_cli.report.thresholds import Threshold

    judged = []
    for item in data.get("thresholds") or ():
        expr, unit = str(item["expr"]), str(item.get("unit") or "")
        shown = item.get("shown") or Threshold(expr, "", "==", 0.0, unit).shown(item.get("value"))
        judged.append({**item, "expr": expr, "subject": str(item.get("subject") or "-"), "shown": str(shown),
                       "ok": bool(item["ok"])})
    return tuple(judged)


@dataclass(frozen=True)
class SavedDocument:
    """One bench or check result read back, as the objects its command reported from."""

    label: str  # its file, and its place there when the file holds several of its kind (`run.json#2`)
    kind: str  # bench, races, leaks or stale
    data: dict[str, Any]
    content: Any  # BenchSession, SavedRaces, SavedLeaks or SavedStale
    thresholds: tuple[dict[str, Any], ...]  # judged on it when it ran


@dataclass(frozen=True)
class SavedFile:
    path: str
    schema: str
    documents: tuple[SavedDocument, ...]
    scenario: str | None = None  # a run document's name, the commands it ran and their exit codes,
    phases: tuple[tuple[str, int], ...] = ()
    thresholds: tuple[dict[str, Any], ...] = ()  # and every threshold its phases judged


def load_file(path: str, label: str | None = None) -> SavedFile:
    """Read, check and rebuild every document in a file; a UsageProblem naming it for anything wrong."""
    data = read_json(path)
    kind = kind_of(data, path)
    if kind != "run":
        return SavedFile(path, data["schema"], (build_document(data, kind, label or path, path),))
    raw = data.get("documents")
    if not isinstance(raw, list):
        raise UsageProblem(f'{path}: {RUN_SCHEMA} without a "documents" list; {expected(SCHEMAS)}')
    kinds = [kind_of(doc, f"{path}: documents[{i}]", SCHEMAS[:2]) for i, doc in enumerate(raw)]
    many = {k for k, n in Counter(kinds).items() if n > 1}
    documents = tuple(build_document(doc, k, f"{label or path}#{i + 1}" if k in many else label or path,
                                     f"{path}: documents[{i}]") for i, (doc, k) in enumerate(zip(raw, kinds)))
    phases = guarded(lambda: tuple((str(p["command"]), int(p["exit_code"])) for p in data.get("phases") or ()),
                     path, RUN_SCHEMA)
    return SavedFile(path, RUN_SCHEMA, documents, str(data.get("scenario") or "?"), phases,
                     guarded(lambda: read_thresholds(data), path, RUN_SCHEMA))


def build_document(data: dict[str, Any], kind: str, label: str, where: str) -> SavedDocument:
    content = guarded(lambda: BUILDERS[kind](data), where, data["schema"])
    return SavedDocument(label, kind, data, content, guarded(lambda: read_thresholds(data), where, data["schema"]))


def guarded(build: Callable[[], T], where: str, schema: str) -> T:
    """`build()`, with a missing or mistyped field turned into one line that names the file."""
    try:
        return build()
    except KeyError as exc:
        reason = f"no {json.dumps(exc.args[0])} field"
    except (TypeError, ValueError, AttributeError, IndexError, ArithmeticError, UsageProblem) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    raise UsageProblem(f"{where}: a damaged {schema} document ({reason}); expected one as mcpool writes it")


# ---------------------------------------------------------------- JSON back into the library's objects


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of `data` that are fields of dataclass `cls` (lists as tuples); others are ignored."""
    names = {f.name for f in dataclasses.fields(cls)} - {"import_path"}
    return {key: _tuples(value) for key, value in data.items() if key in names}


def all_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Every field of dataclass `cls` from `data`: a KeyError names the first one missing."""
    return {f.name: _tuples(data[f.name]) for f in dataclasses.fields(cls)}


def counts(mapping: dict[str, Any]) -> Counter:
    return Counter({str(name): int(count) for name, count in mapping.items() if count})


def decode_histogram(text: str) -> HdrHistogram:
    try:
        return HdrHistogram.decode(text)
    except Exception as exc:  # hdrh raises classes of its own, and binascii's and zlib's
        raise ValueError(f"a histogram does not decode ({exc or type(exc).__name__})") from exc


@dataclass(frozen=True)
class SavedRunResult(RunResult):
    """A bench run read back: outcome and ops/s as saved (the stats hold no raw per-op failure split)."""

    saved_outcome: WorkerOutcome = dataclasses.field(default_factory=WorkerOutcome)
    saved_ops_per_s: float = 0.0

    @property
    def outcome(self) -> WorkerOutcome:
        return self.saved_outcome

    @property
    def ops_per_s(self) -> float:
        return self.saved_ops_per_s


def run_stats(run: dict[str, Any]) -> RunStats:
    """The counters and histograms of one saved bench run."""
    stats = RunStats(_out_of_range=int(run.get("out_of_range_values") or 0))
    for op, block in run["by_op"].items():
        if op in OPS:
            stats.succeeded[op] = add_histogram(stats, op, block["histogram"])
            stats.failed[op] = int(block["count"]) - stats.succeeded[op]
    add_histogram(stats, "acquire", run["acquire"]["histogram"])
    stats.succeeded["acquire"] = int(run["acquire"]["count"])
    stats.completed, stats.errors = int(run["ops_including_warmup"]), counts(run["errors"])
    stats.wrong_values, stats.corrupt_values = int(run["wrong_values"]), int(run["corrupt_values"])
    stats.misses, stats.pool_exhausted = int(run["misses"]), int(run["pool_exhausted"])
    stats.examples = [dict(example) for example in run["examples"]][:5]
    return stats


def add_histogram(stats: RunStats, name: str, encoded: str) -> int:
    """Add a saved histogram to the stats' own; its count. An empty one is left out: HdrHistogram.add would
    take its minimum, 0."""
    histogram = decode_histogram(encoded)
    if histogram.get_total_count():
        stats.histogram(name).add(histogram)
    return histogram.get_total_count()


def run_result(run: dict[str, Any]) -> SavedRunResult:
    detail = run["outcome_detail"]
    outcome = WorkerOutcome(str(run["outcome"]), detail.get("signal"), detail.get("stderr_tail"), detail.get("message"),
                            float(run["duration_s"]))
    workers = tuple(WorkerOutcome(**known_fields(WorkerOutcome, worker)) for worker in run["workers"])
    return SavedRunResult(str(run["strategy"]), int(run["threads"]), int(run["processes"]), run.get("pool_size"),
                          float(run["duration_s"]), run_stats(run), workers, detail.get("explanation") or "",
                          saved_outcome=outcome, saved_ops_per_s=float(run["ops_per_s"]))


def bench_options(options: dict[str, Any]) -> BenchOptions:
    known = known_fields(BenchOptions, options)
    fields = {f.name for f in dataclasses.fields(BenchOptions)}
    if "mix" in fields and "mix" not in known and known.get("ratio"):  # written before --mix: the ratio is the mix
        known["mix"] = (("get", known["ratio"][0]), ("set", known["ratio"][1]))
    return BenchOptions(**known)


def bench_session(data: dict[str, Any]) -> BenchSession:
    server = data["server"]
    session = BenchSession(bench_options(data["options"]), tuple(parse_server(spec) for spec in server["addresses"]),
                           bool(server["embedded"]), str(server.get("version") or "?"),
                           run_id=str(data.get("run_id") or ""), started_at=str(data.get("started_at") or ""),
                           finished_at=data.get("finished_at"), interrupted=bool(data.get("interrupted")))
    session.results = [run_result(run) for run in data["runs"]]
    return session


@dataclass(frozen=True)
class SavedRaceCheck(StrategyCheck):
    """A check-races result read back, with its verdict, summary, advice and examples as saved."""

    saved_verdict: str = ""
    saved_affected: int = 0
    saved_summary: str = ""
    saved_advice: str = ""
    saved_examples: tuple[dict[str, str], ...] = ()

    @property
    def verdict(self) -> str:
        return self.saved_verdict

    @property
    def affected(self) -> int:
        return self.saved_affected

    def summary(self) -> str:
        return self.saved_summary

    def advice(self) -> str:
        return self.saved_advice

    def examples(self) -> list[dict[str, str]]:
        return list(self.saved_examples)


@dataclass(frozen=True)
class SavedRaces:
    threads: int
    duration_s: float
    checks: tuple[SavedRaceCheck, ...]


def race_trial(trial: dict[str, Any]) -> Trial:
    stats = RaceStats(completed=int(trial["ops"]), checked=int(trial["checked"]), anomalies=counts(trial["anomalies"]),
                      errors=counts(trial["errors"]), first_anomaly_s=trial["first_anomaly_s"])
    outcome = WorkerOutcome(trial["outcome"], trial["signal"], trial["stderr_tail"], trial["message"])
    return Trial(int(trial["trial"]), outcome, stats, int(trial["evictions"]), bool(trial["flushed"]))


def race_checks(data: dict[str, Any]) -> SavedRaces:
    checks = tuple(SavedRaceCheck(str(r["strategy"]), tuple(race_trial(t) for t in r["trials"]), str(r["verdict"]),
                                  int(r["trials_affected"]), str(r["summary"]), str(r["advice"]),
                                  tuple(dict(e) for e in r["examples"])) for r in data["results"])
    return SavedRaces(int(data["options"]["threads"]), float(data["options"]["duration_s"]), checks)


@dataclass(frozen=True)
class SavedLeakCheck(LeakCheck):
    """A check-leaks result read back, with its verdict, leak count and advice as saved."""

    saved_verdict: str = ""
    saved_leaked: int = 0
    saved_advice: str = ""

    @property
    def verdict_and_leaked(self) -> tuple[str, int]:
        return self.saved_verdict, self.saved_leaked

    def advice(self) -> str:
        return self.saved_advice


@dataclass(frozen=True)
class SavedLeaks:
    embedded: bool
    checks: tuple[SavedLeakCheck, ...]


def leak_checks(data: dict[str, Any]) -> SavedLeaks:
    checks = tuple(SavedLeakCheck(str(r["strategy"]), bool(r["relinquish"]), WorkerOutcome(str(r["outcome"])),
                                  ChurnFigures(**all_fields(ChurnFigures, r)) if "threads_started" in r else None,
                                  str(r["verdict"]), int(r["leaked_connections"]), str(r["advice"]))
                   for r in data["results"])
    return SavedLeaks(bool(data["server"]["embedded"]), checks)


@dataclass(frozen=True)
class SavedStaleCheck(StaleCheck):
    """A check-stale result read back, with its verdict and advice as saved."""

    saved_verdict: str = ""
    saved_advice: str = ""

    @property
    def verdict(self) -> str:
        return self.saved_verdict

    def advice(self) -> str:
        return self.saved_advice


@dataclass(frozen=True)
class SavedStale:
    """What check-stale's renderer takes from its session: options, checks and the behavior comparisons."""

    options: StaleOptions
    checks: tuple[SavedStaleCheck, ...]
    saved_comparisons: tuple[str, ...]

    def comparisons(self) -> list[str]:
        return list(self.saved_comparisons)


def stale_check(r: dict[str, Any]) -> SavedStaleCheck:
    figures = None if r["false_misses"] is None else StaleFigures(**all_fields(StaleFigures, r))
    return SavedStaleCheck(str(r["strategy"]), str(r["variant"]), tuple(r["behaviors"].items()), str(r["fault"]),
                           WorkerOutcome(str(r["outcome"])), figures, str(r["fault_detail"] or ""),
                           float(r["recovery_bound_s"]), str(r["verdict"]), str(r["advice"]))


def stale_checks(data: dict[str, Any]) -> SavedStale:
    options = StaleOptions(**known_fields(StaleOptions, data["options"]))
    return SavedStale(options, tuple(stale_check(r) for r in data["results"]),
                      tuple(str(line) for line in data.get("comparisons") or ()))


BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "bench": bench_session, "races": race_checks, "leaks": leak_checks, "stale": stale_checks}


# ---------------------------------------------------------------- report extras


def source_line(doc: SavedDocument) -> Text:
    """Where a document came from: file, command, run id, start time, mcpool version."""
    data = doc.data
    parts = [doc.label, COMMAND[doc.kind], data.get("run_id") and f"run {data['run_id']}",
             data.get("started_at"), data.get("mcpool_version") and f"mcpool {data['mcpool_version']}",
             "interrupted" if data.get("interrupted") else None]
    return Text(" · ".join(str(part) for part in parts if part), style="dim")


def leaks_summary(checks: tuple[SavedLeakCheck, ...]) -> Table:
    """check-leaks side by side: what its command prints per strategy, in one table."""
    table = Table(title="check-leaks", title_justify="left", box=None, pad_edge=False)
    for name in ("strategy", "relinquish", "verdict", "opened", "leaked", "peak", "after"):
        table.add_column(name, justify="left" if name in ("strategy", "relinquish", "verdict") else "right")
    for check in checks:
        figures = check.figures
        shown = ("-",) * 3 if figures is None else (
            f"{figures.connections_opened:,}", f"{figures.peak_connections:,}", f"{figures.after_connections:,}")
        table.add_row(check.strategy, "on" if check.relinquish else "off", styled_verdict(check.verdict),
                      shown[0], f"{check.verdict_and_leaked[1]:,}", *shown[1:])
    return table


def styled_verdict(verdict: str) -> Text:
    return Text(verdict, style=VERDICT_STYLE.get(verdict, "bold red"))
