"""The outputs of a certification run that are built from the scenario records:
root causes, JUnit XML, and the finishing touches on Allure's results.

One record per scenario feeds all of them, so every output shows the same
names (the Gherkin scenario, outline values filled in, under its feature),
the same verdicts and the same rule ids.
"""

from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from facecert import __version__
from facecert.certify.verdicts import ScenarioRecord, Verdict
from facecert.core.rules.registry import RULES

BLOCKING = (Verdict.FAIL, Verdict.ERROR, Verdict.EXPECTED_FAIL)
FIXTURES = frozenset({"cert", "scn"})  # step arguments that are ours, not words a person wrote


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def root_causes(records: list[ScenarioRecord], findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per rule that failed or blocked scenarios, most scenarios first.

    ``findings`` are the engine's findings of the party under test (dicts with ``rule``,
    ``exchange`` and, where known, ``time``); a plan rule (a step's check) has none, so
    its count and first occurrence come from the scenarios themselves."""
    scenarios: dict[str, list[ScenarioRecord]] = {}
    for record in records:
        if record.verdict in BLOCKING:
            for rule in record.rules:
                scenarios.setdefault(rule, []).append(record)
    causes: list[dict[str, Any]] = []
    for rule, hit in scenarios.items():
        found = [f for f in findings if f.get("rule") == rule]
        timed = sorted(found, key=lambda f: (f.get("time") is None, f.get("time") or 0.0, f.get("exchange", -1)))
        if timed:
            first = {"exchange": timed[0].get("exchange"), "time": iso(timed[0].get("time"))}
        else:
            first = {"exchange": None, "time": iso(min(r.started for r in hit))}
        party = found[0].get("party") if found else RULES[rule].party  # "sender" rules: who sent it
        causes.append(
            {
                "rule": rule,
                "party": party,
                "title": RULES[rule].title,
                "count": len(found) or len(hit),
                "first": first,
                "scenarios": [r.name for r in hit],
                "verdicts": sorted({r.verdict.value for r in hit}),
            }
        )
    causes.sort(key=lambda c: (-len(c["scenarios"]), c["first"]["time"] or ""))
    return causes


def write_junit(path: Path, suite: str, records: list[ScenarioRecord]) -> Path:
    """testcase name = the scenario as Allure shows it, classname = its feature."""
    root = ET.Element("testsuites")
    counts = {
        kind: sum(1 for r in records if r.verdict.junit_element == kind) for kind in ("failure", "error", "skipped")
    }
    node = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(records)),
        failures=str(counts["failure"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
        time=f"{sum(r.seconds for r in records):.3f}",
        timestamp=iso(time.time()) or "",
    )
    for record in records:
        case = ET.SubElement(node, "testcase", name=record.name, classname=record.feature, time=f"{record.seconds:.3f}")
        if record.rules:
            ET.SubElement(case, "properties").extend(
                ET.Element("property", name="rule", value=rule) for rule in record.rules
            )
        element = record.verdict.junit_element
        if element is not None:
            head = f"{record.verdict.value}: {', '.join(record.rules)}" if record.rules else record.verdict.value
            detail = ET.SubElement(
                case,
                element,
                message=f"{head}: {record.message.splitlines()[0] if record.message else ''}",
                type=record.verdict.value,
            )
            detail.text = record.message + (f"\n\nexpected failure: {record.expectation}" if record.expectation else "")
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return path


def finish_allure(results: Path, records: list[ScenarioRecord], environment: dict[str, Any]) -> None:
    """Give Allure our verdicts (expected_fail / unexpected_pass are ours), group failures
    by rule (categories), tree by feature name, and drop fixture objects from the steps."""
    by_name = {(r.feature, r.name): r for r in records}
    shown: set[tuple[str, str]] = set()
    for path in results.glob("*-result.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        title = data.get("titlePath") or []
        key = (title[-1] if title else "", data.get("name", ""))
        record = by_name.get(key)
        if record is not None:
            shown.add(key)
            _restate(data, record)
        data["titlePath"] = title[-1:]
        _drop_fixtures(data)
        _fix_mime(data)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    for key, record in by_name.items():
        if key not in shown:  # never started (an interrupted run): Allure lists it too, as the summary does
            _write_unstarted(results, record)
    rules = sorted({rule for r in records for rule in r.rules})
    categories = [
        {
            "name": f"{rule}: {RULES[rule].title}",
            "messageRegex": f"(?s).*\\b{rule}\\b.*",
            "matchedStatuses": ["failed", "broken"],
        }
        for rule in rules
    ]
    (results / "categories.json").write_text(json.dumps(categories, ensure_ascii=False, indent=1), encoding="utf-8")
    lines = [f"{key}={_property(value)}" for key, value in _flat({"harness_version": __version__, **environment})]
    (results / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_unstarted(results: Path, record: ScenarioRecord) -> None:
    """An Allure result for a scenario pytest never started, so the report lists every scenario of the plan."""
    now = int(time.time() * 1000)
    data: dict[str, Any] = {
        "name": record.name,
        "uuid": str(uuid.uuid4()),
        "fullName": f"{record.feature}:{record.name}",
        "start": now,
        "stop": now,
        "stage": "finished",
        "labels": [{"name": "feature", "value": record.feature}, {"name": "framework", "value": "pytest-bdd"}],
        "titlePath": [record.feature],
        "parameters": [],
    }
    _restate(data, record)
    (results / f"{data['uuid']}-result.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _restate(data: dict[str, Any], record: ScenarioRecord) -> None:
    data["status"] = record.verdict.allure_status
    if record.verdict is not Verdict.PASS:
        head = f"{record.verdict.value}: {', '.join(record.rules)}" if record.rules else record.verdict.value
        details = data.get("statusDetails") or {}
        details["message"] = f"{head}: {record.message}" + (
            f"\nexpected failure: {record.expectation}" if record.expectation else ""
        )
        data["statusDetails"] = details
    data.setdefault("labels", []).extend({"name": "tag", "value": rule} for rule in record.rules)


def _drop_fixtures(node: dict[str, Any]) -> None:
    node["parameters"] = [p for p in node.get("parameters", []) if p.get("name") not in FIXTURES]
    for step in node.get("steps", []):
        _drop_fixtures(step)


def _fix_mime(node: dict[str, Any]) -> None:
    """image/jpg (allure's JPG type) is no registered type: browsers and the report want image/jpeg."""
    for attachment in node.get("attachments", []):
        if attachment.get("type") == "image/jpg":
            attachment["type"] = "image/jpeg"
    for step in node.get("steps", []):
        _fix_mime(step)


def _flat(environment: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Key/value pairs of the environment; a mapping (the versions a device declared) becomes
    one line per entry, ``device_versions.software_version=...``."""
    pairs: list[tuple[str, Any]] = []
    for key, value in environment.items():
        if isinstance(value, dict):
            pairs.extend(_flat(value, f"{prefix}{key}."))
        elif value is not None:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def _property(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\\", "\\\\").replace("\n", " ")
