"""One proxy session: the engine, the record of every exchange, and what went wrong inside us.

This module knows nothing about mitmproxy, so the addon stays a thin layer of
hooks and the session can be driven directly in tests. The session never
raises into its caller: a failure while recording or judging is counted,
remembered and reported, because the proxy must keep forwarding traffic
whatever we do. Exchanges are not kept in memory: each one goes to the
on-disk record (:mod:`proxy_addons.record`) and is judged, then dropped.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facecert.core.defaults import CADENCE_TOLERANCE, TIME_SCALE
from facecert.core.engine import Engine, EngineConfig, Judged
from facecert.core.model import Exchange, Finding
from facecert.proxy_addons.bodies import Body
from facecert.proxy_addons.record import FlowRecord
from facecert.proxy_addons.strict import clean_text
from facecert.recording import RecordingHealth, disk_failure, what_failed, what_to_do

log = logging.getLogger("facecert.proxy")

#: internal errors kept in full for the report (all are counted)
KEEP_ERRORS = 50


@dataclass(frozen=True)
class SessionOptions:
    """The engine settings the proxy exposes as mitmproxy options."""

    profile: str = "strict"
    protocol_version: str | None = None
    time_scale: float = TIME_SCALE
    tolerance: float = CADENCE_TOLERANCE
    check_downloads: bool = False
    max_body: int | None = None  # bytes; None: the contract's limits.max_body_bytes
    test_raise: str = ""  # test hook: judging an exchange whose path contains this raises

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            profile=self.profile,
            protocol_version=self.protocol_version,
            tolerance=self.tolerance,
            time_scale=self.time_scale,
            check_downloads=self.check_downloads,
            max_body=self.max_body,
        )


@dataclass
class AddonError:
    """An exception we contained, kept for the report."""

    when: float
    where: str
    error: str
    trace: str


class InjectedFault(RuntimeError):
    """Raised by the ``facecert_test_raise`` hook, to prove containment."""


@dataclass
class ProxySession:
    options: SessionOptions = field(default_factory=SessionOptions)
    on_finding: Callable[[Finding], None] | None = None

    def __post_init__(self) -> None:
        self.engine = Engine(self.options.engine_config())
        self.engine.listeners.append(self._annotate)  # first: the log line shows the tap's note too
        if self.on_finding is not None:
            self.engine.listeners.append(self.on_finding)
        self.flows = 0
        self.record: FlowRecord | None = None
        self.recording = RecordingHealth()  # flows the disk would not take into the record
        self._record_failed = False
        self.errors: list[AddonError] = []
        self.error_count = 0
        self.write_failures = 0  # writes the disk refused (contain): no internal errors
        self.started = time.time()
        self.finished = False
        self._judging: Exchange | None = None
        self._notes: dict[str, Body] = {}

    @property
    def version(self) -> str:
        return self.engine.version

    @property
    def max_body(self) -> int:
        """The body limit the engine judges with (the contract's unless the option changed it)."""
        return self.engine.limits.max_body_bytes

    def open_record(self, folder: Path) -> None:
        """Start the on-disk record in ``folder`` (once); without it the session still judges."""
        if self.record is not None or self._record_failed:
            return
        try:
            self.record = FlowRecord(folder).open()
        except OSError as exc:
            self._record_failed = True
            self.contain(f"opening the record in {folder}", exc)

    def keep(self, exchange: Exchange, sizes: dict[str, int] | None = None) -> None:
        """Count one finished exchange and append it to the record."""
        self.flows += 1
        if self.record is None:
            return
        try:
            self.record.append(exchange, sizes)
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop the traffic
            if disk_failure(exc):
                self._unrecorded(exc)
            else:
                self.contain(f"recording {exchange.method} {exchange.path}", exc)
            return
        ended = self.recording.kept()
        if ended:
            log.warning("facecert: records again: %d flows passed on unrecorded meanwhile", ended)

    def _unrecorded(self, exc: BaseException) -> None:
        """A flow the disk would not take (full, failing): no bug of ours, so not an internal error. The
        flow passes and is judged as every other; only the record (and what replays it) lacks it. Said once
        as the spell begins, counted in the summary (``unrecorded``)."""
        where = self.record.path if self.record is not None else "the record"
        cause = f"{what_failed(exc)} ({where})"
        if self.recording.refused(cause, what_to_do(exc)):
            log.error(
                "facecert: cannot record: %s. Flows pass on and are judged, unrecorded, until it can again: "
                "the record, and a replay of it, is incomplete from here on",
                cause,
            )

    def judge(self, exchange: Exchange, notes: dict[str, Body] | None = None) -> Judged | None:
        """Judge one exchange; None when judging failed (counted, never raised).

        ``notes`` is what only the tap knows about a body (it was inflated, cut
        at the limit): it is added to the engine's finding about that body."""
        self._judging, self._notes = exchange, dict(notes or {})
        try:
            if self.options.test_raise and self.options.test_raise in exchange.path:
                raise InjectedFault(f"facecert_test_raise matched {exchange.path!r}")
            return self.engine.feed(exchange)
        except Exception as exc:  # noqa: BLE001 - the proxy must keep forwarding
            self.contain(f"judging {exchange.method} {exchange.path}", exc)
            return None
        finally:
            self._judging, self._notes = None, {}

    def _annotate(self, finding: Finding) -> None:
        """Add the tap's note to the engine's first finding about that body (MSG-TOO-LARGE when it replaces)."""
        note = self._notes.get(finding.direction)
        if note is None or self._judging is None or finding.exchange != self._judging.index:
            return
        if note.replaces:
            if finding.rule != "MSG-TOO-LARGE":
                return
            finding.message = f"{finding.endpoint} {finding.direction} {note.note}"
            finding.actual = f"more than {self.max_body} bytes inflated from {note.size} bytes"
        elif finding.rule.startswith("MSG-"):
            finding.message = f"{finding.message} {note.note}"
        else:
            return
        del self._notes[finding.direction]

    def check_deadlines(self, now: float | None = None, stall_at: float = 0.0) -> list[Finding]:
        try:
            return self.engine.check_deadlines(time.time() if now is None else now, stall_at=stall_at)
        except Exception as exc:  # noqa: BLE001
            self.contain("checking result deadlines", exc)
            return []

    def finish(self, stall_at: float = 0.0) -> list[Finding]:
        """End-of-session rules, once (tasks never answered, captures never made)."""
        if self.finished:
            return []
        self.finished = True
        try:
            return self.engine.finish(stall_at=stall_at)
        except Exception as exc:  # noqa: BLE001
            self.contain("finishing the session", exc)
            return []

    def sync(self) -> None:
        """Flush the record to the disk (from a worker thread; contained)."""
        try:
            if self.record is not None:
                self.record.sync()
        except OSError as exc:
            self.contain("syncing the record", exc)

    def close(self) -> None:
        try:
            if self.record is not None:
                self.record.close()
        except OSError as exc:
            self.contain("closing the record", exc)

    def contain(self, where: str, exc: BaseException) -> None:
        """Count and log an exception of ours; the flow it concerned is untouched. A write the disk refused
        (a report at shutdown on a full disk) is no bug of ours: said as what it is, counted apart."""
        if disk_failure(exc):
            self.write_failures += 1
            log.error(
                "facecert: the disk would not take it while %s (%s): %s", where, what_failed(exc), what_to_do(exc)
            )
            return
        self.error_count += 1
        error = AddonError(
            time.time(),
            clean_text(where),
            clean_text(f"{type(exc).__name__}: {exc}"[:2000]),
            clean_text(traceback.format_exc()[-8000:]),
        )
        if len(self.errors) < KEEP_ERRORS:
            self.errors.append(error)
        log.error(
            "facecert: internal error while %s (%s); the flow passed untouched, %d internal error(s) so far",
            error.where,
            error.error,
            self.error_count,
        )

    def stats(self) -> dict[str, object]:
        """Counters for the summary and the final console line."""
        return {
            "source": "proxy",
            "flows": self.flows,
            "other_traffic": self.engine.other_traffic,
            "downloads_seen": len(self.engine.fetched),
            "check_downloads": self.options.check_downloads,
            "devices": sorted(self.engine.devices),
            "addon_errors": self.error_count,
            "addon_error_details": [{"where": e.where, "error": e.error} for e in self.errors],
            "final": self.finished,
            "started": self.started,
            "time_scale": self.options.time_scale,
            "tolerance": self.options.tolerance,
            "max_body": self.max_body,
            "record": str(self.record.path) if self.record is not None else None,
            "recorded": self.record.count if self.record is not None else 0,
            "unrecorded": self.recording.state().refused,
            "unrecorded_cause": self.recording.state().cause,
            "write_failures": self.write_failures,
        }
