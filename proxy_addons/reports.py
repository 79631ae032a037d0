"""The proxy's reports: the same files the suites write, plus a HAR of the session.

Written at shutdown (final, then the evidence manifest ``manifest.json`` over
them all) and on demand (``facecert.report``). Each report is written on its
own, so one that fails (a full disk, a finding nobody foresaw) leaves the
others written; the summary, JUnit and Allure results come first because they
are cheap and they are what CI reads, the HAR last because it is assembled
from the on-disk record and grows with the session.
Every text is cleaned first (:func:`proxy_addons.strict.clean_finding`), and
the JSON files are written to a temporary file and renamed, never through a
symlink, so a report is whole or absent, never empty.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facecert.core.files import replace_with
from facecert.core.jsonsafe import dumps_strict, loads_strict
from facecert.core.model import Finding
from facecert.evidence import predicate_from_summary, write_manifest
from facecert.proxy_addons.allure import write_allure
from facecert.proxy_addons.record import write_har
from facecert.proxy_addons.session import ProxySession
from facecert.proxy_addons.strict import clean_finding
from facecert.reports import summarize, write_junit

SUMMARY = "summary.json"
JUNIT = "junit.xml"
HAR = "session.har"
ALLURE = "allure-results"


@dataclass(frozen=True)
class ReportPaths:
    folder: Path
    summary: Path
    junit: Path
    har: Path
    allure: Path
    summary_written: bool = True  # False: the summary could not be written (a full disk), so no verdict to read


def paths_in(folder: Path) -> ReportPaths:
    folder = Path(folder)
    return ReportPaths(folder, folder / SUMMARY, folder / JUNIT, folder / HAR, folder / ALLURE)


def write_reports(session: ProxySession, folder: Path) -> ReportPaths:
    """Write every report of the session as it stands (call ``session.finish()`` first for the final one)."""
    paths = paths_in(folder)
    paths.folder.mkdir(parents=True, exist_ok=True)
    findings = _contained(session, "cleaning the findings", lambda: [clean_finding(f) for f in session.engine.findings])
    if findings is None:
        findings = []
    config = session.options
    record = session.record
    upto = record.size() if record is not None else None
    extra = {**session.stats(), "har": str(paths.har)}
    summary = _contained(
        session,
        "summarizing",
        lambda: summarize(
            findings, exchanges=session.flows, profile=config.profile, version=session.version, extra=extra
        ),
    )
    if summary is None:  # still a summary: CI reads it, and a missing one reads as "no run"
        summary = {
            "verdict": "fail",
            "profile": config.profile,
            "protocol_version": session.version,
            "exchanges": session.flows,
            "counts": {},
            "errors_by_rule": {},
            "errors_by_party": {},
            "findings": [],
            "report_error": "the findings could not be summarized (see addon_error_details)",
            **session.stats(),
        }
    written = bool(
        _contained(
            session,
            f"writing {paths.summary}",
            lambda: replace_with(paths.summary, lambda out: out.write(dumps_strict(summary, indent=2))) or True,
        )
    )
    paths = dataclasses.replace(paths, summary_written=written)
    _contained(session, f"writing {paths.junit}", lambda: _junit(findings, paths.junit))
    _contained(
        session,
        f"writing {paths.allure}",
        lambda: write_allure(
            findings,
            paths.allure,
            started=session.started,
            stopped=time.time(),
            environment={
                "profile": config.profile,
                "protocol_version": session.version,
                "time_scale": str(config.time_scale),
                "tolerance": str(config.tolerance),
                "flows": str(session.flows),
            },
        ),
    )
    if record is not None:
        _contained(
            session,
            f"writing {paths.har}",
            lambda: write_har(
                record.path,
                paths.har,
                creator="facecert-proxy",
                upto=upto,
                judged_with={
                    "profile": config.profile,
                    "protocol_version": session.version,
                    "tolerance": config.tolerance,
                    "time_scale": config.time_scale,
                },
            ),
        )
    return paths


def write_evidence(session: ProxySession, folder: Path) -> Path:
    """The last write at shutdown: ``manifest.json`` over every file of the folder (the record
    closed first), its predicate from the summary just written (:mod:`facecert.evidence`)."""
    summary = loads_strict(paths_in(folder).summary.read_bytes())
    return write_manifest(
        folder, predicate_from_summary(summary, plan="proxy", started=session.started, ended=time.time())
    )


def _contained(session: ProxySession, where: str, work: Callable[[], Any]) -> Any:
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - the other reports must still be written
        session.contain(where, exc)
        return None


def _junit(findings: list[Finding], path: Path) -> None:
    """The suites' JUnit writer takes a path: it writes a fresh temporary one, renamed over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    if os.path.lexists(tmp):
        tmp.unlink()  # stale, or a link planted there
    write_junit(findings, tmp, suite="facecert.proxy")
    os.replace(tmp, path)
