"""The mitmproxy addon: every completed flow goes to the facecert engine.

It only observes. It never changes a request or a response, never intercepts
or kills a flow. Large bodies and bodies of unknown length are streamed
through a tap of ours (:mod:`proxy_addons.bodies`) instead of being buffered,
so memory stays bounded and an upstream's early answer (a 413 half-way
through an upload) reaches the device. When mitmproxy has a flow's answer (or
its error) the addon takes a bounded snapshot of it, appends it to the
on-disk record and returns; the judging runs a millisecond later on
mitmproxy's event loop, after the answer is on its way to the device, so the
engine's work is not added to the device's round trip. Snapshots are judged
in completion order, one loop, no threads. Then it logs one line per
finding, marks and comments the flow for mitmweb, and writes the suites'
reports at shutdown and on ``facecert.report``. Every exception of ours is
contained in :class:`ProxySession` or here, counted and reported, and the flow
passes as it came; shutdown writes the reports whatever happened before.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import command, ctx, exceptions, hooks, http

from facecert.core.captures.flows import STALL_KEY
from facecert.core.contract import get_contract
from facecert.core.defaults import (
    CADENCE_TOLERANCE,
    MAX_BODY_MIN,
    TIME_SCALE,
    TIME_SCALE_MAX,
    TIME_SCALE_MIN,
    TOLERANCE_MAX,
    TOLERANCE_MIN,
    max_body_bytes,
)
from facecert.core.engine import Judged
from facecert.core.model import Finding
from facecert.core.profiles import PROFILES
from facecert.heap import settle_once
from facecert.proxy_addons import http1_trailers
from facecert.proxy_addons.live import LEVEL, comment_for, log_line, mark_for
from facecert.proxy_addons.reports import write_evidence, write_reports
from facecert.proxy_addons.session import ProxySession, SessionOptions
from facecert.proxy_addons.snapshot import Snapshot, should_stream, snapshot, tap
from facecert.stalls import stall_clock

log = logging.getLogger("facecert.proxy")

#: How long judging waits after a flow completes. mitmproxy writes the answer to
#: the device a few loop turns after the ``response`` hook returns (measured:
#: a plain ``call_soon`` still runs before the write), so a short timer puts
#: the engine's work after the write instead of inside the round trip.
DEFER_S = 0.001

#: how often the on-disk record is fsync'd (a power cut may lose this much; a killed process loses nothing finished)
SYNC_EVERY_S = 1.0

#: options that change how the engine judges; they cannot change once traffic was judged
ENGINE_OPTIONS = (
    "facecert_profile",
    "facecert_protocol_version",
    "facecert_time_scale",
    "facecert_tolerance",
    "facecert_check_downloads",
    "facecert_max_body",
    "facecert_test_raise",
)

http1_trailers.install()  # mitmproxy 12 hangs on HTTP/1 chunked trailers; see the module


class FacecertAddon:
    """mitmproxy hooks around one :class:`ProxySession` (built from the ``facecert_*`` options)."""

    def __init__(self) -> None:
        self.session: ProxySession | None = None
        self.report_dir = Path("facecert-report")
        self._taken: weakref.WeakSet[http.HTTPFlow] = weakref.WeakSet()
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: deque[tuple[http.HTTPFlow, Snapshot]] = deque()
        self._drain_scheduled = False
        self.stalls = stall_clock()  # how long mitmdump could not run: read with every flow's stamps
        self._live_since = time.time()  # a flow answered before (read from a file, replayed) was held by nobody

    # ---- mitmproxy lifecycle ---------------------------------------------
    def load(self, loader: Any) -> None:
        loader.add_option(
            "facecert_profile",
            str,
            "strict",
            "facecert: strict (the document with errata resolved) or field (known departures are warnings).",
            choices=list(PROFILES),
        )
        loader.add_option(
            "facecert_protocol_version",
            str,
            "",
            "facecert: judge as this protocol version (e.g. 1.3); empty: the latest.",
        )
        # mitmproxy's --set parses str, int and bool options only: the two floats are strings
        loader.add_option(
            "facecert_time_scale",
            str,
            str(TIME_SCALE),
            f"facecert: protocol intervals are multiplied by this, {TIME_SCALE_MIN:g} to {TIME_SCALE_MAX:g} "
            "(simulators run at e.g. 0.05).",
        )
        loader.add_option(
            "facecert_tolerance",
            str,
            str(CADENCE_TOLERANCE),
            f"facecert: relative tolerance on the poll cadence (idle and task intervals), {TOLERANCE_MIN:g} to "
            f"{TOLERANCE_MAX:g}.",
        )
        loader.add_option(
            "facecert_report_dir",
            str,
            "facecert-report",
            "facecert: folder for summary.json, junit.xml, allure-results/ and session.har.",
        )
        loader.add_option(
            "facecert_check_downloads",
            bool,
            False,
            "facecert: the device's downloads pass through this proxy, so a task reported as done "
            "without fetching its URL is an error (DOWNLOAD-FETCHED).",
        )
        loader.add_option(
            "facecert_max_body",
            int,
            max_body_bytes(),
            "facecert: bodies are judged from at most this many bytes (decoded); a larger body, or one "
            "that inflates past it, is MSG-TOO-LARGE. It still passes through whole, streamed.",
        )
        loader.add_option(
            "facecert_test_raise",
            str,
            "",
            "facecert test hook: judging a flow whose path contains this raises (to prove containment).",
        )

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
        if self.session is not None and self.session.flows:
            if options != self.session.options:
                raise exceptions.OptionsError(
                    "facecert options cannot change once traffic was judged; "
                    "restart the proxy to judge with other settings"
                )
            return
        previous, self.session = self.session, ProxySession(options, on_finding=self._log_finding)
        if previous is not None:  # settings changed before any traffic: same record
            self.session.record = previous.record

    def running(self) -> None:
        session = self._require()
        session.open_record(self.report_dir)
        log.info(
            "facecert: judging as protocol V%s, profile %s, time scale %g; reports go to %s",
            session.version,
            session.options.profile,
            session.options.time_scale,
            self.report_dir.resolve(),
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._tick()), loop.create_task(self._sync())]
        # mitmproxy's imports and ours (~90,000 objects) out of the collector's walks: a full collection of
        # them paused the proxy 40-50 ms (more under load), time it then measured as the device's lateness
        settle_once()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata[STALL_KEY] = [self.stalls.read(), 0.0]  # a poll this process saw late is told apart
        self._guard("refusing framing no upstream can read", lambda: _refuse_unknown_coding(flow))
        if flow.response is None:
            self._guard("deciding how to carry a request body", lambda: self._stream(flow.request, flow.request))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is not None:
            self._guard("deciding how to carry an answer body", lambda: self._stream(response, flow.request, response))

    def response(self, flow: http.HTTPFlow) -> None:
        self._stamp_answer(flow)
        self._guard("reading a flow", lambda: self._take(flow))
        self._held(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._stamp_answer(flow)
        self._guard("reading a flow", lambda: self._take(flow))

    def _held(self, flow: http.HTTPFlow) -> None:
        """The answer goes on to the device once this hook returns; the exchange is stamped answered when
        mitmproxy had it whole (``timestamp_end``). What lay between (the record written, the loop busy with
        another flow) is time the device could not hear it: the recorder's hold (facecert.stalls)."""
        ended = flow.response.timestamp_end if flow.response is not None else None
        if isinstance(ended, (int, float)) and ended >= self._live_since:
            self.stalls.held_since(time.monotonic() - max(0.0, time.time() - ended))

    def _stamp_answer(self, flow: http.HTTPFlow) -> None:
        stamps = flow.metadata.get(STALL_KEY)
        if isinstance(stamps, list) and len(stamps) == 2:
            stamps[1] = self.stalls.read()

    def done(self) -> None:
        """Shutdown (Ctrl-C, SIGTERM): every step on its own, so the reports are written whatever failed before."""
        for task in self._tasks:
            task.cancel()
        self._guard("judging the last flows", self.drain)
        session = self._require()
        session.finish(self.stalls.read())
        refused = session.write_failures
        written = self._write("final")
        session.close()
        if not written or session.write_failures > refused:  # a report the disk refused: no seal over the rest
            log.error("facecert: the reports are incomplete (a write the disk refused, above): not sealed")
        else:
            self._guard("writing the evidence manifest", lambda: write_evidence(session, self.report_dir))

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
            flow, snap = self._pending.popleft()
            if self._judge(flow, snap):
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
            raise exceptions.OptionsError(
                f"facecert_profile: {opts.facecert_profile!r} is not one of {', '.join(PROFILES)}"
            )
        version = opts.facecert_protocol_version or None
        try:
            version = get_contract().check_version(version)
        except ValueError as exc:
            raise exceptions.OptionsError(f"facecert_protocol_version: {exc}") from None
        time_scale = _number("facecert_time_scale", opts.facecert_time_scale, TIME_SCALE_MIN, TIME_SCALE_MAX)
        tolerance = _number("facecert_tolerance", opts.facecert_tolerance, TOLERANCE_MIN, TOLERANCE_MAX)
        if opts.facecert_max_body < MAX_BODY_MIN:
            raise exceptions.OptionsError(f"facecert_max_body: {opts.facecert_max_body} is below {MAX_BODY_MIN} bytes")
        return SessionOptions(
            profile=opts.facecert_profile,
            protocol_version=version,
            time_scale=time_scale,
            tolerance=tolerance,
            check_downloads=opts.facecert_check_downloads,
            max_body=opts.facecert_max_body,
            test_raise=opts.facecert_test_raise,
        )

    def _guard(self, where: str, work: Callable[[], object]) -> None:
        """Run one hook's work (its return value unused); an exception is ours, so it is contained and the
        flow passes as it came."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - mitmproxy would log our traceback and the flow could stall
            self._require().contain(where, exc)

    def _stream(self, message: http.Message, request: http.Request, response: http.Response | None = None) -> None:
        if should_stream(message, request, response):
            tap(message, self._require().max_body, request, response)

    def _take(self, flow: http.HTTPFlow) -> None:
        """Snapshot a completed flow (once), record it, and return; judging waits for the next loop turn.

        The record is written here, before mitmproxy sends the answer on: once the
        device has its answer, the exchange is on disk."""
        session = self._require()
        if flow in self._taken or not isinstance(flow, http.HTTPFlow):
            return
        self._taken.add(flow)
        snap = snapshot(flow, session.max_body)
        session.open_record(self.report_dir)  # normally done in running(); offline tools and tests start here
        session.keep(snap.exchange, snap.sizes)
        self._pending.append((flow, snap))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside mitmproxy's loop (tests, offline tools): judge now
            self.drain()
            return
        if not self._drain_scheduled:
            self._drain_scheduled = True
            loop.call_later(DEFER_S, self.drain)

    def _judge(self, flow: http.HTTPFlow, snap: Snapshot) -> bool:
        """Judge one snapshot; True when the flow got a mark or comment."""
        session = self._require()
        judged = session.judge(snap.exchange, snap.notes)
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
            log.info(
                "facecert: not protocol traffic, passed through: %s %s -> %s",
                judged.exchange.method,
                judged.exchange.url or judged.exchange.path,
                status,
            )
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
        timeout = session.engine.contract.result_deadline_s * session.options.time_scale
        every = min(5.0, max(0.05, min(timeout, session.engine.longest_wait()) / 4))
        while True:
            await asyncio.sleep(every)
            session.check_deadlines(time.time(), self.stalls.read())

    async def _sync(self) -> None:
        """fsync the record about once a second, in a worker thread so the proxy never waits on the disk."""
        session = self._require()
        while True:
            await asyncio.sleep(SYNC_EVERY_S)
            await asyncio.to_thread(session.sync)

    def _write(self, why: str) -> str:
        session = self._require()
        try:
            paths = write_reports(session, self.report_dir)
        except Exception as exc:  # noqa: BLE001 - a full disk must not take the proxy down
            session.contain(f"writing the {why} report to {self.report_dir}", exc)
            return ""
        if not paths.summary_written:
            log.error("facecert: %s report: its summary could not be written (above): no verdict to read", why)
            return ""
        errors = len(session.engine.errors())
        log.log(
            logging.ERROR if errors else logging.INFO,
            "facecert: %s report: %d flows, %d errors, %d internal error(s) -> %s",
            why,
            session.flows,
            errors,
            session.error_count,
            paths.summary,
        )
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


OWN_ANSWER = "x-facecert-proxy"  # marks an answer the addon gave itself (the upstream never saw the request)


def _refuse_unknown_coding(flow: http.HTTPFlow) -> None:
    """A request framed with a transfer coding besides ``chunked`` (``gzip, chunked``) cannot be read
    by the upstream (h11 answers 400) nor forwarded by mitmproxy (it answers its own 502): the device
    gets the 400 the server would give, from here, and the flow is judged and recorded like any other
    (RFC 9112 §6.1: the recipient may reject a coding it does not understand)."""
    codings = [c.strip().lower() for c in flow.request.headers.get("transfer-encoding", "").split(",") if c.strip()]
    if codings and codings != ["chunked"]:
        flow.response = http.Response.make(
            400,
            b'{"code": 400, "log": "Transfer-Encoding '
            + ", ".join(codings).encode("ascii", "replace")
            + b' is not supported: only chunked (facecert proxy, for the upstream)"}',
            {"content-type": "application/json", "connection": "close", OWN_ANSWER: "refused"},
        )
