"""JUnit XML from result documents: a testcase per run or check verdict, and one per threshold and strategy."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

from mcpool_cli.thresholds import document_kind, subjects

GOOD_VERDICTS = {"races": ("safe",), "leaks": ("clean", "churn"), "stale": ("recovered",)}


def verdict_case(kind: str, row: dict[str, Any]) -> tuple[str, str | None]:
    """(what was judged, why it failed or None) for one run or check result."""
    if kind == "bench":
        problems = [f"outcome {row.get('outcome')}"] if row.get("outcome") != "ok" else []
        problems += [f"{row.get(name)} {name.replace('_', ' ')}" for name in ("error_count", "wrong_values",
                                                                               "corrupt_values") if row.get(name)]
        if not row.get("ops_per_s"):
            problems.append("no successful op")
        return "run", "; ".join(problems) or None
    verdict = row.get("verdict")
    if verdict in GOOD_VERDICTS[kind]:
        return f"verdict {verdict}", None
    return f"verdict {verdict}", row.get("advice") or f"verdict {verdict}"


def build(documents: list[dict[str, Any]], name: str) -> ET.Element:
    suites = ET.Element("testsuites", name=name)
    for document in documents:
        kind = document_kind(document)
        suite = ET.SubElement(suites, "testsuite", name=f"mcpool {'bench' if kind == 'bench' else 'check-' + kind}")
        cases = failures = 0
        for label, row in subjects(document):
            judged, failure = verdict_case(kind, row)
            case = ET.SubElement(suite, "testcase", classname=f"mcpool.{kind}", name=f"{label}: {judged}")
            cases += 1
            if failure:
                failures += 1
                ET.SubElement(case, "failure", message=failure).text = failure
        for result in document.get("thresholds", []):
            case = ET.SubElement(suite, "testcase", classname=f"mcpool.{kind}.thresholds",
                                 name=f"{result['subject']}: {result['expr']}")
            cases += 1
            if not result["ok"]:
                failures += 1
                message = f"{result['expr']} does not hold: measured {result['shown']}"
                ET.SubElement(case, "failure", message=message).text = message
        if document.get("interrupted"):
            case = ET.SubElement(suite, "testcase", classname=f"mcpool.{kind}", name="finished")
            ET.SubElement(case, "error", message="interrupted (Ctrl-C)").text = "interrupted (Ctrl-C)"
            cases += 1
            suite.set("errors", "1")
        suite.set("tests", str(cases))
        suite.set("failures", str(failures))
    return suites


def render(documents: list[dict[str, Any]], name: str = "mcpool") -> bytes:
    """The JUnit XML document, as bytes ready to write."""
    tree = ET.ElementTree(build(documents, name))
    ET.indent(tree)
    buffer = io.BytesIO()
    tree.write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue()
