"""JUnit XML from result documents: a testcase per run or check verdict, and one per threshold and strategy."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from typing import Any

from mcpool_cli.kinds import of_document
from mcpool_cli.report.thresholds import subjects

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    """Text XML 1.0 can hold: an exception's message may carry terminal escapes."""
    return _FORBIDDEN.sub("?", str(text))


def _case(suite: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=clean(name), time=f"{seconds:.3f}")


def _mark(case: ET.Element, tag: str, message: str) -> None:
    ET.SubElement(case, tag, message=clean(message)).text = clean(message)


def build(documents: list[dict[str, Any]], name: str) -> ET.Element:
    suites = ET.Element("testsuites", name=clean(name))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for document in documents:
        kind = of_document(document)
        if kind is None:
            continue
        suite = ET.SubElement(suites, "testsuite", name=f"mcpool {kind.command}")
        counts = dict.fromkeys(totals, 0)
        for label, row in subjects(document):
            judged, failure = kind.judged_case(row)
            case = _case(suite, f"mcpool.{kind.name}", f"{label}: {judged}", row.get("duration_s") or 0.0)
            counts["tests"] += 1
            if failure:
                broken = row.get("outcome") in ("error", "hung")  # the run could not be judged, not a finding
                _mark(case, "error" if broken else "failure", failure)
                counts["errors" if broken else "failures"] += 1
        for result in document.get("thresholds", []):
            case = _case(suite, f"mcpool.{kind.name}.thresholds", f"{result['subject']}: {result['expr']}")
            counts["tests"] += 1
            if result.get("skipped"):
                ET.SubElement(case, "skipped", message=clean(result["shown"]))
                counts["skipped"] += 1
            elif not result["ok"]:
                _mark(case, "failure", f"{result['expr']} does not hold: measured {result['shown']}")
                counts["failures"] += 1
        if document.get("interrupted"):
            _mark(_case(suite, f"mcpool.{kind.name}", "finished"), "error", "interrupted (Ctrl-C)")
            counts["tests"] += 1
            counts["errors"] += 1
        for key, count in counts.items():
            suite.set(key, str(count))
            totals[key] += count
    for key, count in totals.items():
        suites.set(key, str(count))
    return suites


def render(documents: list[dict[str, Any]], name: str = "mcpool") -> bytes:
    """The JUnit XML document, as bytes ready to write."""
    tree = ET.ElementTree(build(documents, name))
    ET.indent(tree)
    buffer = io.BytesIO()
    tree.write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue()
