"""Saved results side by side, for `mcpool compare`: what every kind's comparison shares.

Documents come from `saved.load_file`; every figure shown is the one saved, as in `mcpool report`. Each kind's
render.compare draws its own table; check kinds do it with `check_comparison` and rows of their own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mcpool_cli.errors import UsageProblem
from mcpool_cli.kinds import Kind
from mcpool_cli.report.saved import SavedDocument, SavedFile
from mcpool_cli.units import Fitted, outside, printable

T = TypeVar("T")


def short_labels(paths: Iterable[str]) -> list[str]:
    """File names without their folders when those alone tell the files apart; a file given twice is `(2)`."""
    paths = list(paths)
    names = [os.path.basename(p) or p for p in paths]
    labels = names if len(set(names)) == len(names) else paths
    return [label if labels[:i].count(label) == 0 else f"{label} ({labels[:i].count(label) + 1})"
            for i, label in enumerate(labels)]


def common_kinds(files: list[SavedFile]) -> list[Kind]:
    """The kinds of result every file holds; a UsageProblem when files hold different kinds."""
    first = list(dict.fromkeys(doc.kind for doc in files[0].documents))
    for other in files[1:]:
        theirs = list(dict.fromkeys(doc.kind for doc in other.documents))
        if set(theirs) != set(first):
            raise UsageProblem(f"{printable(other.path)} holds {describe(theirs)}, but {printable(files[0].path)} holds "
                               f"{describe(first)}: "
                               "compare files of one kind (bench with bench, check-stale with check-stale, …)")
    if not first:
        raise UsageProblem(f"{printable(files[0].path)}: holds no results to compare")
    return first


def describe(kinds: list[Kind]) -> str:
    return " and ".join(kind.words for kind in kinds) or "no results"


def grouped(items: list[T], key: Callable[[T], str]) -> list[list[T]]:
    """Items grouped by key, groups in first-seen order, items in their order."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def option_notes(docs: list[SavedDocument]) -> list[Text]:
    """What each document ran with that the first one did not (strategies aside)."""
    notes = []
    base = settings(docs[0])
    for doc in docs[1:]:
        other = settings(doc)
        changed = [f"{key} {show_option(base.get(key))} → {show_option(other.get(key))}"
                   for key in dict.fromkeys([*base, *other]) if base.get(key) != other.get(key)]
        if changed:
            notes.append(outside(f"{doc.label} ran with other options than {docs[0].label}: {', '.join(changed)}",
                                 "dim"))
    return notes


def settings(doc: SavedDocument) -> dict[str, Any]:
    """A document's options but its strategies, and the memcached version it ran against."""
    options, server = doc.data.get("options"), doc.data.get("server")
    found = {key: value for key, value in (options if isinstance(options, dict) else {}).items() if key != "strategies"}
    return {**found, "memcached": server.get("version") if isinstance(server, dict) else None}


def show_option(value: Any) -> str:
    """An option as the command line takes it: pairs (behaviors, a mix) as `k=v,k=v`, none as `none`."""
    if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return ",".join(f"{key}={item}" for key, item in value) or "none"
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class CheckRow:
    """One check result in a comparison: what it is compared by, its verdict and its key figures shown."""

    label: str
    key: str
    verdict: str
    figures: dict[str, str]


def check_comparison(kind: Kind, docs: list[SavedDocument], make_rows: Callable[[SavedDocument], list[CheckRow]],
                     told: tuple[str, ...], subject: str = "strategy") -> RenderableType:
    """Check results of several files side by side: verdicts, key figures, and what changed in `told`."""
    rows = [row for group in grouped([r for doc in docs for r in make_rows(doc)], lambda r: r.key) for row in group]
    table = Table(title=outside(f"{kind.command}: {' · '.join(doc.label for doc in docs)}"), title_justify="left",
                  box=None,
                  pad_edge=False)
    columns, label_width = list(rows[0].figures) if rows else [], max(len(doc.label) for doc in docs)
    for name in ("run", subject, "verdict", *columns):
        table.add_column(name.replace(" ", "\n") if len(name) > 8 else name,
                         justify="left" if name in ("run", subject, "verdict", "relinquish") else "right",
                         no_wrap=name not in ("run", subject, "verdict", "relinquish"),
                         min_width=label_width if name == "run" else None)
    for row in rows:
        table.add_row(outside(row.label), outside(row.key), outside(row.verdict, kind.style(row.verdict)),
                      *(outside(row.figures[name]) for name in columns))
    dropped = [*(n for n in reversed(columns) if n not in told), *reversed(told)]  # when narrow, in this order
    parts: list[RenderableType] = [Fitted(table, [n.split()[0] for n in dropped])]
    if len(docs) > 1:
        heading = f"from {docs[0].label} to {docs[1].label}" if len(docs) == 2 else f"against {docs[0].label}"
        parts += [outside(f"changes {heading}:", "bold"), *check_changes(rows, told, len(docs) == 2)]
    return Group(*parts, *option_notes(docs), Text(""))


def check_changes(rows: list[CheckRow], told: tuple[str, ...], two: bool) -> list[Text]:
    """`fifo: recovery 2.41 s → 1.06 s, …` for each result against the first one of the same strategy."""
    lines = []
    for group in grouped(rows, lambda row: row.key):
        base = group[0]
        if len(group) == 1:
            lines.append(outside(f"  {base.key}: only in {base.label}", "dim"))
        for row in group[1:]:
            changed = [f"{name} {base.figures[name]} → {row.figures[name]}" for name in told
                       if base.figures[name] != row.figures[name]]
            if row.verdict != base.verdict:
                changed.append(f"verdict {base.verdict} → {row.verdict}")
            who = row.key if two else f"{row.key} in {row.label}"
            lines.append(outside(f"  {who}: {', '.join(changed) or f'no change ({row.verdict})'}"))
    return lines


def comparison(kind: Kind, docs: list[SavedDocument]) -> RenderableType:
    """Documents of one kind side by side, as that kind's renderer compares them."""
    return kind.module("render").compare(docs)
