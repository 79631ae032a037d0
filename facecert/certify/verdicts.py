"""What one certification scenario ended in, and why.

Every scenario ends in exactly one verdict. A step says which by what it
raises: :class:`RuleFailure` when the peer broke a rule of the registry (a
``fail``), :class:`ScenarioError` when the scenario could not be carried out
(the peer stopped polling or answering, a trigger failed, nobody is at the
console: an ``error``), ``pytest.skip`` for a scenario outside the declared
protocol version or capabilities (``not_applicable``). Anything else a step
raises is a harness error. Expectations (``--expect``) later turn a declared
``fail`` into ``expected_fail``, and a declaration nothing matched into
``unexpected_pass``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from facecert.core.rules.registry import RULES


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    NOT_APPLICABLE = "not_applicable"
    EXPECTED_FAIL = "expected_fail"
    UNEXPECTED_PASS = "unexpected_pass"

    @property
    def allure_status(self) -> str:
        """Allure knows passed / failed / broken / skipped."""
        return _ALLURE[self]

    @property
    def junit_element(self) -> str | None:
        """JUnit knows failure / error / skipped (None: a plain pass)."""
        return _JUNIT[self]

    @property
    def unexpected(self) -> bool:
        """Fails the run's exit code (an expected_fail does not)."""
        return self in (Verdict.FAIL, Verdict.ERROR, Verdict.UNEXPECTED_PASS)


_ALLURE = {
    Verdict.PASS: "passed",
    Verdict.FAIL: "failed",
    Verdict.ERROR: "broken",
    Verdict.NOT_APPLICABLE: "skipped",
    Verdict.EXPECTED_FAIL: "skipped",
    Verdict.UNEXPECTED_PASS: "failed",
}
_JUNIT = {
    Verdict.PASS: None,
    Verdict.FAIL: "failure",
    Verdict.ERROR: "error",
    Verdict.NOT_APPLICABLE: "skipped",
    Verdict.EXPECTED_FAIL: "skipped",
    Verdict.UNEXPECTED_PASS: "failure",
}


def _known(rules: Iterable[str]) -> tuple[str, ...]:
    ordered = tuple(dict.fromkeys(rules))
    unknown = [r for r in ordered if r not in RULES]
    if unknown:  # a verdict must name rules people can look up
        raise ValueError(f"not rules of the registry: {unknown}")
    return ordered


class RuleFailure(AssertionError):
    """The peer under test broke these rules (the scenario's verdict: fail)."""

    def __init__(self, rules: Iterable[str], message: str) -> None:
        self.rules = _known(rules)
        self.text = message
        super().__init__(f"{', '.join(self.rules)}: {message}")


class ScenarioError(Exception):
    """The scenario could not be carried out (verdict: error); ``rules`` say what
    stopped it when a rule did (POLL-STOPPED, ANSWER-MISSING, a harness rule)."""

    def __init__(self, rules: Iterable[str], message: str) -> None:
        self.rules = _known(rules)
        self.text = message
        super().__init__(f"{', '.join(self.rules)}: {message}")


@dataclass
class ScenarioRecord:
    """One scenario as every output shows it (summary, JUnit, console, Allure, matrix)."""

    name: str  # the Gherkin name, outline values filled in (as Allure shows it)
    feature: str
    verdict: Verdict = Verdict.PASS
    rules: tuple[str, ...] = ()
    message: str = ""
    seconds: float = 0.0
    started: float = 0.0
    nodeid: str = ""
    checks: set[str] = field(default_factory=set)  # rules the scenario's steps checked explicitly
    warnings: list[str] = field(default_factory=list)  # warning findings worth a person's look
    trace: str = ""  # traceback of a harness error (--debug)
    expectation: str = ""  # the reason of the declaration that matched (expected_fail / unexpected_pass)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "feature": self.feature,
            "verdict": self.verdict.value,
            "rules": list(self.rules),
            "message": self.message,
            "seconds": round(self.seconds, 3),
        }
        if self.warnings:
            out["warnings"] = self.warnings
        if self.expectation:
            out["expectation"] = self.expectation
        return out
