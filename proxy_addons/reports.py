"""The proxy's reports: the same files the suites write, plus a HAR of the session.

Written at shutdown (final) and on demand (``facecert.report``). The HAR comes
from facecert's own writer, fed with the exchanges the addon saw, because
mitmproxy's ``hardump`` turns binary request bodies into lossy text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from facecert.captures import write_har
from facecert.reports import summarize, write_junit, write_summary

from proxy_addons.allure import write_allure
from proxy_addons.session import ProxySession

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


def paths_in(folder: Path) -> ReportPaths:
    folder = Path(folder)
    return ReportPaths(folder, folder / SUMMARY, folder / JUNIT, folder / HAR, folder / ALLURE)


def write_reports(session: ProxySession, folder: Path) -> ReportPaths:
    """Write every report of the session as it stands (call ``session.finish()`` first for the final one)."""
    paths = paths_in(folder)
    paths.folder.mkdir(parents=True, exist_ok=True)
    findings = list(session.engine.findings)
    config = session.options
    write_har(session.exchanges, paths.har, creator="facecert-proxy")
    extra = {**session.stats(), "har": str(paths.har)}
    summary = summarize(findings, exchanges=len(session.exchanges), profile=config.profile,
                        version=session.version, extra=extra)
    write_summary(summary, paths.summary)
    write_junit(findings, paths.junit, suite="facecert.proxy")
    write_allure(findings, paths.allure, started=session.started, stopped=time.time(),
                 environment={"profile": config.profile, "protocol_version": session.version,
                              "time_scale": str(config.time_scale), "tolerance": str(config.tolerance),
                              "flows": str(len(session.exchanges))})
    return paths
