"""Fault modes: the server failing the way networks and platforms fail, so a
device's resume transfer and robustness can be tested.

A fault applies to one device or to all (``device_id=None``), optionally to
some endpoints only, optionally for a window of seconds. Findings the engine
makes while a fault is on (ANSWER-HTTP-STATUS, ANSWER-MISSING, MSG-NOT-JSON on
the answer) are expected: the server is failing on purpose.
"""

from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field
from typing import Any


class FaultKind(enum.StrEnum):
    """What a fault does to the answers (the API's ``kind``)."""

    OUTAGE = "outage"
    SLOW = "slow"
    ERROR = "error"
    MALFORMED = "malformed"


class OutageMode(enum.StrEnum):
    """How an outage shows (the API's ``mode``)."""

    DROP = "drop"  # the connection closed without an answer
    UNAVAILABLE = "503"  # HTTP 503
    REFUSE = "refuse"  # the listening socket closed for the fault's duration


# kind -> (parameters with defaults, description). Data for the API and docs.
FAULT_KINDS: dict[str, tuple[dict[str, Any], str]] = {
    FaultKind.OUTAGE: (
        {"mode": OutageMode.DROP},
        "no service: mode 'drop' closes the connection without an answer, "
        "mode '503' answers HTTP 503, mode 'refuse' closes the listening socket for "
        "`duration` seconds (connection refused; every device, the control API too)",
    ),
    FaultKind.SLOW: ({"delay": 1.0}, "answers are delayed by `delay` seconds (not scaled)"),
    FaultKind.ERROR: ({"status": 500}, "answers with HTTP `status` (5xx) and a JSON error body"),
    FaultKind.MALFORMED: ({"body": '{"code": 0, "log": "trunc'}, "answers HTTP 200 with a body that is not JSON"),
}
OUTAGE_MODES = tuple(OutageMode)
MAX_DURATION_S = 7 * 24 * 3600  # a fault window longer than a week is a typo (1e400 is refused, not installed)
MAX_DELAY_S = 600  # a slow fault's delay, seconds
ERROR_STATUSES = (500, 599)  # an error fault's status: a 5xx


class FaultError(ValueError):
    """A fault the server cannot set (the admin API answers 422)."""


@dataclass
class Fault:
    kind: FaultKind
    device_id: str | None = None
    endpoints: list[str] | None = None
    until: float | None = None  # epoch seconds; None = until cleared
    params: dict[str, Any] = field(default_factory=dict)

    def applies(self, device_id: str, endpoint: str, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.device_id is not None and self.device_id != device_id:
            return False
        return self.endpoints is None or endpoint in self.endpoints

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "device_id": self.device_id,
            "endpoints": self.endpoints,
            "until": self.until,
            **self.params,
        }


def make_fault(
    kind: str,
    device_id: str | None,
    endpoints: list[str] | None,
    known_endpoints: list[str],
    duration: float | None = None,
    **params: Any,
) -> Fault:
    """Check a fault request and build it (clear messages for the API)."""
    if kind not in FAULT_KINDS:
        raise FaultError(f"unknown fault kind {str(kind)[:40]!r}; one of {', '.join(FAULT_KINDS)}")
    if device_id is not None and not isinstance(device_id, str):
        raise FaultError("device_id must be a string or null")
    if endpoints is not None and not (isinstance(endpoints, list) and all(isinstance(e, str) for e in endpoints)):
        raise FaultError("endpoints must be a list of endpoint names or null")
    defaults, _ = FAULT_KINDS[kind]
    unknown = set(params) - set(defaults)
    if unknown:
        raise FaultError(
            f"fault {kind} takes {', '.join(defaults) or 'no parameters'} "
            f"(and device_id, endpoints, duration), not {', '.join(sorted(unknown))}"
        )
    merged = {**defaults, **params}
    if kind == FaultKind.ERROR and isinstance(merged["status"], float) and merged["status"].is_integer():
        merged["status"] = int(merged["status"])  # 521.0 is the JSON integer 521 (as JSON Schema reads it)
    if kind == FaultKind.OUTAGE and merged["mode"] not in OUTAGE_MODES:
        raise FaultError(f"outage mode must be one of {', '.join(OUTAGE_MODES)}")
    if kind == FaultKind.OUTAGE:
        merged["mode"] = OutageMode(merged["mode"])
    if (
        kind == FaultKind.OUTAGE
        and merged["mode"] == OutageMode.REFUSE
        and (device_id is not None or endpoints or not duration)
    ):
        raise FaultError(
            "outage mode 'refuse' closes the port for everyone: it takes no device_id or endpoints "
            "and needs a duration (the control API is unreachable meanwhile)"
        )
    if kind == FaultKind.SLOW and not (_number(merged["delay"]) and 0 <= merged["delay"] <= MAX_DELAY_S):
        raise FaultError(f"slow delay must be a number of seconds between 0 and {MAX_DELAY_S}")
    if kind == FaultKind.ERROR and not (
        isinstance(merged["status"], int)
        and not isinstance(merged["status"], bool)
        and ERROR_STATUSES[0] <= merged["status"] <= ERROR_STATUSES[1]
    ):
        raise FaultError("error status must be an integer {}..{}".format(*ERROR_STATUSES))
    if kind == FaultKind.MALFORMED and not (isinstance(merged["body"], str) and _utf8(merged["body"])):
        raise FaultError("malformed body must be a string (without lone surrogates: it is sent as UTF-8)")
    if endpoints is not None:
        bad = [e for e in endpoints if e not in known_endpoints]
        if bad:
            raise FaultError(f"unknown endpoint(s) {', '.join(bad)}; one of {', '.join(known_endpoints)}")
    if duration is not None and not (_number(duration) and 0 < duration <= MAX_DURATION_S):
        raise FaultError(f"duration must be a number of seconds above 0 and at most {MAX_DURATION_S}")
    until = time.time() + duration if duration else None
    return Fault(FaultKind(kind), device_id, list(endpoints) if endpoints else None, until, merged)


def _number(value: Any) -> bool:
    """A finite JSON number (not a boolean, not NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
