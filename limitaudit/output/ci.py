"""What a CI job keeps of an audit: a JUnit XML report its test reporter shows (GitLab,
Jenkins, GitHub), and a JSON summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import polars as pl

from limitaudit import __version__
from limitaudit.commands.audit import AuditResult
from limitaudit.model.audit import CAUSES, FINDING_KINDS

# The rows a failure lists: enough to start from; the CSV has them all.
JUNIT_ROWS = 50


def junit_xml(result: AuditResult, failing: set[str], dump: Sequence[str], seconds: float) -> str:
    """One test case per cause and per finding kind, a failure where `failing` (the
    --fail-on set) names one the audit found, with its rows' evidence."""
    counts = result.by_cause()
    hits = result.failing(failing)
    cases = len(CAUSES) + len(FINDING_KINDS)
    tally = {
        "time": f"{seconds:.3f}",
        "tests": str(cases),
        "failures": str(len(hits)),
        "errors": "0",
        "skipped": "0",
    }
    suites = ET.Element("testsuites", {"name": "limitaudit", **tally})
    suite = ET.SubElement(suites, "testsuite", {"name": "limitaudit audit", **tally})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("dump", " ".join(dump)), ("limitaudit", __version__)):
        ET.SubElement(properties, "property", name=name, value=value)
    for cause in CAUSES:
        rows = result.zeroings.filter(pl.col("cause") == cause)
        _case(suite, "cause", cause, f"{counts[cause]:,} zeroing(s)", hits, _rows(rows))
    for kind in FINDING_KINDS:
        n = result.finding_counts.get(kind, 0)
        lines = [f.message for f in result.findings if f.kind == kind][:JUNIT_ROWS]
        _case(suite, "finding", kind, f"{n:,} {kind} finding(s)", hits, lines)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _case(
    suite: ET.Element, group: str, name: str, said: str, hits: dict[str, int], lines: list[str]
) -> None:
    """A passing case says its count; a failing one lists its rows, with their evidence."""
    case = ET.SubElement(suite, "testcase", classname=f"limitaudit.{group}", name=name, time="0")
    if name in hits:
        ET.SubElement(case, "failure", message=said, type=name).text = "\n".join(lines)
    else:
        ET.SubElement(case, "system-out").text = said


def _rows(rows: pl.DataFrame) -> list[str]:
    shown = rows.head(JUNIT_ROWS).select("user_id", "zeroed_at", "cause_ref", "evidence")
    lines = [f"{u} {at} {ref}: {why}" for u, at, ref, why in shown.iter_rows()]
    if rows.height > JUNIT_ROWS:
        lines.append(f"… and {rows.height - JUNIT_ROWS:,} more (the audit CSV lists them all)")
    return lines


def summary_json(
    result: AuditResult, failing: set[str], status: int, dump: Sequence[str], seconds: float
) -> str:
    hits = result.failing(failing)
    data: dict[str, Any] = {
        "tool": "limitaudit",
        "version": __version__,
        "dump": list(dump),
        "seconds": round(seconds, 3),
        "exit_status": status,
        "fail_on": sorted(failing),
        "failing": hits,
        "zeroings": result.zeroings.height,
        "by_cause": result.by_cause(),
        "finding_counts": result.finding_counts,
        "accounting": result.accounting,
        "unread": [
            {"kind": u.kind, "files": u.files, "lines": u.lines, "unexplained_zeroings": u.zeroings}
            for u in result.unread
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"
