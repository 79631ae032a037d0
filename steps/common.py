"""Helpers shared by the step modules: evidence for Allure, and failures that
name their rules. A step never asserts bare: it fails with the rule ids behind
what it saw (:func:`fail`, :func:`fail_on`), so every output can group by rule."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NoReturn

import allure

from facecert.certify.verdicts import RuleFailure, ScenarioError
from facecert.core.model import Finding
from facecert.core.redact import current as current_redactor


def attach_json(name: str, data: Any) -> None:
    """Evidence as JSON, without faces or names unless the run keeps personal data (facecert.core.redact)."""
    text = json.dumps(current_redactor().value(data), ensure_ascii=False, indent=2, default=repr)
    if len(text) > 400_000:
        text = text[:400_000] + "\n… (truncated)"
    allure.attach(text, name=name, attachment_type=allure.attachment_type.JSON)


def checks(scn: dict[str, Any], *rules: str) -> None:
    """Record that this scenario checks these rules (expectations match on them)."""
    scn.setdefault("checks", set()).update(rules)


def fail(rules: str | Iterable[str], message: str) -> NoReturn:
    raise RuleFailure([rules] if isinstance(rules, str) else rules, message)


def error(rules: str | Iterable[str], message: str) -> NoReturn:
    raise ScenarioError([rules] if isinstance(rules, str) else rules, message)


def _as_dict(finding: Finding | dict[str, Any]) -> dict[str, Any]:
    return finding.to_dict() if isinstance(finding, Finding) else finding


def describe(findings: Iterable[Finding | dict[str, Any]]) -> str:
    """One line per distinct finding (a repeated one says how often), in first-seen order."""
    lines: dict[str, int] = {}
    for item in map(_as_dict, findings):
        line = f"{item['rule']}: {item['message']}"
        lines[line] = lines.get(line, 0) + 1
    return "\n".join(line if n == 1 else f"{line} (×{n})" for line, n in lines.items())


def rules_of(findings: Iterable[Finding | dict[str, Any]]) -> list[str]:
    """Rule ids by how often they were found, most first (the likely root cause leads)."""
    counts: dict[str, int] = {}
    for item in map(_as_dict, findings):
        counts[item["rule"]] = counts.get(item["rule"], 0) + 1
    return sorted(counts, key=lambda rule: -counts[rule])


def fail_on(findings: list[Any], who: str) -> None:
    """Fail with the engine's findings, if any: their rules are the verdict's rules."""
    if findings:
        fail(rules_of(findings), f"{who} broke {', '.join(rules_of(findings))}:\n{describe(findings)}")


def warn_on(scn: dict[str, Any], findings: Iterable[Finding | dict[str, Any]]) -> None:
    """Warnings do not fail a scenario, but a person should read them (they say what to check)."""
    scn.setdefault("warnings", []).extend(f"{f['rule']}: {f['message']}" for f in map(_as_dict, findings))


def shorten(exchange: dict[str, Any]) -> dict[str, Any]:
    """An exchange for evidence, with base64 images cut down."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > 200:
            return value[:60] + f"… ({len(value)} chars)"
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    return cut(exchange)
