"""Fault knobs: each one makes the reference device break exactly one rule.

The table is data so that three parties can read it: the device (which
behaviour to bend), ``facecert device --list-faults``, and the tests, which
check it against ``facecert.core.rules.registry.RULES`` (every rule a device can
break has a knob) and prove, knob by knob, that the engine reports exactly
the intended rule and nothing else.

``scenario`` names what the conversation must contain for the fault to show
(a test or a step makes it happen): ``poll`` (any polling), ``idle`` (an
idleTime answer), ``task`` (any task), ``capture``, ``alarm``, ``gps``,
``setDevTime``, ``faceCmd``, ``download`` (a task whose URL the device must
fetch), ``outage`` (the server goes away while captures are made) and
``malformed-task`` (after a few polls, a task the device must refuse); for the
knobs of plan rules (checks only a certification step can make) also
``getDevStatus``, ``getLogFile``, ``SetFaceConfig``, ``setPlatformServer`` (that
task), ``log-path`` (getLogFile naming a path) and ``face_count`` (user tasks
with face counts before and after).
Knobs of engine rules are proven by tests/device/test_faults.py, knobs of plan
rules through the certification plan (tests/suites/test_plan_rules.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from facecert.core.defaults import CADENCE_TOLERANCE
from facecert.core.knobs import knob_name


# The cadence knobs' intervals, from the cadence window a conforming device keeps (nominal × (1 ± tolerance),
# the engine's and the mock server's: facecert.core.defaults.CADENCE_TOLERANCE), not written by hand: the late
# knob waits twice the longest gap the window accepts, the early one as far below nominal, as a ratio, as the
# late one is above it. At ±25 %: 2.5 and 0.4.
def cadence_factors(tolerance: float) -> tuple[float, float]:
    """(early, late): the cadence knobs' factors on the nominal interval for a window of ± ``tolerance``;
    ValueError when the window leaves no early poll outside it (a tolerance past 1/sqrt(2))."""
    late = 2 * (1 + tolerance)
    early = 1 / late
    if not early < 1 - tolerance:
        raise ValueError(f"cadence tolerance {tolerance} leaves no early poll outside the cadence window")
    return early, late


CADENCE_EARLY_FACTOR, CADENCE_LATE_FACTOR = cadence_factors(CADENCE_TOLERANCE)


@dataclass(frozen=True)
class Fault:
    name: str
    rule: str | None  # rule id of facecert/core/rules/registry.py, or None when no engine rule can see it
    description: str
    scenario: str
    check: str = ""  # for rule None: the check that catches it
    protocol_version: str | None = None  # the fault only exists for a device declaring this version
    hostile_first_poll: bool = False  # the first taskRequest is facecert.core.hostile.break_body(rule, body)


FAULTS: tuple[Fault, ...] = (
    Fault(
        "cadence-idle",
        "CADENCE-IDLE",
        f"polls again after {CADENCE_EARLY_FACTOR * 100:.0f} % of the idle interval",
        "idle",
    ),
    Fault(
        "cadence-task",
        "CADENCE-TASK",
        f"polls again after {CADENCE_LATE_FACTOR * 100:.0f} % of the task interval",
        "task",
    ),
    Fault("missing-field", "MSG-REQUIRED", "taskRequest without device_mac", "poll"),
    Fault("wrong-type", "MSG-TYPE", "taskRequest time_stamp sent as a string", "poll"),
    Fault("bad-enum", "MSG-ENUM", "capture with a mask value the document does not define", "capture"),
    Fault("out-of-range", "MSG-RANGE", "capture comp_score above its maximum", "capture"),
    Fault("bad-format", "MSG-FORMAT", "taskRequest device_mac that is not a MAC address", "poll"),
    Fault("alarm-image", "MSG-NOT-ALLOWED", "image on an alarm that is not a vehicle alarm", "alarm"),
    Fault(
        "not-json",
        "MSG-NOT-JSON",
        "first taskRequest body is JSON with a trailing comma, as the document prints it",
        "poll",
    ),
    Fault("json-array", "MSG-NOT-OBJECT", "first taskRequest body is a JSON array holding the message", "poll"),
    Fault("empty-body", "MSG-EMPTY-BODY", "first taskRequest body is empty", "poll"),
    Fault("oversized", "MSG-TOO-LARGE", "first taskRequest padded beyond the engine's body limit", "poll"),
    Fault("http-get", "HTTP-METHOD", "first taskRequest sent with GET instead of POST", "poll"),
    # bounds of strict JSON: the first taskRequest gets one hostile member (facecert/core/hostile.py, sized by the
    # catalogue's limits); the extra member is also an info, MSG-UNKNOWN-FIELD
    Fault(
        "too-deep",
        "MSG-TOO-DEEP",
        "first taskRequest holds arrays nested one level past the depth limit",
        "poll",
        hostile_first_poll=True,
    ),
    Fault(
        "too-many-members",
        "MSG-TOO-MANY-MEMBERS",
        "first taskRequest holds an object with one member more than the limit",
        "poll",
        hostile_first_poll=True,
    ),
    Fault(
        "long-string",
        "MSG-STRING-TOO-LONG",
        "first taskRequest holds a string one character past the limit",
        "poll",
        hostile_first_poll=True,
    ),
    Fault(
        "huge-number",
        "MSG-NUMBER-TOO-LARGE",
        "first taskRequest holds an integer one past the limit",
        "poll",
        hostile_first_poll=True,
    ),
    Fault(
        "not-finite",
        "MSG-NOT-FINITE",
        "first taskRequest holds the number 1e400 (infinite as a double)",
        "poll",
        hostile_first_poll=True,
    ),
    Fault(
        "lone-surrogate",
        "MSG-BAD-UNICODE",
        "first taskRequest holds a string with a lone surrogate (\\udfff)",
        "poll",
        hostile_first_poll=True,
    ),
    Fault(
        "duplicate-key",
        "MSG-DUPLICATE-KEY",
        "first taskRequest names its first member twice",
        "poll",
        hostile_first_poll=True,
    ),
    Fault("result-wrong-id", "RESULT-UNKNOWN-ID", "taskResult carries a request_id the server never gave", "task"),
    Fault("result-duplicate", "RESULT-DUPLICATE", "every taskResult is posted twice", "task"),
    Fault("result-missing", "RESULT-MISSING", "tasks are done but never reported", "task"),
    Fault("result-for-idle", "RESULT-FOR-IDLE", "a taskResult is posted after each idleTime", "idle"),
    Fault("capture-bad-base64", "IMG-BASE64", "capture image is not base64", "capture"),
    Fault("capture-not-jpeg", "IMG-FORMAT", "capture image is a PNG, not a JPEG", "capture"),
    Fault("snaptime-ms", "SNAPTIME-MS", "snap_time_ms five seconds away from snap_time", "capture"),
    Fault("gps-too-often", "GPS-CADENCE", "GPS reported every second while standing still", "gps"),
    Fault("gps-bad-distance", "GPS-DISTANCE", "GPS distance 50 m more than the positions are apart", "gps"),
    Fault("ignore-devtime", "DEVTIME-APPLIED", "setDevTime reported done, clock left alone", "setDevTime"),
    Fault("facecmd-no-capture", "FACECMD-CAPTURE", "faceCmd reported done, no capture uploaded", "faceCmd"),
    Fault("skip-download", "DOWNLOAD-FETCHED", "tasks with a URL reported done without fetching it", "download"),
    Fault(
        "gps-old-version",
        "ENDPOINT-NOT-IN-VERSION",
        "device declaring V1.2 posts gpsReport (V1.2.3)",
        "gps",
        protocol_version="1.2",
    ),
    Fault(
        "vendor-fields",
        "MSG-UNKNOWN-FIELD",
        "taskRequest carries the catalogue's vendor extras (device_ip, sign_tby: schemas/catalogue.yaml vendor_extras)",
        "poll",
    ),
    Fault(
        "stop-after-malformed-task",
        "POLL-STOPPED",
        "after refusing a task it cannot use (unknown or malformed) "
        "the device never polls again; captures, alarms and GPS go on (a crashed poll thread)",
        "malformed-task",
    ),
    # checks only the certification plan makes (rules of origin "plan", steps/device_steps.py)
    Fault(
        "lose-buffered", "RESUME-REPLAY", "captures buffered during an outage are thrown away, not replayed", "outage"
    ),
    Fault(
        "refuse-dev-status", "TASK-NOT-DONE", "getDevStatus refused as an unknown command (code 202)", "getDevStatus"
    ),
    Fault(
        "accept-out-of-range",
        "TASK-NOT-REFUSED",
        "task values outside their ranges (minimum, maximum, enum) "
        "accepted with code 0, e.g. SetFaceConfig FaceQuality 11",
        "SetFaceConfig",
    ),
    Fault(
        "static-face-count",
        "FACEDB-COUNT",
        "getDevStatus total_face stuck at the first count it reported",
        "face_count",
    ),
    Fault(
        "follow-log-path",
        "TASK-NOT-REFUSED",
        "getLogFile with a path for log_name (../../etc/passwd) is "
        "accepted with code 0 and log content (its own log: the simulator opens no file)",
        "log-path",
    ),
    Fault("empty-log", "RESULT-FIELD-EMPTY", "getLogFile reported done with an empty log_info", "getLogFile"),
    Fault(
        "no-capture", "CAPTURE-MISSING", "a capture the camera makes is never uploaded (faceCmd's still is)", "capture"
    ),
    Fault("no-alarm", "ALARM-MISSING", "alarms are raised but never reported", "alarm"),
    Fault("no-gps", "GPS-MISSING", "GPS reporting switched on, no gpsReport ever sent", "gps"),
    Fault(
        "ignore-platform-server",
        "PLATFORM-MOVED",
        "setPlatformServer reported done, the device stays on the old server",
        "setPlatformServer",
    ),
)

FAULTS_BY_NAME: dict[str, Fault] = {fault.name: fault for fault in FAULTS}

# Rules a device-side knob cannot sensibly produce, with the reason.
EXEMPT_RULES: dict[str, str] = {
    "MSG-SCHEMA": "every combined constraint of a device schema maps to a specific rule (if/then -> MSG-REQUIRED, "
    "if/else image -> MSG-NOT-ALLOWED); no device message can break a combinator alone",
    # a capability statement is the peer breaking these: tests/suites/test_capabilities.py runs the plan with one
    "CAP-DECLARED-MISSING": "a capability statement that overstates what the peer does (declares GPS with --fault "
    "no-gps, getDevStatus with --fault refuse-dev-status): tests/suites/test_capabilities.py",
    "CAP-UNDECLARED": "a capability statement that understates what the peer does (no GPS while the reference "
    "device reports its position): tests/suites/test_capabilities.py",
    # only a capture altered after facecert redacted it breaks this, never a live peer
    "REDACTED-PLACEHOLDER": "a redacted capture edited after facecert wrote it (a tampered image placeholder): "
    "tests/engine/test_redact.py and the CASES of tests/engine/test_rules.py",
}


def check_faults(names: Iterable[str]) -> set[str]:
    """The knob names as the table spells them (``cadence_idle`` is ``cadence-idle``), or
    ValueError naming the unknown ones (for the CLI and the config)."""
    given = {knob_name(name) for name in names}
    unknown = sorted(given - FAULTS_BY_NAME.keys())
    if unknown:
        raise ValueError(
            f"unknown fault knob(s) {', '.join(unknown)}; known: {', '.join(FAULTS_BY_NAME)} "
            "(facecert device --list-faults)"
        )
    return given
