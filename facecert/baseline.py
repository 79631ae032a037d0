"""Baselines: a run judged against an earlier one, so that a CI gate fails only on what is new.

A team adopting facecert on a device or server with known findings cannot fix
them all the day the gate goes in; with ``--baseline PREVIOUS`` the gate stays
green on what PREVIOUS already had and turns red on anything new. PREVIOUS is
an earlier ``summary.json`` (of ``validate``, ``certify`` or ``proxy``), a
report folder holding one, or a file written with ``--write-baseline``.

What is compared (pure: summaries in, a comparison out):

- **findings** of severity error, keyed by (rule, party, endpoint, JSON pointer):
  the same rule broken again at the same place is the same finding, whatever
  exchange or message it came in; the counts and messages may differ.
- **failing scenarios** (certify: verdict ``fail`` or ``error``), keyed by
  (feature, scenario, rule): a scenario that passed in the baseline and fails
  now is new, and so is a rule a still-failing scenario did not fail on before.

A key in the current run and not in the baseline is ``new`` (it fails the
run), one in both is ``unchanged``, one only in the baseline is ``fixed``. The
baseline is a state, not a history: after a green run saves itself
(``--write-baseline``), a fixed finding is no longer in it, so if it comes
back it is new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "facecert-baseline/1"
SUMMARY = "summary.json"
FAILING_VERDICTS = frozenset({"fail", "error"})
FINDING_KEY = ("rule", "party", "endpoint", "pointer")
SCENARIO_KEY = ("feature", "name", "rule")


class BaselineError(ValueError):
    """The baseline cannot be used (missing, not JSON, not a facecert summary): exit code 2."""


@dataclass(frozen=True)
class Item:
    """One comparable thing of a run: an error finding or a (failing scenario, rule) pair."""

    kind: str  # "finding" or "scenario"
    key: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        names = FINDING_KEY if self.kind == "finding" else SCENARIO_KEY
        return {"kind": self.kind, **dict(zip(names, self.key, strict=True)), **self.detail}

    def line(self) -> str:
        """One printable line for the console."""
        if self.kind == "finding":
            rule, party, endpoint, pointer = self.key
            where = " ".join(x for x in (endpoint, pointer) if x)
            message = self.detail.get("message", "")
            files = self.detail.get("files") or []
            seen = f" [in {', '.join(files[:2])}{', …' if len(files) > 2 else ''}]" if files else ""
            return f"{rule} ({party or '?'}) {where}: {message}{seen}".strip()
        feature, name, rule = self.key
        return f"{feature} › {name}: {rule or self.detail.get('verdict', 'fail')}"


@dataclass
class Comparison:
    """What changed between a baseline and the current run."""

    new: list[Item]
    fixed: list[Item]
    unchanged: list[Item]
    source: str = ""  # where the baseline came from (for the report)

    @property
    def failed(self) -> bool:
        """The gate: anything new fails the run."""
        return bool(self.new)

    def counts(self) -> dict[str, int]:
        return {"new": len(self.new), "fixed": len(self.fixed), "unchanged": len(self.unchanged)}

    def to_dict(self) -> dict[str, Any]:
        """The ``baseline`` block of summary.json."""
        return {
            "source": self.source,
            "counts": self.counts(),
            "failed": self.failed,
            "new": [i.to_dict() for i in self.new],
            "fixed": [i.to_dict() for i in self.fixed],
            "unchanged": [i.to_dict() for i in self.unchanged],
        }


def items(summary: dict[str, Any]) -> dict[Item, Item]:
    """The comparable items of a summary (or of a baseline file: the same keys)."""
    found: dict[Item, Item] = {}
    for finding in summary.get("findings") or []:
        if not isinstance(finding, dict) or finding.get("severity", "error") != "error":
            continue
        key = tuple(str(finding.get(name) or "") for name in FINDING_KEY)
        item = Item("finding", key, {"message": str(finding.get("message", ""))[:300]})
        if item in found:
            found[item].detail["count"] = found[item].detail.get("count", 1) + 1
            _add_file(found[item], finding)
        else:
            item.detail["count"] = 1
            _add_file(item, finding)
            found[item] = item
    for scenario in summary.get("scenarios") or []:
        if not isinstance(scenario, dict) or scenario.get("verdict") not in FAILING_VERDICTS:
            continue
        for rule in scenario.get("rules") or [""]:
            key = (str(scenario.get("feature", "")), str(scenario.get("name", "")), str(rule))
            item = Item("scenario", key, {"verdict": scenario.get("verdict")})
            found.setdefault(item, item)
    return found


def _add_file(item: Item, finding: dict[str, Any]) -> None:
    """A corpus summary says which capture a finding came from: keep a few, to find it again."""
    files = finding.get("files") or ([finding["file"]] if finding.get("file") else [])
    if files:
        known = item.detail.setdefault("files", [])
        known.extend(f for f in files if f not in known and len(known) < 5)


def compare(baseline: dict[str, Any], current: dict[str, Any], source: str = "") -> Comparison:
    """The current run against the baseline (both summaries, or baseline files)."""
    before = items(baseline)
    now = items(current)
    return Comparison(
        new=_sorted(i for i in now if i not in before),
        fixed=_sorted(before[i] for i in before if i not in now),
        unchanged=_sorted(now[i] for i in now if i in before),
        source=source,
    )


def _sorted(found: Iterable[Item]) -> list[Item]:
    return sorted(found, key=lambda i: (i.kind, i.key))


def baseline_document(summary: dict[str, Any], command: str) -> dict[str, Any]:
    """The state to save with ``--write-baseline``: only what a later comparison reads
    (much smaller than the summary, stable to review in a pull request)."""
    state = items(summary)
    findings = [
        {**dict(zip(FINDING_KEY, i.key, strict=True)), "severity": "error", **i.detail}
        for i in _sorted(state)
        if i.kind == "finding"
    ]
    scenarios: dict[tuple[str, str], dict[str, Any]] = {}
    for item in _sorted(state):
        if item.kind == "scenario":
            feature, name, rule = item.key
            entry = scenarios.setdefault(
                (feature, name), {"feature": feature, "name": name, "verdict": item.detail.get("verdict"), "rules": []}
            )
            if rule:
                entry["rules"].append(rule)
    return {
        "format": FORMAT,
        "command": command,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "verdict": summary.get("verdict"),
        "protocol_version": summary.get("protocol_version")
        or (summary.get("judged_with") or {}).get("protocol_version"),
        "findings": findings,
        "scenarios": list(scenarios.values()),
    }


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier summary.json, a report folder holding one, or a saved baseline."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"--baseline {path}: no such file") from None
    except OSError as exc:
        raise BaselineError(f"--baseline {path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise BaselineError(f"--baseline {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not ({"findings", "scenarios"} & data.keys()):
        raise BaselineError(f"--baseline {path}: not a facecert summary.json or baseline (no findings, no scenarios)")
    return data


def write_baseline(summary: dict[str, Any], path: Path, command: str) -> Path:
    """Save the current state; never through a symlink (a fresh file renamed into place)."""
    from facecert.core.files import replace_with

    document = baseline_document(summary, command)
    return replace_with(
        Path(path), lambda out: out.write(json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False) + "\n")
    )


def rebased_exit_code(code: int, comparison: Comparison, stale_declarations: bool = False) -> int:
    """A certification's exit code against a baseline: 2 (only the harness could not run) stays 2;
    otherwise 1 for anything new, or for a declared failure (``--expect``) nothing matched, which
    fails with or without a baseline; else 0."""
    if code == 2:
        return 2
    return 1 if comparison.failed or stale_declarations else 0


def print_comparison(console: Any, block: dict[str, Any], limit: int = 50) -> None:
    """The console block, from the summary's ``baseline`` block: counts, then every new item
    (what fails the run) and every fixed one."""
    from rich.text import Text

    counts = block["counts"]
    head = Text(f"Baseline {block.get('source', '')}: ", style="bold")
    head.append(f"{counts['new']} new", style="bold red" if counts["new"] else "bold green")
    head.append(f", {counts['fixed']} fixed, {counts['unchanged']} unchanged")
    console.print(head, soft_wrap=True)
    for label, style in (("new", "red"), ("fixed", "green")):
        found = [_item(entry) for entry in block.get(label) or []]
        for item in found[:limit]:
            console.print(Text(f"  {label:5} {item.line()}", style=style), soft_wrap=True)
        if len(found) > limit:
            console.print(Text(f"  … {len(found) - limit} more {label} (see summary.json)"), soft_wrap=True)


def _item(entry: dict[str, Any]) -> Item:
    """An item back from its ``to_dict`` form."""
    names = FINDING_KEY if entry.get("kind") == "finding" else SCENARIO_KEY
    detail = {k: v for k, v in entry.items() if k not in names and k != "kind"}
    return Item(str(entry.get("kind")), tuple(str(entry.get(n) or "") for n in names), detail)
