"""The mitmproxy addon: every completed flow goes to the facecert engine.

It only observes. It never touches a request or a response, never intercepts
or kills a flow. When mitmproxy has a flow's answer (or its error) the addon
takes a snapshot of it and returns at once; the judging runs a millisecond
later on mitmproxy's event loop, after the answer is on its way to the device,
so the engine's work is not added to the device's round trip. Snapshots are
judged in completion order, one loop, no threads. Then it logs one line per
finding, marks and comments the flow for mitmweb, and writes the suites'
reports at shutdown and on ``facecert.report``. Every exception of ours is
contained in :class:`ProxySession` or here, counted and reported, and the flow
passes as it came.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from mitmproxy import command, ctx, exceptions, hooks, http

from facecert.captures.flows import flow_to_exchange
from facecert.contract import get_contract
from facecert.engine import Judged
from facecert.model import Exchange, Finding
from facecert.profiles import PROFILES

from proxy_addons.live import LEVEL, comment_for, log_line, mark_for
from proxy_addons.reports import write_reports
from proxy_addons.session import ProxySession, SessionOptions

log = logging.getLogger("facecert.proxy")

#: How long judging waits after a flow completes. mitmproxy writes the answer to
#: the device a few loop turns after the ``response`` hook returns (measured:
#: a plain ``call_soon`` still runs before the write), so a short timer puts
#: the engine's work after the write instead of inside the round trip.
DEFER_S = 0.001

#: options that change how the engine judges; they cannot change once traffic was judged
ENGINE_OPTIONS = ("facecert_profile", "facecert_protocol_version", "facecert_time_scale", "facecert_tolerance",
                  "facecert_check_downloads", "facecert_test_raise")


class FacecertAddon:
    """mitmproxy hooks around one :class:`ProxySession` (built from the ``facecert_*`` options)."""

    def __init__(self) -> None:
        self.session: ProxySession | None = None
        self.report_dir = Path("facecert-report")
        self._fed: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._pending: deque[tuple[http.HTTPFlow, Exchange]] = deque()
        self._drain_scheduled = False

    # ---- mitmproxy lifecycle ---------------------------------------------
    def load(self, loader: Any) -> None:
        loader.add_option("facecert_profile", str, "strict",
                          "facecert: strict (the document with errata resolved) or field (known departures are warnings).",
                          choices=list(PROFILES))
        loader.add_option("facecert_protocol_version", str, "",
                          "facecert: judge as this protocol version (e.g. 1.3); empty: the latest.")
        # mitmproxy's --set parses str, int and bool options only: the two floats are strings
        loader.add_option("facecert_time_scale", str, "1.0",
                          "facecert: protocol intervals are multiplied by this (simulators run at e.g. 0.05).")
        loader.add_option("facecert_tolerance", str, "0.25",
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
        try:
            options = self._session_options()
        except exceptions.OptionsError as exc:
            if self.session is not None:
                raise  # at run time mitmproxy rolls the option back and shows the message
            # at startup mitmproxy would print our traceback; one clear line instead, and
            # mitmproxy exits because an error was logged during startup
            log.error("facecert: %s", exc)
            return
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
        self._take(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._take(flow)

    def done(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self.drain()
        session = self._require()
        session.finish()
        self._write("final")

    # ---- commands ---------------------------------------------------------
    @command.command("facecert.report")
    def report(self) -> str:
        """Write the reports of the session so far (RESULT-MISSING only at shutdown)."""
        self.drain()
        return self._write("on demand")

    def drain(self) -> None:
        """Judge every snapshot taken so far, in order; marked flows are pushed to the UIs again."""
        self._drain_scheduled = False
        changed: list[http.HTTPFlow] = []
        while self._pending:
            flow, exchange = self._pending.popleft()
            if self._judge(flow, exchange):
                changed.append(flow)
        if changed:
            try:
                ctx.master.addons.trigger(hooks.UpdateHook(changed))
            except Exception as exc:  # noqa: BLE001
                self._require().contain("announcing marked flows", exc)

    # ---- internals --------------------------------------------------------
    def _require(self) -> ProxySession:
        if self.session is None:
            try:
                options = self._session_options()
            except exceptions.OptionsError:
                options = SessionOptions()  # the error was logged at startup; mitmproxy is exiting
            self.session = ProxySession(options, on_finding=self._log_finding)
        return self.session

    def _session_options(self) -> SessionOptions:
        opts = ctx.options
        if opts.facecert_profile not in PROFILES:
            raise exceptions.OptionsError(f"facecert_profile: {opts.facecert_profile!r} is not one of {', '.join(PROFILES)}")
        version = opts.facecert_protocol_version or None
        try:
            version = get_contract().check_version(version)
        except ValueError as exc:
            raise exceptions.OptionsError(f"facecert_protocol_version: {exc}") from None
        time_scale = _number("facecert_time_scale", opts.facecert_time_scale, 0.001, 100.0)
        tolerance = _number("facecert_tolerance", opts.facecert_tolerance, 0.0, 1.0)
        return SessionOptions(profile=opts.facecert_profile, protocol_version=version,
                              time_scale=time_scale, tolerance=tolerance,
                              check_downloads=opts.facecert_check_downloads, test_raise=opts.facecert_test_raise)

    def _take(self, flow: http.HTTPFlow) -> None:
        """Snapshot a completed flow (once) and return; judging waits for the next loop turn."""
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
        self._pending.append((flow, exchange))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside mitmproxy's loop (tests, offline tools): judge now
            self.drain()
            return
        if not self._drain_scheduled:
            self._drain_scheduled = True
            loop.call_later(DEFER_S, self.drain)

    def _judge(self, flow: http.HTTPFlow, exchange: Exchange) -> bool:
        """Judge one snapshot; True when the flow got a mark or comment."""
        session = self._require()
        judged = session.judge(exchange)
        if judged is None:
            return False
        try:
            return self._show(flow, judged)
        except Exception as exc:  # noqa: BLE001
            session.contain("annotating a flow", exc)
            return False

    def _show(self, flow: http.HTTPFlow, judged: Judged) -> bool:
        if judged.endpoint is None:
            status = judged.exchange.status if judged.exchange.status is not None else "no answer"
            log.info("facecert: not protocol traffic, passed through: %s %s -> %s",
                     judged.exchange.method, judged.exchange.url or judged.exchange.path, status)
            return False
        findings = judged.findings
        if not findings:
            return False
        mark = mark_for(findings)
        if mark:
            flow.marked = mark
        note = comment_for(findings)
        flow.comment = f"{flow.comment}\n{note}" if flow.comment else note
        return True

    def _log_finding(self, finding: Finding) -> None:
        log.log(LEVEL[finding.severity], log_line(finding))

    async def _tick(self) -> None:
        """Report tasks past their result deadline and devices that stopped polling (POLL-STOPPED)
        while the proxy runs."""
        session = self._require()
        timeout = session.engine.timing["result_timeout_s"] * session.options.time_scale
        every = min(5.0, max(0.05, min(timeout, session.engine.longest_wait()) / 4))
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


def _number(name: str, text: str, low: float, high: float) -> float:
    """Parse a numeric option given as text, with an error a person can act on."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise exceptions.OptionsError(f"{name}: {text!r} is not a number") from None
    if not low <= value <= high:
        raise exceptions.OptionsError(f"{name}: {value:g} is outside {low:g}..{high:g}")
    return value
