"""The verdict machinery without running a plan: what a step raises becomes one
verdict with its rules; expectations both ways; root causes ordered by reach;
JUnit and exit codes from the same records."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from facecert.certify.expectations import ANY_RULE, ExpectationError, apply_expectations, load_expectations
from facecert.certify.outputs import root_causes, write_junit
from facecert.certify.plugin import classify
from facecert.certify.runner import exit_code
from facecert.certify.verdicts import RuleFailure, ScenarioError, ScenarioRecord, Verdict


def record(
    name: str,
    verdict: Verdict = Verdict.PASS,
    rules: tuple[str, ...] = (),
    checks: set[str] | None = None,
    started: float = 0.0,
) -> ScenarioRecord:
    return ScenarioRecord(name=name, feature="F", verdict=verdict, rules=rules, checks=checks or set(), started=started)


def test_what_a_step_raises_is_the_verdict() -> None:
    cases = [
        (RuleFailure(["CADENCE-IDLE"], "late"), Verdict.FAIL, ("CADENCE-IDLE",)),
        (ScenarioError(["POLL-STOPPED"], "gone"), Verdict.ERROR, ("POLL-STOPPED",)),
        (AssertionError("a bare assert"), Verdict.ERROR, ("HARNESS-ERROR",)),
        (KeyError("boom"), Verdict.ERROR, ("HARNESS-ERROR",)),
    ]
    for exc, verdict, rules in cases:
        rec = record("s")
        classify(rec, exc)
        assert (rec.verdict, rec.rules) == (verdict, rules)
    rec = record("s")
    classify(rec, KeyError("boom"))
    assert "KeyError" in rec.trace  # shown with --debug


def test_a_verdict_names_only_registry_rules() -> None:
    with pytest.raises(ValueError, match="NO-SUCH"):
        RuleFailure(["NO-SUCH"], "x")


def test_expectations_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "expected_failures:\n  - rule: CADENCE-IDLE\n    reason: old firmware\n"
        "  - rule: GPS-CADENCE\n    reason: fixed since\n"
    )
    declared = load_expectations(path)
    records = [
        record("idle", Verdict.FAIL, ("CADENCE-IDLE",)),
        record("both", Verdict.FAIL, ("CADENCE-IDLE", "MSG-REQUIRED")),  # not all its rules declared
        record("gps", checks={"GPS-CADENCE"}),
        record("other", checks={ANY_RULE}),
    ]
    report = apply_expectations(records, declared, fired={"CADENCE-IDLE", "MSG-REQUIRED"})
    verdicts = {r.name: r.verdict for r in records}
    assert verdicts == {
        "idle": Verdict.EXPECTED_FAIL,
        "both": Verdict.FAIL,
        "gps": Verdict.UNEXPECTED_PASS,
        "other": Verdict.PASS,
    }  # explicit checkers first
    assert [d["status"] for d in report] == ["matched", "unmatched"]
    assert exit_code(records, report) == 1


def test_expected_failures_alone_exit_0() -> None:
    records = [record("idle", Verdict.EXPECTED_FAIL, ("CADENCE-IDLE",)), record("ok")]
    assert exit_code(records, [{"status": "matched"}]) == 0
    assert exit_code([record("t", Verdict.ERROR, ("HARNESS-TRIGGER",))], []) == 2
    assert exit_code([record("t", Verdict.ERROR, ("POLL-STOPPED",))], []) == 1


@pytest.mark.parametrize(
    "text",
    [
        "nothing: 1",
        "expected_failures:\n  - rule: CADENCE-IDLE\n",
        "expected_failures:\n  - {rule: CADENCE-IDLE, scenario: x, reason: r}\n",
    ],
)
def test_unusable_expectations_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(ExpectationError):
        load_expectations(path)


def test_root_causes_by_scenarios_affected() -> None:
    records = [
        record("a", Verdict.FAIL, ("MSG-REQUIRED",), started=5),
        record("b", Verdict.FAIL, ("MSG-REQUIRED",)),
        record("c", Verdict.ERROR, ("POLL-STOPPED",), started=9),
        record("d"),
    ]
    findings = [
        {"rule": "MSG-REQUIRED", "party": "device", "exchange": 3, "time": 100.0},
        {"rule": "MSG-REQUIRED", "party": "device", "exchange": 1, "time": 50.0},
    ]
    causes = root_causes(records, findings)
    assert [c["rule"] for c in causes] == ["MSG-REQUIRED", "POLL-STOPPED"]
    assert causes[0]["count"] == 2 and causes[0]["first"]["exchange"] == 1 and causes[0]["party"] == "device"
    assert causes[1]["count"] == 1 and causes[1]["first"]["exchange"] is None  # a plan rule: from its scenario


def test_junit_maps_verdicts(tmp_path: Path) -> None:
    records = [
        record("p"),
        record("f", Verdict.FAIL, ("CADENCE-IDLE",)),
        record("e", Verdict.ERROR, ("POLL-STOPPED",)),
        record("x", Verdict.EXPECTED_FAIL, ("CADENCE-IDLE",)),
        record("n", Verdict.NOT_APPLICABLE),
        record("u", Verdict.UNEXPECTED_PASS, ("GPS-CADENCE",)),
    ]
    root = ET.parse(write_junit(tmp_path / "j.xml", "suite", records)).getroot()
    kinds = {c.get("name"): [child.tag for child in c if child.tag != "properties"] for c in root.iter("testcase")}
    assert kinds == {"p": [], "f": ["failure"], "e": ["error"], "x": ["skipped"], "n": ["skipped"], "u": ["failure"]}
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("2", "1", "2")
