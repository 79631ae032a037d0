"""Run a plan (pytest-bdd, in this process so steps reach the live peers)
and write the report folder: allure-results, JUnit XML, JSON summary, HAR,
and the Allure HTML report."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from facecert.captures import write_har
from facecert.certify import context

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PlanOutcome:
    exit_code: int
    scenarios: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and bool(self.scenarios) and all(s["outcome"] == "passed" for s in self.scenarios)


def run_plan(session: Any, plan: str, report: Path, tags: str | None = None, quiet: bool = False) -> PlanOutcome:
    results, junit = report / "allure-results", report / "junit.xml"
    args = [str(ROOT / "steps" / f"plan_{plan}.py"), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
            "--alluredir", str(results), "--clean-alluredir", "--junitxml", str(junit),
            "-o", "junit_suite_name=facecert." + plan, "-p", "no:cacheprovider", "-s",
            "--basetemp", str(report / ".pytest"), "-q" if not quiet else "-qq"]
    if tags:
        args += ["-m", tags]
    # plugins named, not auto-loaded: anyio's would warn that httpx imported it first
    args += ["-p", "pytest_bdd.plugin", "-p", "allure_pytest_bdd.plugin", "-p", "pytest_timeout"]
    context.install(session)
    autoload = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        code = int(pytest.main(args))
    finally:
        context.clear()
        if autoload is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = autoload
    return PlanOutcome(code, read_junit(junit))


def read_junit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    scenarios = []
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        problem = failure if failure is not None else error
        outcome = "failed" if problem is not None else "skipped" if skipped is not None else "passed"
        scenarios.append({"name": case.get("name", ""), "outcome": outcome, "seconds": float(case.get("time") or 0),
                          "message": (problem.get("message") or "")[:2000] if problem is not None else ""})
    return scenarios


def write_reports(report: Path, plan: str, outcome: PlanOutcome, exchanges: list[Any], findings: list[dict[str, Any]],
                  extra: dict[str, Any], html: bool = True) -> dict[str, Any]:
    """JSON summary, HAR and HTML next to the allure-results and JUnit pytest wrote."""
    har = write_har(exchanges, report / "session.har", creator=f"facecert certify {plan}")
    errors = [f for f in findings if f.get("severity") == "error"]
    rules: dict[str, int] = {}
    for finding in errors:
        rules[finding["rule"]] = rules.get(finding["rule"], 0) + 1
    summary = {
        "plan": plan,
        "verdict": "certified" if outcome.passed else "not certified",
        "scenarios": outcome.scenarios,
        "counts": {k: sum(1 for s in outcome.scenarios if s["outcome"] == k) for k in ("passed", "failed", "skipped")},
        "errors_by_rule": rules,
        "findings": findings,
        "har": str(har),
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    summary["html"] = _render_html(report, plan, summary) if html else None
    if not html:
        summary["html_error"] = "not asked for (--no-html)"
    (report / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=repr), encoding="utf-8")
    return summary


def _render_html(report: Path, plan: str, summary: dict[str, Any]) -> str | None:
    try:
        from facecert.reports.allure_html import render_report
    except ImportError:
        summary["html_error"] = "the HTML report renderer is not installed"
        return None
    try:
        return str(render_report(report / "allure-results", report / "html", title=f"facecert {plan} certification"))
    except Exception as exc:  # noqa: BLE001 - the verdict stands without the HTML; say why it is missing
        summary["html_error"] = f"{type(exc).__name__}: {exc}"
        return None
