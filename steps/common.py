"""Helpers shared by the step modules: waiting with deadlines, evidence for
Allure, and reading the engine's findings as a failure message."""

from __future__ import annotations

import json
from typing import Any, Callable

import allure

from facecert.model import Finding


def attach_json(name: str, data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2, default=repr)
    if len(text) > 400_000:
        text = text[:400_000] + "\n… (truncated)"
    allure.attach(text, name=name, attachment_type=allure.attachment_type.JSON)


def waited(what: str, fn: Callable[[], Any]) -> Any:
    """Run a deadline-bound wait; a timeout becomes a failure that says what did not happen."""
    try:
        return fn()
    except TimeoutError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def describe(findings: list[dict[str, Any]] | list[Finding]) -> str:
    lines = []
    for finding in findings:
        item = finding.to_dict() if isinstance(finding, Finding) else finding
        lines.append(f"{item['rule']}: {item['message']}")
    return "\n".join(lines)


def fail_on(findings: list[Any], who: str) -> None:
    if findings:
        rules = sorted({(f.rule if isinstance(f, Finding) else f["rule"]) for f in findings})
        raise AssertionError(f"{who} broke {len(findings)} rule(s): {', '.join(rules)}\n{describe(findings)}")


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
