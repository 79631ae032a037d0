"""The JSON summary: counts by severity, by rule and by party, and every finding."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from facecert.core.model import Finding, Severity


def summarize(
    findings: Iterable[Finding], *, exchanges: int, profile: str, version: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    items = list(findings)
    severities = Counter(f.severity.value for f in items)
    errors = [f for f in items if f.severity is Severity.ERROR]
    return {
        "verdict": "pass" if not errors else "fail",
        "profile": profile,
        "protocol_version": version,
        "exchanges": exchanges,
        "counts": {s.value: severities.get(s.value, 0) for s in Severity},
        "errors_by_rule": dict(Counter(f.rule for f in errors).most_common()),
        "errors_by_party": dict(Counter(f.party for f in errors)),
        "findings": [f.to_dict() for f in items],
        **(extra or {}),
    }


def write_summary(summary: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
