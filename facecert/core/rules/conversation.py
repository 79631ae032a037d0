"""The conversation rules: checks across the messages of one device (and across the devices of one
server, for request_id uniqueness), one function per rule over the device's :class:`DeviceState`.

A rule returns the :class:`Issue` it found (None when it found none; a list where one message can
break it more than once) and keeps in the state what later messages are judged by. The engine
(:mod:`facecert.core.engine`) calls an endpoint's rules in order and turns their issues into
findings (which exchange, endpoint, direction and device); the helpers at the end of the module
(bookkeeping that is no rule: a poll counted, a task opened or closed) it calls between them.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import heapq
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from facecert.core.model import Exchange, abbreviate
from facecert.core.rules.message import Issue

# POLL-STOPPED is judged once a device has polled this often: one poll does not show a polling
# device (a test client, curl), and a device that never polls twice gets RESULT-MISSING instead.
POLLS_FOR_RHYTHM = 2
# TASK-RESENT: sending a failed task again once or twice is a retry; more is the field defect
# that blocks every later task (NOTES.md).
RESEND_LIMIT = 2
# RESULT-MISSING at a poll: a task still open when the device has polled this often since.
POLLS_BEFORE_MISSING = 2
# FACECMD-CAPTURE: a successful faceCmd is followed by a capture before this many polls.
POLLS_BEFORE_CAPTURE = 2


def rid_key(value: Any) -> str | None:
    """request_ids compare by value whatever JSON type carried them (a device
    echoing 7 as "7" is a type finding, not a lost result)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    return str(value)


def peer_host(peer: str) -> str:
    """The address a device without device_id is filed under: the host of its peer, without the
    port (a device opens a new connection, from a new port, whenever it likes). ``1.2.3.4:5678``,
    ``[::1]:5678`` and a bare ``1.2.3.4`` or ``::1`` (the proxy's form) all give the host."""
    if peer.startswith("["):
        return peer[1 : peer.find("]")] if "]" in peer else peer
    if peer.count(":") == 1:
        return peer.rsplit(":", 1)[0]
    return peer


class AnswerKind(enum.Enum):
    """What a poll's answer gave the device, for the cadence of its next poll."""

    IDLE = "idle"  # the idle task: the idle interval follows
    TASK = "task"  # work: the task interval follows (plus the time until its result)
    NONE = "none"  # no usable answer (an error status, not JSON): the device backs off as it sees fit


class ResultFor(enum.Enum):
    """What a taskResult answers, by its request_id (each gets its own rules)."""

    OPEN_TASK = "a task this device was given and has not answered"
    FINISHED_TASK = "a task this device answered already"  # RESULT-DUPLICATE
    OTHER_DEVICE = "a task given to another device"  # RESULT-UNKNOWN-ID, RESULT-FOREIGN-ACCEPTED
    BEFORE_CAPTURE = "a task sent before the tap saw this device poll"  # joined mid-conversation: judged by nothing
    IDLE = "an idle answer"  # RESULT-FOR-IDLE
    UNKNOWN = "nothing this server gave"  # RESULT-UNKNOWN-ID


@dataclass(slots=True)
class IssuedTask:
    task: str
    rid: Any
    device_id: str
    exchange: int
    issued_at: float
    payload: dict[str, Any]
    downloads: list[str] = field(default_factory=list)
    polls_since: int = 0
    results: int = 0
    result_code: Any = None
    missing_reported: bool = False  # RESULT-MISSING said, or not to be said (answered under a wrong id)
    _signature: str = field(default="", repr=False, compare=False)

    @property
    def signature(self) -> str:
        """The task without its request_id (TASK-RESENT compares re-sent tasks by it): made when first
        asked, which is only once the device has failed a task (most conversations never ask)."""
        if not self._signature:
            self._signature = task_signature(self.payload)
        return self._signature

    def settle(self) -> None:
        """Its result is in and judged: no rule reads the task's body or its download URLs again
        (TASK-RESENT took its signature when it needed one, DOWNLOAD-FETCHED has looked; a new task is a
        new IssuedTask), so they are let go. The engine keeps every task of the session, and a task can
        carry faces (addUser: ~20 KB each)."""
        self._signature = self._signature or SETTLED
        self.payload, self.downloads = {}, []


SETTLED = "settled"  # the signature of a task whose body was let go (IssuedTask.settle): no real one is this


@dataclass(slots=True)
class PollState:
    exchange: int
    ended: float
    kind: AnswerKind
    task_rid: str | None = None
    away: bool = False  # the answer sent the device to another server: no further poll is due here
    may_work: bool = False  # a valid task: the device may be busy with it up to the result deadline
    stop: Any = None  # the POLL-STOPPED finding once this poll was the device's last for too long
    stall_ended: float = 0.0  # the recorder's stall clock when it answered (Exchange.stall_ended)


@dataclass
class FailedTask:
    """A task the device reported with a non-zero code, and the times the server sent it again."""

    task: str
    rid: Any
    code: Any
    exchange: int
    resent: list[Any] = field(default_factory=list)
    reported: bool = False


@dataclass
class DeviceState:
    device_id: str
    polls: int = 0
    last_poll: PollState | None = None
    outstanding: dict[str, IssuedTask] = field(default_factory=dict)
    finished: dict[str, IssuedTask] = field(default_factory=dict)
    last_result_end: dict[str, float] = field(default_factory=dict)
    last_gps: tuple[float, float, float] | None = None  # (time, lat, lon)
    devtime: tuple[int, float, int] | None = None  # (time_stamp set, when it was set, exchange)
    facecmd: tuple[float, int, int] | None = None  # (result time, polls since, exchange)
    failed: dict[str, FailedTask] = field(default_factory=dict)  # by task signature (TASK-RESENT)
    left: bool = False  # the tap was told the device left the session: no poll is due until it polls again


@dataclass(frozen=True)
class Pace:
    """What the rules measure time and distance against: the contract's timing at the session's
    time scale, and the engine's tolerances."""

    idle_s: float  # wait after the idle task
    task_s: float  # wait after a task
    result_timeout_s: float  # a task's result deadline
    gps_min_interval_s: float
    gps_min_distance_m: float
    tolerance: float  # relative, on the cadence intervals
    allowance_s: float  # network allowance on the cadence
    devtime_tolerance_s: float
    gps_distance_tolerance_m: float

    def longest_wait(self) -> float:
        """The longest a conforming device may wait between an answer and its next poll: the idle
        interval (the longest of the protocol; also the device's back-off after failures) with the
        cadence tolerance and network allowance."""
        return self._longest_wait

    @functools.cached_property
    def _longest_wait(self) -> float:  # asked at every message of every device: computed once
        return max(cadence_window(s, self.tolerance, self.allowance_s, 0.0)[1] for s in (self.idle_s, self.task_s))


def task_signature(task: dict[str, Any]) -> str:
    """A task's identity apart from its request_id: a re-sent task has the same signature."""
    rest = {k: v for k, v in task.items() if k != "request_id"}
    text = json.dumps(rest, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def utc_clock(epoch: float) -> str:
    """12:00:03.1 UTC: the time of day findings quote (the date is in the report)."""
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 10)} UTC"


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    radius = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(min(1.0, math.sqrt(a)))


def cadence_window(nominal: float, tolerance: float, allowance: float, busy: float) -> tuple[float, float]:
    """Accepted gap between an answer and the next poll: nominal ± tolerance,
    plus the network allowance and the time the device spent on the task."""
    return nominal * (1 - tolerance), nominal * (1 + tolerance) + allowance + busy


def is_ok_status(exchange: Exchange) -> bool:
    return exchange.status is not None and 200 <= exchange.status < 300


def accepted(exchange: Exchange, answer: Any) -> bool:
    """The server took the message as received: a 2xx whose body, if any, says code 0."""
    if not is_ok_status(exchange):
        return False
    return not isinstance(answer, dict) or answer.get("code", 0) == 0


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---- taskRequest -------------------------------------------------------------------------------
def stalled_since(last: PollState, stall_at: float) -> float:
    """Seconds the recorder's own process could not run between the last poll's answer and a moment
    whose stall clock reads ``stall_at`` (facecert.stalls; 0.0 when the tap does not count)."""
    return max(0.0, stall_at - last.stall_ended) if last.stall_ended or stall_at else 0.0


def cadence(state: DeviceState, started: float, pace: Pace, idle_task: str, stall_at: float = 0.0) -> list[Issue]:
    """CADENCE-IDLE / CADENCE-TASK: the gap from the previous poll's answer to this poll lies in the
    window of what that answer gave (after a task, widened by the time until its result).

    The window's end is widened by the time the recorder could not run during the gap (``stall_at``:
    its stall clock when it stamped this poll): a poll that came on time is stamped late by a process
    that was held, and the device is not blamed for that. A poll the widening alone let through is
    HARNESS-STALLED (a warning: judge it again on a quieter machine); one late beyond it still fails."""
    last = state.last_poll
    if last is None or last.kind is AnswerKind.NONE:
        return []
    idle = last.kind is AnswerKind.IDLE
    nominal = pace.idle_s if idle else pace.task_s
    rid, busy = last.task_rid, 0.0
    if not idle and rid is not None and rid in state.last_result_end:
        busy = max(0.0, state.last_result_end[rid] - last.ended)
    low, high = cadence_window(nominal, pace.tolerance, pace.allowance_s, busy)
    gap = started - last.ended
    if low <= gap <= high:
        return []
    after = idle_task if idle else "a task"
    said = f"taskRequest came {gap:.3f} s after the answer with {after} (exchange #{last.exchange})"
    stalled = stalled_since(last, stall_at)
    if gap > high and stalled and gap <= high + stalled:
        return [
            Issue(
                "HARNESS-STALLED",
                f"{said}, later than the {low:.3f}–{high:.3f} s accepted; facecert's own process could not run "
                f"or answer for {stalled:.3f} s meanwhile, so it may have seen an on-time poll late: not counted "
                f"against the device ({'CADENCE-IDLE' if idle else 'CADENCE-TASK'} not judged for this gap)",
                expected=f"{low:.3f}..{high:.3f} s",
                actual=round(gap, 3),
            )
        ]
    widened = f", {stalled:.3f} s more because facecert could not run or answer" if stalled and gap > high else ""
    return [
        Issue(
            "CADENCE-IDLE" if idle else "CADENCE-TASK",
            f"{said}; expected {nominal:.3f} s (accepted {low:.3f}–{high:.3f} s{widened})",
            expected=f"{low:.3f}..{high + (stalled if gap > high else 0.0):.3f} s",
            actual=round(gap, 3),
        )
    ]


def devtime_applied(state: DeviceState, request: Any, started: float, pace: Pace) -> Issue | None:
    """DEVTIME-APPLIED: the first poll after a successful setDevTime carries the clock it set."""
    if not state.devtime or not isinstance(request, dict):
        return None
    stamp = request.get("time_stamp")
    set_to, set_at, index = state.devtime
    state.devtime = None
    if not _number(stamp):
        return None
    expected = set_to + (started - set_at)
    slack = pace.devtime_tolerance_s + 1.0  # +1: time_stamp has whole seconds
    if abs(stamp - expected) <= slack:
        return None
    return Issue(
        "DEVTIME-APPLIED",
        f"setDevTime (exchange #{index}) set the clock to {set_to}; this "
        f"taskRequest should carry ~{expected:.0f} but carries {stamp} ({stamp - expected:+.0f} s)",
        pointer="/time_stamp",
        expected=round(expected),
        actual=stamp,
    )


def result_missing(state: DeviceState, task: IssuedTask, waited: float) -> Issue:
    """RESULT-MISSING, once per task: it got no taskResult (the callers say when that is sure)."""
    task.missing_reported = True
    return Issue(
        "RESULT-MISSING",
        f"{task.task} (request_id {task.rid!r}, exchange #{task.exchange}) got no "
        f"taskResult from {state.device_id} after {task.polls_since} further poll(s) and {waited:.1f} s",
        pointer="/request_id",
        expected=f"one taskResult with request_id {task.rid!r}",
        actual="none",
    )


def results_missing_at_poll(state: DeviceState, started: float) -> list[Issue]:
    """RESULT-MISSING at a poll: the device polled POLLS_BEFORE_MISSING times since it got a task
    and still sent no result for it."""
    found = []
    for task in list(state.outstanding.values()):
        task.polls_since += 1
        if task.polls_since >= POLLS_BEFORE_MISSING and not task.missing_reported:
            found.append(result_missing(state, task, started - task.issued_at))
    return found


def results_past_deadline(state: DeviceState, now: float, deadline: float) -> list[Issue]:
    """RESULT-MISSING on the clock: tasks open for the result deadline or longer."""
    return [
        result_missing(state, task, now - task.issued_at)
        for task in list(state.outstanding.values())
        if not task.missing_reported and now - task.issued_at >= deadline
    ]


def results_missing_at_end(state: DeviceState, last_time: float, deadline: float) -> list[Issue]:
    """RESULT-MISSING at the end of a session: tasks still open after a further poll, or past the
    deadline at the session's last message."""
    found = []
    for task in list(state.outstanding.values()):
        waited = last_time - task.issued_at
        if not task.missing_reported and (task.polls_since >= 1 or waited >= deadline):
            found.append(result_missing(state, task, waited))
    return found


def facecmd_capture(state: DeviceState) -> Issue | None:
    """FACECMD-CAPTURE: the capture a successful faceCmd promised, given up on once the device
    polled POLLS_BEFORE_CAPTURE times without sending it."""
    if not state.facecmd:
        return None
    result_at, polls, index = state.facecmd
    state.facecmd = (result_at, polls + 1, index)
    return facecmd_missing(state) if polls + 1 >= POLLS_BEFORE_CAPTURE else None


def facecmd_missing(state: DeviceState) -> Issue:
    """FACECMD-CAPTURE, said now (at a poll, or at the end of the session after one further poll)."""
    assert state.facecmd is not None
    _, polls, index = state.facecmd
    state.facecmd = None
    return Issue(
        "FACECMD-CAPTURE",
        f"faceCmd (exchange #{index}) succeeded but {state.device_id} uploaded no "
        f"capture to /faceRecognition within {polls} further poll(s)",
        expected="a faceRecognition capture",
        actual="none",
    )


def request_id_duplicate(issued: dict[str, IssuedTask], answer: dict[str, Any]) -> Issue | None:
    """REQUEST-ID-DUPLICATE: a task's request_id was used before (for any device)."""
    previous = issued.get(rid_key(answer.get("request_id")) or "")
    if previous is None:
        return None
    return Issue(
        "REQUEST-ID-DUPLICATE",
        f"request_id {answer.get('request_id')!r} was already used for "
        f"{previous.task} to {previous.device_id} (exchange #{previous.exchange}); ids must be unique",
        pointer="/request_id",
        expected="a request_id never used before",
        actual=answer.get("request_id"),
    )


def task_resent(state: DeviceState, task: IssuedTask) -> Issue | None:
    """TASK-RESENT: the same task (all but its request_id) sent again after the device failed it,
    more than RESEND_LIMIT times; said once per failed task."""
    failed = state.failed.get(task.signature) if state.failed else None
    if failed is None:
        return None
    failed.resent.append(task.rid)
    if len(failed.resent) <= RESEND_LIMIT or failed.reported:
        return None
    failed.reported = True
    return Issue(
        "TASK-RESENT",
        f"the server sent {task.task} to {state.device_id} again (request_id {task.rid!r}): "
        f"{len(failed.resent)} times since the device failed it with code {failed.code!r} (request_id "
        f"{failed.rid!r}, exchange #{failed.exchange}); re-sent as request_ids {failed.resent}. A failed "
        f"task must not be re-sent forever: every later task waits behind it",
        pointer="/request_type",
        expected=f"at most {RESEND_LIMIT} re-sends of a failed task",
        actual=len(failed.resent),
    )


# ---- taskResult --------------------------------------------------------------------------------
def result_for(state: DeviceState, issued: dict[str, IssuedTask], key: str | None) -> ResultFor:
    """Which task a taskResult answers (``key``: its request_id, :func:`rid_key`)."""
    if key and key in state.outstanding:
        return ResultFor.OPEN_TASK
    if key and key in state.finished:
        return ResultFor.FINISHED_TASK
    foreign = issued.get(key) if key else None
    if foreign is not None and foreign.device_id != state.device_id:
        return ResultFor.OTHER_DEVICE
    if state.polls == 0:
        return ResultFor.BEFORE_CAPTURE
    if state.last_poll and state.last_poll.kind is AnswerKind.IDLE and not state.outstanding:
        return ResultFor.IDLE
    return ResultFor.UNKNOWN


def result_duplicate(state: DeviceState, key: str, request: dict[str, Any]) -> Issue:
    """RESULT-DUPLICATE: a second result for a task (each gets exactly one)."""
    done = state.finished[key]
    done.results += 1
    return Issue(
        "RESULT-DUPLICATE",
        f"second taskResult for {done.task} request_id {request.get('request_id')!r} "
        f"(result #{done.results}); each task gets exactly one",
        pointer="/request_id",
        expected="1 result",
        actual=done.results,
    )


def busy_until(state: DeviceState, key: str, ended: float) -> None:
    """A further result for a finished task: the device was busy with it until this one ended, so its
    next poll is judged from there (CADENCE-TASK's window, widened by the time until the result). The
    duplicate is RESULT-DUPLICATE's; the poll it delayed is no second fault."""
    if key in state.last_result_end:
        state.last_result_end[key] = max(state.last_result_end[key], ended)


def result_of_other_device(state: DeviceState, foreign: IssuedTask, request: dict[str, Any]) -> Issue:
    """RESULT-UNKNOWN-ID: a result for a task this server gave another device."""
    return Issue(
        "RESULT-UNKNOWN-ID",
        f"taskResult from {state.device_id} for request_id {request.get('request_id')!r}, "
        f"which was given to {foreign.device_id}",
        pointer="/request_id",
        expected=f"an id given to {state.device_id}",
        actual=request.get("request_id"),
    )


def foreign_result_accepted(
    state: DeviceState, foreign: IssuedTask, request: dict[str, Any], exchange: Exchange, answer: Any
) -> Issue | None:
    """RESULT-FOREIGN-ACCEPTED: the server took another device's result as received."""
    if not accepted(exchange, answer):
        return None
    return Issue(
        "RESULT-FOREIGN-ACCEPTED",
        f"the server accepted {state.device_id}'s result for a task it gave "
        f"{foreign.device_id} (request_id {request.get('request_id')!r}); it must refuse it",
        expected="4xx or code != 0",
        actual=answer if answer is not None else exchange.status,
    )


def result_for_idle(request: dict[str, Any], idle_task: str) -> Issue:
    """RESULT-FOR-IDLE: a result after an idle answer, with no task open."""
    return Issue(
        "RESULT-FOR-IDLE",
        f"taskResult (request_id {request.get('request_id')!r}) after an {idle_task} "
        f"answer; {idle_task} has no request_id and gets no result",
        pointer="/request_id",
        expected="no taskResult",
        actual=request.get("request_id"),
    )


# RESULT-UNKNOWN-ID names the request_ids the device has open, at most this many: a device that answers every
# task under a wrong id keeps them all open, and each finding listed them all (13 KB after 1,800 tasks)
OPEN_IDS_NAMED = 10


def result_unknown_id(state: DeviceState, request: dict[str, Any]) -> Issue:
    """RESULT-UNKNOWN-ID: a result for a request_id this server never gave the device."""
    return Issue(
        "RESULT-UNKNOWN-ID",
        f"taskResult for request_id {request.get('request_id')!r}, which was never given to {state.device_id}",
        pointer="/request_id",
        expected=_open_ids(state) or "an issued request_id",
        actual=request.get("request_id"),
    )


def _open_ids(state: DeviceState) -> list[str]:
    """The first OPEN_IDS_NAMED of the device's open request_ids (sorted), and how many there are."""
    first = heapq.nsmallest(OPEN_IDS_NAMED, state.outstanding)
    more = len(state.outstanding) - len(first)
    return first + [f"… ({len(state.outstanding)} open)"] if more else first


def answered_under_wrong_id(state: DeviceState) -> IssuedTask | None:
    """The task a result with an unknown request_id answers, when the device has just one open:
    that task got its result (under a wrong id, which RESULT-UNKNOWN-ID says), so RESULT-MISSING
    will not say it again: one fault, not two."""
    if len(state.outstanding) != 1:
        return None
    only = next(iter(state.outstanding.values()))
    only.missing_reported = True
    return only


def downloads_fetched(task: IssuedTask, fetched: list[tuple[float, str]], reported_at: float) -> list[Issue]:
    """DOWNLOAD-FETCHED: a task reported successful fetched every URL it named (GET seen by the tap
    between the task and its result)."""
    return [
        Issue(
            "DOWNLOAD-FETCHED",
            f"{task.task} (request_id {task.rid!r}) reported success but {url} was never fetched",
            pointer="/code",
            expected=f"GET {url}",
            actual="no download",
        )
        for url in task.downloads
        if not any(task.issued_at - 1e-3 <= at <= reported_at and same_url(url, got) for at, got in fetched)
    ]


def same_url(wanted: str, got: str) -> bool:
    """A download of ``wanted``: the same URL, or its path (a tap that sees only paths)."""
    if wanted == got:
        return True
    tail = wanted.split("://", 1)[-1]
    tail = tail[tail.find("/") :] if "/" in tail else "/"
    return got == tail or got.endswith(tail)


# ---- faceRecognition ---------------------------------------------------------------------------
def paths_accepted(broken: dict[str, Any], exchange: Exchange, answer: Any) -> list[Issue]:
    """FRPIC-PATH-ACCEPTED: a file-name field (x-file-name) that broke its pattern is a path
    (``broken``: pointer -> value); a server that acknowledged it as accepted (code 0, or an empty
    2xx) may have written through it. A refusal (4xx, code != 0) passes."""
    if not broken or not accepted(exchange, answer):
        return []
    how = f"code {answer.get('code', 0)}" if isinstance(answer, dict) else f"HTTP {exchange.status} with no refusal"
    return [
        Issue(
            "FRPIC-PATH-ACCEPTED",
            f"capture {pointer[1:]} {abbreviate(value, 60)} is a path, not a file "
            f"name, and the server acknowledged it as accepted ({how}): from outside nobody can tell "
            "whether it was neutralised. Check on the server by hand: where it writes capture images, "
            "that no file was created or overwritten outside that folder through this name, and that "
            "the capture was stored under a sanitised name",
            pointer=pointer,
            expected="a refusal: 4xx or code != 0",
            actual=answer if isinstance(answer, dict) else exchange.status,
        )
        for pointer, value in sorted(broken.items())
    ]


def ack_echo(request: dict[str, Any], answer: dict[str, Any], fields: tuple[str, ...]) -> list[Issue]:
    """ACK-ECHO: the answer echoes the capture's fields the schema marks x-echo (errata #19)."""
    return [
        Issue(
            "ACK-ECHO",
            f"faceRecognition answer {name} is {answer[name]!r}; it must echo the capture's {request[name]!r}",
            pointer=f"/{name}",
            expected=request[name],
            actual=answer[name],
        )
        for name in fields
        if name in answer and name in request and answer[name] != request[name]
    ]


def ack_code(answer: dict[str, Any], request_errors: int) -> Issue | None:
    """ACK-CODE: a capture with no errors is answered code 0 (received)."""
    code = answer.get("code")
    if request_errors or not isinstance(code, int) or code == 0:
        return None
    return Issue(
        "ACK-CODE",
        f"faceRecognition answer code {code} for a capture with no errors; 0 means received",
        pointer="/code",
        expected=0,
        actual=code,
    )


# ---- gpsReport ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Move:
    """A gpsReport against the previous one of the device."""

    gap_s: float
    metres: float


def gps_move(state: DeviceState, request: dict[str, Any], started: float) -> Move | None:
    """The move since the device's previous report (which this one replaces); None for its first,
    or a report without a usable position."""
    lat, lon = request.get("latitude"), request.get("longitude")
    if not (_number(lat) and _number(lon)):
        return None
    previous, state.last_gps = state.last_gps, (started, float(lat), float(lon))
    if previous is None:
        return None
    return Move(started - previous[0], haversine_m(previous[1], previous[2], lat, lon))


def gps_cadence(move: Move, pace: Pace) -> Issue | None:
    """GPS-CADENCE: a report comes after the minimum interval or the minimum distance."""
    min_gap = pace.gps_min_interval_s * (1 - pace.tolerance)
    min_move = pace.gps_min_distance_m
    if move.gap_s >= min_gap or move.metres >= min_move:
        return None
    return Issue(
        "GPS-CADENCE",
        f"gpsReport {move.gap_s:.3f} s after the previous one and only {move.metres:.1f} m away; "
        f"a report needs > {pace.gps_min_interval_s:.3f} s or > {min_move:.0f} m",
        expected=f">= {min_gap:.3f} s or >= {min_move:.0f} m",
        actual=f"{move.gap_s:.3f} s, {move.metres:.1f} m",
    )


def gps_distance(move: Move, request: dict[str, Any], pace: Pace) -> Issue | None:
    """GPS-DISTANCE: the distance a report states matches its positions (haversine)."""
    distance = request.get("distance")
    if not _number(distance):
        return None
    if abs(distance - move.metres) <= max(pace.gps_distance_tolerance_m, 0.1 * move.metres):
        return None
    return Issue(
        "GPS-DISTANCE",
        f"gpsReport distance {distance} m but the positions are {move.metres:.1f} m apart (haversine)",
        pointer="/distance",
        expected=round(move.metres, 1),
        actual=distance,
    )


# ---- liveness (POLL-STOPPED) ---------------------------------------------------------------------
def busy_after(state: DeviceState, last: PollState, pace: Pace) -> float:
    """Time the device may spend on the task its last poll brought, before waiting: until its
    result (when it came), up to the result deadline for a valid task still open, nothing for a
    task the contract finds faulty (refusing it needs no work)."""
    if last.task_rid is None:
        return 0.0
    if last.task_rid in state.last_result_end:
        return max(0.0, state.last_result_end[last.task_rid] - last.ended)
    if last.task_rid in state.outstanding and last.may_work:
        return pace.result_timeout_s
    return 0.0


def poll_due(state: DeviceState, pace: Pace, paused: bool, resumed_at: float, stall_at: float = 0.0) -> float | None:
    """The latest time the device's next taskRequest may come; None when no stop can be judged
    (too few polls, sent to another server, left, the tap ``paused``). Later by the time the
    recorder could not run since the last poll's answer (``stall_at``: its stall clock now): a poll
    it was too held to see is no stop of the device."""
    last = state.last_poll
    if last is None or last.away or state.left or state.polls < POLLS_FOR_RHYTHM or paused:
        return None
    due = max(last.ended + busy_after(state, last, pace), resumed_at) + pace.longest_wait()
    return due + stalled_since(last, stall_at)


def poll_stopped(state: DeviceState, due: float | None, at: float, evidence: str | None) -> Issue | None:
    """POLL-STOPPED, once per stop: ``at`` is past the due poll (``evidence``: what shows the
    device alive at ``at`` when judging a recording; None for a live tap's clock)."""
    last = state.last_poll
    if due is None or last is None or last.stop is not None or at <= due:
        return None
    ago = f"{at - last.ended:.1f} s before {evidence}" if evidence else f"{at - last.ended:.1f} s ago"
    return Issue(
        "POLL-STOPPED",
        f"the device stopped polling: last taskRequest at {utc_clock(last.ended)} (exchange "
        f"#{last.exchange}), {ago}; expected one within {due - last.ended:.1f} s",
        expected=f"a taskRequest by {utc_clock(due)}",
        actual=f"none for {at - last.ended:.1f} s",
    )


# ---- bookkeeping between the rules ----------------------------------------------------------------
def count_poll(state: DeviceState) -> None:
    """A poll: the device is (again) in the session."""
    state.polls += 1
    state.left = False


def open_task(state: DeviceState, issued: dict[str, IssuedTask], key: str, task: IssuedTask) -> None:
    """The device was given ``task`` (``key``: its request_id); a reused id replaces the task it named."""
    previous = issued.get(key)
    issued[key] = task
    if previous is not None and previous.device_id == state.device_id:
        state.finished.pop(key, None)
    state.outstanding[key] = task


def close_task(state: DeviceState, key: str, request: dict[str, Any], ended: float, exchange: int) -> IssuedTask:
    """The device's result for an open task: the task is finished, and a failure is remembered for
    TASK-RESENT (a success forgets it)."""
    task = state.outstanding.pop(key)
    task.results += 1
    task.result_code = request.get("code")
    state.finished[key] = task
    state.last_result_end[key] = ended
    if task.result_code == 0:
        if state.failed:
            state.failed.pop(task.signature, None)
    elif isinstance(task.result_code, int) and not isinstance(task.result_code, bool):
        state.failed.setdefault(task.signature, FailedTask(task.task, task.rid, task.result_code, exchange))
    return task


def expect_after_success(state: DeviceState, task: IssuedTask, reported_at: float) -> None:
    """What a successful task makes the device owe: its new clock at the next poll (setDevTime,
    DEVTIME-APPLIED), a capture (faceCmd, FACECMD-CAPTURE)."""
    if task.task == "setDevTime" and isinstance(task.payload.get("time_stamp"), int):
        state.devtime = (task.payload["time_stamp"], task.issued_at, task.exchange)
    if task.task == "faceCmd":
        state.facecmd = (reported_at, 0, task.exchange)
