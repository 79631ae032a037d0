"""One proxy session: the engine, every exchange seen, and what went wrong inside us.

This module knows nothing about mitmproxy, so the addon stays a thin layer of
hooks and the session can be driven directly in tests. The session never
raises into its caller: a failure while judging is counted, remembered and
reported, because the proxy must keep forwarding traffic whatever we do.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from facecert.engine import Engine, EngineConfig, Judged
from facecert.model import Exchange, Finding

log = logging.getLogger("facecert.proxy")


@dataclass(frozen=True)
class SessionOptions:
    """The engine settings the proxy exposes as mitmproxy options."""

    profile: str = "strict"
    protocol_version: str | None = None
    time_scale: float = 1.0
    tolerance: float = 0.25
    check_downloads: bool = False
    test_raise: str = ""  # test hook: judging an exchange whose path contains this raises

    def engine_config(self) -> EngineConfig:
        return EngineConfig(profile=self.profile, protocol_version=self.protocol_version,
                            tolerance=self.tolerance, time_scale=self.time_scale,
                            check_downloads=self.check_downloads)


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
        if self.on_finding is not None:
            self.engine.listeners.append(self.on_finding)
        self.exchanges: list[Exchange] = []
        self.errors: list[AddonError] = []
        self.started = time.time()
        self.finished = False

    @property
    def version(self) -> str:
        return self.engine.version

    def judge(self, exchange: Exchange) -> Judged | None:
        """Record and judge one exchange; None when judging failed (counted, never raised)."""
        self.exchanges.append(exchange)
        try:
            if self.options.test_raise and self.options.test_raise in exchange.path:
                raise InjectedFault(f"facecert_test_raise matched {exchange.path!r}")
            return self.engine.feed(exchange)
        except Exception as exc:  # noqa: BLE001 - the proxy must keep forwarding
            self.contain(f"judging {exchange.method} {exchange.path}", exc)
            return None

    def check_deadlines(self, now: float | None = None) -> list[Finding]:
        try:
            return self.engine.check_deadlines(time.time() if now is None else now)
        except Exception as exc:  # noqa: BLE001
            self.contain("checking result deadlines", exc)
            return []

    def finish(self) -> list[Finding]:
        """End-of-session rules, once (tasks never answered, captures never made)."""
        if self.finished:
            return []
        self.finished = True
        try:
            return self.engine.finish()
        except Exception as exc:  # noqa: BLE001
            self.contain("finishing the session", exc)
            return []

    def contain(self, where: str, exc: BaseException) -> None:
        """Count and log an exception of ours; the flow it concerned is untouched."""
        error = AddonError(time.time(), where, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        self.errors.append(error)
        log.error("facecert: internal error while %s (%s); the flow passed untouched, "
                  "%d internal error(s) so far", where, error.error, len(self.errors))

    def stats(self) -> dict[str, object]:
        """Counters for the summary and the final console line."""
        return {
            "source": "proxy",
            "flows": len(self.exchanges),
            "other_traffic": self.engine.other_traffic,
            "downloads_seen": len(self.engine.fetched),
            "check_downloads": self.options.check_downloads,
            "devices": sorted(self.engine.devices),
            "addon_errors": len(self.errors),
            "addon_error_details": [{"where": e.where, "error": e.error} for e in self.errors[:50]],
            "final": self.finished,
            "started": self.started,
            "time_scale": self.options.time_scale,
            "tolerance": self.options.tolerance,
        }
