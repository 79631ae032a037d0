"""Allure results written as plain JSON, one test result per rule of the registry.

The layout is Allure 2's result format (``<uuid>-result.json`` plus
attachments), which both Allure 2 and Allure 3 read. One result per rule keeps
the same names from run to run (``historyId`` is the rule id), exactly like
the JUnit report, so trends line up across sessions.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from pathlib import Path

from facecert.core.files import replace_with
from facecert.core.jsonsafe import dumps_strict
from facecert.core.model import Finding, Severity
from facecert.core.rules.registry import RULES, Rule

SUITE = "facecert.proxy"
_OURS = ("-result.json", "-attachment.txt")


def write_allure(
    findings: Iterable[Finding], folder: Path, *, started: float, stopped: float, environment: dict[str, str]
) -> Path:
    """Replace the previous facecert results in ``folder`` by one result per rule."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.name.endswith(_OURS):
            old.unlink()  # a link is removed, not followed
    items = list(findings)
    for rule in RULES.values():
        _write_result(folder, rule, [f for f in items if f.rule == rule.id], started, stopped)
    lines = [f"{key}={value}" for key, value in environment.items()]
    replace_with(folder / "environment.properties", lambda out: out.write("\n".join(lines) + "\n"))
    return folder


def _write_result(folder: Path, rule: Rule, hits: list[Finding], started: float, stopped: float) -> None:
    errors = [f for f in hits if f.severity is Severity.ERROR]
    test_uuid = str(uuid.uuid4())
    result: dict[str, object] = {
        "uuid": test_uuid,
        "historyId": hashlib.md5(f"{SUITE}.{rule.id}".encode()).hexdigest(),
        "testCaseId": hashlib.md5(rule.id.encode()).hexdigest(),
        "fullName": f"{SUITE}.{rule.id}",
        "titlePath": [SUITE, rule.party],
        "name": f"{rule.id}: {rule.title}",
        "description": f"{rule.title}. Spec: {rule.spec}. Party: {rule.party}. "
        f"Default severity: {rule.severity.value}.",
        "status": "failed" if errors else "passed",
        "stage": "finished",
        "start": int(started * 1000),
        "stop": int(stopped * 1000),
        "labels": [
            {"name": "suite", "value": SUITE},
            {"name": "feature", "value": rule.party},
            {"name": "severity", "value": "critical" if rule.severity is Severity.ERROR else "minor"},
            {"name": "tag", "value": rule.spec},
        ],
        "parameters": [],
        "steps": [],
        "attachments": [],
    }
    if errors:
        result["statusDetails"] = {
            "message": f"{len(errors)} violation(s); first: {errors[0].message}"[:1000],
            "trace": "\n".join(f.line() for f in errors[:200]),
        }
    if hits:
        source = f"{test_uuid}-attachment.txt"
        replace_with(folder / source, lambda out: out.write("\n".join(f.line() for f in hits)))
        result["attachments"] = [{"name": f"findings ({len(hits)})", "source": source, "type": "text/plain"}]
    replace_with(folder / f"{test_uuid}-result.json", lambda out: out.write(dumps_strict(result)))
