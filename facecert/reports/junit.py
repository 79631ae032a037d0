"""JUnit XML for CI gates: one test case per rule of the registry, failed when
the rule produced errors, so a CI dashboard tracks the same names over time."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from facecert.core.model import Finding, Severity
from facecert.core.rules.registry import RULES


def write_junit(findings: Iterable[Finding], path: Path, suite: str = "facecert") -> Path:
    items = list(findings)
    errors = [f for f in items if f.severity is Severity.ERROR]
    root = ET.Element("testsuites")
    tests = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(RULES)),
        failures=str(len({f.rule for f in errors})),
        errors="0",
        skipped="0",
    )
    for rule in RULES.values():
        case = ET.SubElement(tests, "testcase", classname=f"{suite}.{rule.party}", name=f"{rule.id}: {rule.title}")
        hits = [f for f in errors if f.rule == rule.id]
        if hits:
            failure = ET.SubElement(
                case, "failure", message=f"{len(hits)} violation(s); first: {hits[0].message}"[:500]
            )
            failure.text = "\n".join(f.line() for f in hits[:200])
        notes = [f for f in items if f.rule == rule.id and f.severity is not Severity.ERROR]
        if notes:
            ET.SubElement(case, "system-out").text = "\n".join(f.line() for f in notes[:200])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
