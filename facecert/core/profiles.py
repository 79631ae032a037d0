"""Profiles: severity overrides read from ``schemas/profiles/<name>.yaml``.

``strict`` is the document with its errata resolved (no overrides); ``field``
turns the departures real devices and servers are known to make into
warnings. The overrides are data; this module only matches them.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from facecert.core.contract import schemas_dir
from facecert.core.model import Finding, Severity

PROFILES = ("strict", "field")


@dataclass
class Context:
    """What a profile override may look at besides the finding itself."""

    schema: str = ""
    body: Any = None  # the parsed message the finding is about
    optional: bool = False  # the field at the pointer is not required
    empty_body: bool = False


@dataclass
class Override:
    rule: str
    severity: Severity
    note: str
    schema: str = "*"
    pointer: str = "*"
    when: dict[str, Any] = field(default_factory=dict)

    def matches(self, finding: Finding, ctx: Context) -> bool:
        if finding.rule != self.rule or not fnmatch.fnmatchcase(ctx.schema or "", self.schema):
            return False
        if not fnmatch.fnmatchcase(finding.pointer or "", self.pointer):
            return False
        return all(_condition(name, want, finding, ctx) for name, want in self.when.items())


def _condition(name: str, want: Any, finding: Finding, ctx: Context) -> bool:
    if name == "value_is_null":
        return (finding.actual is None) == bool(want) and finding.rule == "MSG-TYPE"
    if name == "value_type":
        return type(finding.actual).__name__ == {"string": "str", "integer": "int", "number": "float"}.get(want, want)
    if name == "optional":
        return ctx.optional == bool(want)
    if name == "sibling_present":
        return isinstance(ctx.body, dict) and want in ctx.body
    if name == "sibling_absent":
        return isinstance(ctx.body, dict) and want not in ctx.body
    if name == "empty_body":
        return ctx.empty_body == bool(want)
    raise ValueError(f"profile condition {name!r} is not known")


@dataclass
class Profile:
    name: str
    description: str
    overrides: list[Override]

    def apply(self, finding: Finding, ctx: Context) -> Finding:
        for override in self.overrides:
            if override.matches(finding, ctx):
                finding.severity = override.severity
                finding.note = override.note
                break
        return finding


def load_profile(name: str, root: Path | None = None) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    path = (root or schemas_dir()) / "profiles" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    overrides = [
        Override(
            rule=o["rule"],
            severity=Severity(o["severity"]),
            note=o.get("note", ""),
            schema=o.get("schema", "*"),
            pointer=o.get("pointer", "*"),
            when=o.get("when") or {},
        )
        for o in data.get("overrides") or []
    ]
    return Profile(name=name, description=data.get("description", ""), overrides=overrides)
