"""The mitmproxy addon: every completed flow goes to the facecert engine.

It only observes. It never touches a request or a response, never intercepts
or kills a flow; it judges a flow when mitmproxy has its answer (or its
error), logs one line per finding, marks and comments the flow for mitmweb,
and writes the suites' reports at shutdown and on ``facecert.report``. Every
exception of ours is contained in :class:`ProxySession` or here, counted and
reported, and the flow passes as it came.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from mitmproxy import command, ctx, exceptions, http

from facecert.captures.flows import flow_to_exchange
from facecert.contract import get_contract
from facecert.engine import Judged
from facecert.model import Finding
from facecert.profiles import PROFILES

from proxy_addons.live import LEVEL, comment_for, log_line, mark_for
from proxy_addons.reports import write_reports
from proxy_addons.session import ProxySession, SessionOptions

log = logging.getLogger("facecert.proxy")

#: options that change how the engine judges; they cannot change once traffic was judged
ENGINE_OPTIONS = ("facecert_profile", "facecert_protocol_version", "facecert_time_scale", "facecert_tolerance",
                  "facecert_check_downloads", "facecert_test_raise")


class FacecertAddon:
    def __init__(self) -> None:
        self.session: ProxySession | None = None
        self.report_dir = Path("facecert-report")
        self._fed: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None

    # ---- mitmproxy lifecycle ---------------------------------------------
    def load(self, loader: Any) -> None:
        loader.add_option("facecert_profile", str, "strict",
                          "facecert: strict (the document with errata resolved) or field (known departures are warnings).",
                          choices=list(PROFILES))
        loader.add_option("facecert_protocol_version", str, "",
                          "facecert: judge as this protocol version (e.g. 1.3); empty: the latest.")
        loader.add_option("facecert_time_scale", float, 1.0,
                          "facecert: protocol intervals are multiplied by this (simulators run at e.g. 0.05).")
        loader.add_option("facecert_tolerance", float, 0.25,
                          "facecert: relative tolerance on the 20 s / 5 s cadence.")
        loader.add_option("facecert_report_dir", str, "facecert-report",
                          "facecert: folder for summary.json, junit.xml, allure-results/ and session.har.")
        loader.add_option("facecert_check_downloads", bool, False,
                          "facecert: the device's downloads pass through this proxy, so a task reported as done "
                          "without fetching its URL is an error (DOWNLOAD-FETCHED).")
        loader.add_option("facecert_test_raise", str, "",
                          "facecert test hook: judging a flow whose path contains this raises (to prove containment).")

    def configure(self, updated: set[str]) -> None:
        if "facecert_report_dir" in updated:
            self.report_dir = Path(ctx.options.facecert_report_dir or "facecert-report")
        if self.session is not None and not updated & set(ENGINE_OPTIONS):
            return
        options = self._session_options()
        if self.session is not None and self.session.exchanges:
            if options != self.session.options:
                raise exceptions.OptionsError("facecert options cannot change once traffic was judged; "
                                              "restart the proxy to judge with other settings")
            return
        self.session = ProxySession(options, on_finding=self._log_finding)

    def running(self) -> None:
        session = self._require()
        log.info("facecert: judging as protocol V%s, profile %s, time scale %g; reports go to %s",
                 session.version, session.options.profile, session.options.time_scale, self.report_dir.resolve())
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def response(self, flow: http.HTTPFlow) -> None:
        self._judge(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._judge(flow)

    def done(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        session = self._require()
        session.finish()
        self._write("final")

    # ---- commands ---------------------------------------------------------
    @command.command("facecert.report")
    def report(self) -> str:
        """Write the reports of the session so far (RESULT-MISSING only at shutdown)."""
        return self._write("on demand")

    # ---- internals --------------------------------------------------------
    def _require(self) -> ProxySession:
        if self.session is None:
            self.session = ProxySession(self._session_options(), on_finding=self._log_finding)
        return self.session

    def _session_options(self) -> SessionOptions:
        opts = ctx.options
        version = opts.facecert_protocol_version or None
        try:
            version = get_contract().check_version(version)
        except ValueError as exc:
            raise exceptions.OptionsError(f"facecert_protocol_version: {exc}") from None
        if not 0.001 <= opts.facecert_time_scale <= 100:
            raise exceptions.OptionsError("facecert_time_scale must be between 0.001 and 100")
        if not 0.0 <= opts.facecert_tolerance <= 1.0:
            raise exceptions.OptionsError("facecert_tolerance must be between 0 and 1")
        return SessionOptions(profile=opts.facecert_profile, protocol_version=version,
                              time_scale=opts.facecert_time_scale, tolerance=opts.facecert_tolerance,
                              check_downloads=opts.facecert_check_downloads, test_raise=opts.facecert_test_raise)

    def _judge(self, flow: http.HTTPFlow) -> None:
        """Feed a completed flow once; whatever happens, the flow itself is not touched."""
        session = self._require()
        if flow.id in self._fed:
            return
        self._fed.add(flow.id)
        try:
            exchange = flow_to_exchange(flow)
        except Exception as exc:  # noqa: BLE001 - the flow must pass whatever we do
            session.contain("reading a flow", exc)
            return
        if exchange is None:
            return
        judged = session.judge(exchange)
        if judged is None:
            return
        try:
            self._show(flow, judged)
        except Exception as exc:  # noqa: BLE001
            session.contain("annotating a flow", exc)

    def _show(self, flow: http.HTTPFlow, judged: Judged) -> None:
        if judged.endpoint is None:
            status = judged.exchange.status if judged.exchange.status is not None else "no answer"
            log.info("facecert: not protocol traffic, passed through: %s %s -> %s",
                     judged.exchange.method, judged.exchange.url or judged.exchange.path, status)
            return
        findings = judged.findings
        if not findings:
            return
        mark = mark_for(findings)
        if mark:
            flow.marked = mark
        note = comment_for(findings)
        flow.comment = f"{flow.comment}\n{note}" if flow.comment else note

    def _log_finding(self, finding: Finding) -> None:
        log.log(LEVEL[finding.severity], log_line(finding))

    async def _tick(self) -> None:
        """Report tasks past their result deadline while the proxy runs."""
        session = self._require()
        timeout = session.engine.timing["result_timeout_s"] * session.options.time_scale
        every = min(5.0, max(0.05, timeout / 4))
        while True:
            await asyncio.sleep(every)
            session.check_deadlines(time.time())

    def _write(self, why: str) -> str:
        session = self._require()
        try:
            paths = write_reports(session, self.report_dir)
        except Exception as exc:  # noqa: BLE001 - a full disk must not take the proxy down
            session.contain(f"writing the {why} report to {self.report_dir}", exc)
            return ""
        errors = len(session.engine.errors())
        log.log(logging.ERROR if errors else logging.INFO,
                "facecert: %s report: %d flows, %d errors, %d internal error(s) -> %s",
                why, len(session.exchanges), errors, len(session.errors), paths.summary)
        return str(paths.summary)
