"""Run a plan (pytest-bdd, in this process, with the live session handed to
pytest as a plugin) and write the report folder: allure-results, JUnit XML,
the JSON summary with its root causes, the HAR and the Allure HTML report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

# the plan's pytest plugins are imported with the runner, before the peers start: importing them (~1 s,
# pytest-bdd's code generation pulls in Mako and Pygments) once the device polls would delay the first scenario
import allure_pytest_bdd.plugin  # noqa: F401
import pytest
import pytest_bdd.plugin  # noqa: F401

from facecert.baseline import compare, rebased_exit_code
from facecert.certify.expectations import Expectation, apply_expectations
from facecert.certify.outputs import finish_allure, root_causes, write_junit
from facecert.certify.plugin import PlanPlugin
from facecert.certify.verdicts import ScenarioRecord, Verdict
from facecert.clicommon import sigterm_interrupts
from facecert.core.captures import write_har
from facecert.core.files import replace_with
from facecert.core.redact import current as current_redactor
from facecert.core.redact import privacy_fields, scrub, scrub_folder
from facecert.core.rules.registry import RULES
from facecert.evidence import SEALS

# what a plan run reads, packaged with facecert (an installed wheel and a checkout alike): the plan
# modules and their step definitions (facecert.steps), the Gherkin features and pytest's settings for a
# plan; nothing of the working directory or of a checkout's pyproject.toml
PACKAGE = Path(str(files("facecert")))
FEATURES = PACKAGE / "features"
PLAN_INI = PACKAGE / "certify" / "plan.ini"
STEPS_PLUGIN = "facecert.steps.plugin"


@dataclass
class PlanOutcome:
    pytest_code: int
    records: list[ScenarioRecord] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        """pytest collected and ran the plan (2: interrupted/usage, 3: internal, 4: bad args)."""
        return self.pytest_code in (0, 1, 5) or bool(self.records)


def run_plan(
    session: Any,
    plan: str,
    report: Path,
    tags: str | None = None,
    progress: Callable[[ScenarioRecord, int, int], None] | None = None,
    capabilities: Any = None,
) -> PlanOutcome:
    results = report / "allure-results"
    args = [
        str(PACKAGE / "steps" / f"plan_{plan}.py"),
        # the package: Allure names each scenario's place by its feature file's path under the rootdir
        "--rootdir",
        str(PACKAGE),
        "-c",
        str(PLAN_INI),
        "-o",
        f"bdd_features_base_dir={FEATURES}",
        "--noconftest",
        "--alluredir",
        str(results),
        "--clean-alluredir",
        "-p",
        "no:cacheprovider",
        "-s",
        "--basetemp",
        str(report / ".pytest"),
        "-p",
        "no:terminal",
        "-W",
        "ignore::pytest.PytestConfigWarning",
        # no assertion rewriting: the steps fail by RuleFailure/ScenarioError, and pytest's rewriting import hook
        # is not thread-safe: a module the reference device's thread imported first (anyio's backend) while a
        # server thread imported too raised "Set changed size during iteration" in it, and the device never polled
        "--assert=plain",
    ]
    if tags:
        args += ["-m", tags]
    # plugins named, not auto-loaded (_PLAN_ENVIRON); the step definitions are one plugin too
    # (no conftest.py is looked for: --noconftest)
    args += ["-p", "pytest_bdd.plugin", "-p", "allure_pytest_bdd.plugin", "-p", "pytest_timeout", "-p", STEPS_PLUGIN]
    plugin = PlanPlugin(session, progress, capabilities)
    with _plan_environ(), sigterm_interrupts(noticed=lambda: setattr(plugin, "interrupted_by", "SIGTERM")):
        code = int(pytest.main(args, plugins=[plugin]))
    plugin.close_interrupted()
    return PlanOutcome(code, plugin.scenarios)


# The plan's pytest is configured by its arguments alone: no plugin auto-loaded (anyio's would warn that
# httpx imported it first), none named by PYTEST_PLUGINS, no option of a PYTEST_ADDOPTS meant for the
# caller's own tests (a CI job that sets it for its suite and then runs `facecert certify`).
_PLAN_ENVIRON = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": None, "PYTEST_PLUGINS": None}


@contextmanager
def _plan_environ() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _PLAN_ENVIRON}
    try:
        for name, value in _PLAN_ENVIRON.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def exit_code(records: list[ScenarioRecord], declarations: list[dict[str, Any]]) -> int:
    """0: nothing failed unexpectedly; 1: the peer failed; 2: only the harness could not run."""
    unexpected = [r for r in records if r.verdict.unexpected]
    if any(d["status"] == "unmatched" for d in declarations):
        return 1
    if not unexpected:
        return 0
    if all(r.verdict is Verdict.ERROR and all(RULES[x].party == "harness" for x in r.rules) for r in unexpected):
        return 2
    return 1


def write_reports(
    report: Path,
    plan: str,
    outcome: PlanOutcome,
    exchanges: list[Any],
    findings: list[dict[str, Any]],
    extra: dict[str, Any],
    html: bool = True,
    expectations: list[Expectation] | None = None,
    judged_with: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    baseline_source: str = "",
) -> dict[str, Any]:
    """Everything a person or a CI job reads afterwards, from one set of scenario records.

    ``findings`` are the engine's findings of the party under test (with ``time`` where known).
    With a ``baseline`` (an earlier summary, facecert.baseline) the exit code counts only what is new."""
    records = outcome.records
    declarations = apply_expectations(records, expectations or [], {f["rule"] for f in findings})
    har = write_har(exchanges, report / HAR, creator=f"facecert certify {plan}", judged_with=judged_with)
    errors_by_rule: dict[str, int] = {}
    for finding in findings:
        if finding.get("severity") == "error":
            errors_by_rule[finding["rule"]] = errors_by_rule.get(finding["rule"], 0) + 1
    code = exit_code(records, declarations)
    certified = (
        bool(records)
        and all(r.verdict in (Verdict.PASS, Verdict.NOT_APPLICABLE) for r in records)
        and not any(d["status"] == "unmatched" for d in declarations)
    )
    summary = {
        "plan": plan,
        "verdict": "certified" if certified else "not certified",
        "exit_code": code,
        "counts": {v.value: sum(1 for r in records if r.verdict is v) for v in Verdict},
        "root_causes": root_causes(records, findings),
        "scenarios": [r.to_dict() for r in records],
        "expectations": declarations,
        "errors_by_rule": errors_by_rule,
        "findings": findings,
        "har": str(har),
        "judged_with": judged_with,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    if baseline is not None:
        comparison = compare(baseline, summary, source=baseline_source)
        summary["baseline"] = comparison.to_dict()
        stale = any(d["status"] == "unmatched" for d in declarations) or any(
            r.verdict is Verdict.UNEXPECTED_PASS for r in records
        )
        summary["exit_code"] = rebased_exit_code(code, comparison, stale)
    write_junit(report / JUNIT, f"facecert.{plan}", records)
    results = report / "allure-results"
    if results.is_dir():
        finish_allure(
            results,
            records,
            {
                "plan": plan,
                "verdict": summary["verdict"],
                **(judged_with or {}),
                **{k: v for k, v in extra.items() if isinstance(v, (str, int, float, dict))},
            },
        )
    # no face or name on disk (facecert.core.redact): the HAR was redacted as written; the rest (JUnit, Allure,
    # the session database) loses every value that redaction replaced, before the HTML copies the results
    redactor = current_redactor()
    scrub_folder(report, redactor)
    summary = {**scrub(summary, redactor), **privacy_fields(redactor)}
    summary["html"] = _render_html(report, plan, summary) if html else None
    if not html:
        summary["html_error"] = "not asked for (--no-html)"
    text = json.dumps(summary, ensure_ascii=False, indent=2, default=repr)
    replace_with(report / SUMMARY, lambda out: out.write(text))  # whole or not at all, never a torn summary
    return summary


SUMMARY, JUNIT, HAR = "summary.json", "junit.xml", "session.har"
# what a run leaves in its report folder that a reader takes as its verdict or its evidence
_OUTPUTS = (SUMMARY, JUNIT, HAR, *sorted(SEALS))


def forget_earlier_outputs(report: Path) -> None:
    """An earlier run's summary, JUnit, HAR and seal in the same folder go before this run starts (this run's
    replace them anyway): should this run's not be written (a full disk), no earlier verdict is read as its."""
    for name in _OUTPUTS:
        path = report / name
        if os.path.lexists(path):
            path.unlink()  # a link is removed, not followed


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
