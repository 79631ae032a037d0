"""Declared known failures (``--expect FILE``), so a team can certify what it
ships while a defect is being fixed, without hiding a new one.

    expected_failures:
      - rule: CADENCE-IDLE            # or: scenario: "Idle back-off is 20 seconds"
        reason: "firmware 1.2 waits 10 s; fixed in 1.3"

A failed scenario all of whose rules are declared (or whose name is) becomes
``expected_fail``. A declaration nothing matches makes the scenarios it names
(its scenario; for a rule, the scenarios that checked that rule) an
``unexpected_pass``, which fails the run: a fixed defect must be undeclared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from facecert.certify.verdicts import ScenarioRecord, Verdict
from facecert.core.rules.registry import RULES

ANY_RULE = "*"  # in a scenario's checks: it checked every engine rule of the party under test ("broke no rule")


class ExpectationError(ValueError):
    """An expectations file that cannot be used."""


@dataclass(frozen=True)
class Expectation:
    reason: str
    rule: str | None = None
    scenario: str | None = None

    @property
    def label(self) -> str:
        return f"rule {self.rule}" if self.rule else f"scenario {self.scenario!r}"


def load_expectations(path: Path) -> list[Expectation]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExpectationError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ExpectationError(f"{path}: not YAML ({exc})") from None
    items = data.get("expected_failures") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ExpectationError(f"{path}: needs an `expected_failures:` list of {{rule|scenario, reason}}")
    out = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("reason"), str) or not item["reason"].strip():
            raise ExpectationError(f"{path}: entry {number} needs a `reason:` (why the failure is expected)")
        rule, scenario = item.get("rule"), item.get("scenario")
        if (rule is None) == (scenario is None):
            raise ExpectationError(f"{path}: entry {number} names exactly one of `rule:` or `scenario:`")
        if rule is not None and rule not in RULES:
            raise ExpectationError(f"{path}: entry {number}: {rule!r} is not a rule id (see `facecert rules`)")
        out.append(Expectation(item["reason"].strip(), rule=rule, scenario=scenario))
    return out


def apply_expectations(
    records: list[ScenarioRecord], expectations: list[Expectation], fired: set[str]
) -> list[dict[str, Any]]:
    """Mark expected failures and unexpected passes in place; ``fired`` are the rule ids the
    engine found anywhere in the run. Returns each declaration with what it matched."""
    report = []
    for expectation in expectations:
        matched = [r for r in records if r.verdict is Verdict.FAIL and _covers(expectation, r, expectations)]
        for record in matched:
            record.verdict = Verdict.EXPECTED_FAIL
            record.expectation = expectation.reason
        already = [r for r in records if r.verdict is Verdict.EXPECTED_FAIL and _names(expectation, r)]
        status = "matched" if already else "unmatched"
        if not already and (expectation.scenario is not None or expectation.rule not in fired):
            for record in _checkers(expectation, records):
                record.verdict = Verdict.UNEXPECTED_PASS
                record.rules = (expectation.rule,) if expectation.rule else record.rules
                record.expectation = expectation.reason
                record.message = (
                    f"declared as an expected failure ({expectation.label}: {expectation.reason}) "
                    "but it did not fail: remove the declaration"
                )
        report.append(
            {
                "declaration": expectation.label,
                "reason": expectation.reason,
                "status": status,
                "scenarios": [r.name for r in already],
            }
        )
    return report


def _names(expectation: Expectation, record: ScenarioRecord) -> bool:
    if expectation.scenario is not None:
        return record.name == expectation.scenario
    return expectation.rule in record.rules


def _covers(expectation: Expectation, record: ScenarioRecord, all_of: list[Expectation]) -> bool:
    """A failure is expected when its scenario is declared, or every rule behind it is."""
    if expectation.scenario is not None:
        return record.name == expectation.scenario
    declared = {e.rule for e in all_of if e.rule}
    return expectation.rule in record.rules and set(record.rules) <= declared


def _checkers(expectation: Expectation, records: list[ScenarioRecord]) -> list[ScenarioRecord]:
    """The passed scenarios a declaration that nothing matched is about."""
    passed = [r for r in records if r.verdict is Verdict.PASS]
    if expectation.scenario is not None:
        return [r for r in passed if r.name == expectation.scenario]
    explicit = [r for r in passed if expectation.rule in r.checks]
    return explicit or [r for r in passed if ANY_RULE in r.checks]
