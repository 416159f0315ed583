"""Saved JSON results read back: schema checks, and the objects each command reported from.

A document is rebuilt by its kind's `session.from_json` into the session that wrote it, so the kind's renderer
draws it as it did when it ran. Judgements (outcome, ops/s, verdict, summary, advice) are stored in the objects
when they are made, so the saved ones come back as they were: a report shows what was decided then.
Comparing documents side by side is `comparison`'s.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, TypeVar

from rich.text import Text

from mcpool_cli.errors import UsageProblem
from mcpool_cli.kinds import CHECK_SCHEMA, RUN_SCHEMA, Kind, of_document, registered, schemas
from mcpool_cli.units import outside, printable

T = TypeVar("T")


def expected(known: tuple[str, ...]) -> str:
    return f"expected mcpool's JSON results (schema {', '.join(known[:-1])} or {known[-1]})"


# ---------------------------------------------------------------- reading and checking files


MAX_FILE_BYTES = 256 * 1024 * 1024  # far more than any document mcpool writes; /dev/zero never ends


def open_for_reading(path: str) -> BinaryIO:
    """The file opened to read. A FIFO is opened without waiting for a writer (a FIFO nobody writes to would
    block open() forever): reading then waits for the writer's data, or ends at once when there is none."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
    fcntl.fcntl(descriptor, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return os.fdopen(descriptor, "rb")


def read_json(path: str) -> Any:
    """The parsed file; a UsageProblem naming it when it is missing, unreadable, too big or not JSON."""
    try:
        with open_for_reading(path) as handle:  # a pipe (`<(…)`) is read too, up to the limit
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            problem = f"too big (over {MAX_FILE_BYTES // (1024 * 1024)} MiB), or not a file"
        else:
            return json.loads(raw.decode("utf-8"))
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
    except ValueError as exc:  # an integer of more digits than Python reads (4,300 by default)
        problem = f"not a result document ({printable(str(exc).split(';')[0])})"
    raise UsageProblem(f"{printable(path)}: {problem}; {expected(schemas())}")


def kind_of(data: Any, where: str, known: tuple[str, ...] | None = None) -> Kind | None:
    """The kind that wrote a document, or None for a run document (a document of documents); a UsageProblem
    for anything else. `known`: the schemas accepted here (all by default)."""
    everything = schemas()
    known = known or everything
    where = printable(where)  # a file's name is printed as text
    if not isinstance(data, dict):
        raise UsageProblem(f"{where}: JSON, but not an object; {expected(known)}")
    if "schema" not in data:
        raise UsageProblem(f'{where}: no "schema" field; {expected(known)}')
    schema = data["schema"]
    if schema not in known:
        ours = schema not in everything and str(schema).rpartition("/")[0] in {s.rpartition("/")[0] for s in everything}
        raise UsageProblem(f"{where}: schema {json.dumps(schema)}{', from another version of mcpool' if ours else ''}; "
                           f"{expected(known)}")
    if schema == RUN_SCHEMA:
        return None
    kind = of_document(data)
    if kind is None:
        checks = [f'"{k.check}"' for k in registered() if k.check]
        raise UsageProblem(f'{where}: {CHECK_SCHEMA} with "check" {json.dumps(data.get("check"))}; expected '
                           f'{", ".join(checks[:-1])} or {checks[-1]}')
    return kind


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
    kind: Kind
    data: dict[str, Any]
    content: Any  # the session that wrote it, rebuilt by its kind
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
    return from_data(read_json(path), path, label)


def from_data(data: Any, path: str, label: str | None = None) -> SavedFile:
    """Check and rebuild every document of parsed JSON, as `load_file` does with a file's."""
    kind = kind_of(data, path)
    label = path if label is None else label
    if kind is not None:
        return SavedFile(path, data["schema"], (build_document(data, kind, label, path),))
    raw = data.get("documents")
    if not isinstance(raw, list):
        raise UsageProblem(f'{printable(path)}: {RUN_SCHEMA} without a "documents" list; {expected(schemas())}')
    kinds = [kind_of(doc, f"{path}: documents[{i}]", schemas()[:-1]) for i, doc in enumerate(raw)]
    many = {k for k, n in Counter(kinds).items() if n > 1}
    documents = tuple(build_document(doc, k, f"{label}#{i + 1}" if k in many else label,
                                     f"{path}: documents[{i}]") for i, (doc, k) in enumerate(zip(raw, kinds)))
    phases = guarded(lambda: tuple((str(p["command"]), int(p["exit_code"])) for p in data.get("phases") or ()),
                     path, RUN_SCHEMA)
    return SavedFile(path, RUN_SCHEMA, documents, str(data.get("scenario") or "?"), phases,
                     guarded(lambda: read_thresholds(data), path, RUN_SCHEMA))


def build_document(data: dict[str, Any], kind: Kind | None, label: str, where: str) -> SavedDocument:
    assert kind is not None  # a run document inside a run document was refused by kind_of
    content = guarded(lambda: kind.module("session").from_json(data), where, data["schema"])
    return SavedDocument(label, kind, data, content, guarded(lambda: read_thresholds(data), where, data["schema"]))


def guarded(build: Callable[[], T], where: str, schema: str) -> T:
    """`build()`, with a missing or mistyped field turned into one line that names the file."""
    try:
        return build()
    except KeyError as exc:
        reason = f"no {json.dumps(exc.args[0])} field"
    except RecursionError:
        reason = "nested too deep"
    except (TypeError, ValueError, AttributeError, IndexError, ArithmeticError, UsageProblem) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        reason = printable(reason if len(reason) <= 200 else f"{reason[:199]}…")
    raise UsageProblem(f"{printable(where)}: a damaged {schema} document ({reason}); expected one as mcpool writes it")


# ---------------------------------------------------------------- report extras


def source_line(doc: SavedDocument) -> Text:
    """Where a document came from: file, command, run id, start time, mcpool version."""
    data = doc.data
    parts = [doc.label, doc.kind.command, data.get("run_id") and f"run {data['run_id']}",
             data.get("started_at"), data.get("mcpool_version") and f"mcpool {data['mcpool_version']}",
             "interrupted" if data.get("interrupted") else None, merged_line(data)]
    return outside(" · ".join(str(part) for part in parts if part), "dim")


def merged_line(data: dict[str, Any]) -> str | None:
    """What a document of `mcpool merge` merges: how many files, and which."""
    sources = data.get("merged_from")
    if not isinstance(sources, list) or not sources:
        return None
    names = [str(source.get("file")) for source in sources if isinstance(source, dict)]
    return f"merges {len(sources)} files ({', '.join(names)})"
