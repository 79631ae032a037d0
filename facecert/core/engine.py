"""The engine: exchanges in, findings out, for every tap alike.

Per message it parses, validates against the schema the catalogue names for
that endpoint and direction, and checks annotated content; across messages it
keeps one :class:`DeviceState` per device for correlation, cadence,
acknowledgements, GPS, clock and download rules. Profiles only change
severities, after a finding is made, so both profiles see the same facts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from facecert.core.contract import Contract, Endpoint, Limits, get_contract
from facecert.core.defaults import CADENCE_ALLOWANCE_S, CADENCE_TOLERANCE
from facecert.core.model import Exchange, Finding, Severity, abbreviate
from facecert.core.profiles import Context, Profile, load_profile
from facecert.core.rules.conversation import (
    DeviceState,
    FailedTask,
    IssuedTask,
    PollState,
    cadence_window,
    haversine_m,
    is_ok_status,
    rid_key,
    task_signature,
    utc_clock,
)
from facecert.core.rules.message import Issue, Parsed, content_issues, parse_message, schema_issues, snap_time_issues
from facecert.core.rules.registry import RULES
from facecert.core.versions import since_ok

# POLL-STOPPED is judged once a device has polled this often: one poll does not show a polling
# device (a test client, curl), and a device that never polls twice gets RESULT-MISSING instead.
POLLS_FOR_RHYTHM = 2
# TASK-RESENT: sending a failed task again once or twice is a retry; more is the field defect
# that blocks every later task (NOTES.md).
RESEND_LIMIT = 2


@dataclass
class EngineConfig:
    profile: str = "strict"
    protocol_version: str | None = None  # None: the latest the catalogue knows
    tolerance: float = CADENCE_TOLERANCE  # relative, on cadence intervals
    allowance_s: float = CADENCE_ALLOWANCE_S  # absolute network allowance on cadence, seconds
    time_scale: float = 1.0  # protocol intervals are multiplied by this
    max_body: int | None = None  # bytes; None: the contract's limits.max_body_bytes (a shorthand for --max-body)
    limits: Limits | None = None  # None: the contract's bounds on one message (catalogue.yaml `limits:`)
    check_downloads: bool = False  # the tap sees the device's downloads (mock server)
    devtime_tolerance_s: float = 2.0
    gps_distance_tolerance_m: float = 5.0


@dataclass
class Judged:
    """What the engine made of one exchange (handy for taps that answer or display)."""

    exchange: Exchange
    endpoint: str | None
    device_id: str
    request: Any = None
    answer: Any = None
    task: str | None = None
    findings: list[Finding] = field(default_factory=list)


class Engine:
    """Judge a stream of exchanges. Thread-safe: taps may feed from several threads."""

    def __init__(self, config: EngineConfig | None = None, contract: Contract | None = None) -> None:
        self.config = config or EngineConfig()
        self.contract = contract or get_contract()
        self.version = self.contract.check_version(self.config.protocol_version)
        self.limits = (self.config.limits or self.contract.limits).with_changes(max_body_bytes=self.config.max_body)
        self.profile: Profile = load_profile(self.config.profile)
        self.timing = self.contract.timing
        self.findings: list[Finding] = []
        self.devices: dict[str, DeviceState] = {}
        self.issued: dict[str, IssuedTask] = {}
        self.fetched: list[tuple[float, str]] = []
        self.other_traffic = 0
        self.count = 0
        self.last_time = 0.0
        self.listeners: list[Callable[[Finding], None]] = []
        self.paused_since: float | None = None  # the tap cannot see polls (see tap_paused)
        self.resumed_at = 0.0
        self._lock = threading.RLock()

    # ---- public ----------------------------------------------------------
    def feed(self, exchange: Exchange) -> Judged:
        endpoint = self.contract.endpoint_for_path(exchange.path)
        # Reading the bodies needs no state: done before taking the lock, so one
        # hostile message (bounded by the limits) does not hold up other feeders.
        read: dict[str, tuple[bytes | None, Parsed]] = {}
        if endpoint is not None:
            for what, raw in (
                (f"{endpoint.name} request", exchange.request_body),
                (f"{endpoint.name} answer", exchange.response_body),
            ):
                read[what] = (raw, self.read(raw, what))
        with self._lock:
            exchange.index = self.count if exchange.index < 0 else exchange.index
            self.count += 1
            self.last_time = max(self.last_time, exchange.ended or exchange.started)
            if endpoint is None:
                self._other(exchange)
                return Judged(exchange, None, "")
            judged = Judged(exchange, endpoint.name, "")
            _Judge(self, exchange, endpoint, judged, read).run()
            return judged

    def read(self, raw: bytes | None, what: str) -> Parsed:
        """One body parsed within this engine's limits (thread-safe: no state)."""
        return parse_message(raw, self.limits, what, self.contract.content_fields)

    def finish(self, until: float | None = None) -> list[Finding]:
        """End of the session: tasks never answered, captures never made. ``until`` is when the
        session ended, when the tap knows it (a device that polled no more before then stopped);
        without it a stop shows only by the device's own later messages (a capture that just ends
        stops nobody)."""
        with self._lock:
            made: list[Finding] = []
            if until is not None:
                for state in self.devices.values():
                    made.extend(self._check_stop(state, until, f"the end of the session at {utc_clock(until)}"))
            deadline = self._scaled("result_timeout_s")
            for state in self.devices.values():
                for task in state.outstanding.values():
                    waited = self.last_time - task.issued_at
                    if not task.missing_reported and (task.polls_since >= 1 or waited >= deadline):
                        made.append(self._result_missing(state, task, waited))
                if state.facecmd and state.facecmd[1] >= 1:
                    made.append(self._facecmd_missing(state))
            return made

    def check_deadlines(self, now: float, in_flight: Collection[str] = ()) -> list[Finding]:
        """Tasks past the result deadline and devices that stopped polling (a live tap calls this
        on a timer). ``in_flight``: devices whose poll the tap holds unanswered (a slow answer),
        which are not judged stopped meanwhile."""
        with self._lock:
            made = []
            for state in self.devices.values():
                for task in state.outstanding.values():
                    if not task.missing_reported and now - task.issued_at >= self._scaled("result_timeout_s"):
                        made.append(self._result_missing(state, task, now - task.issued_at))
                if state.device_id not in in_flight:
                    made.extend(self._check_stop(state, now, None))
            return made

    # ---- liveness: is the device still polling? ------------------------------
    def last_poll(self, device_id: str) -> float | None:
        """When the device's last taskRequest ended (epoch s), None before its first."""
        state = self.devices.get(device_id)
        return state.last_poll.ended if state and state.last_poll else None

    def poll_due(self, device_id: str) -> float | None:
        """The latest time the device's next taskRequest may come (epoch s); None when no stop can
        be judged (too few polls, sent to another server, left, the tap paused)."""
        with self._lock:
            state = self.devices.get(device_id)
            return self._poll_due(state) if state else None

    def poll_stopped(self, device_id: str) -> Finding | None:
        """The POLL-STOPPED finding of the device's current stop; None while it polls."""
        state = self.devices.get(device_id)
        return state.last_poll.stop if state and state.last_poll else None

    def device_left(self, device_id: str) -> None:
        """The session is over for this device (it was switched off on purpose): no poll is due
        from it until it polls again."""
        with self._lock:
            self.devices.setdefault(device_id, DeviceState(device_id)).left = True

    def tap_paused(self, paused: bool, now: float) -> None:
        """The tap cannot see polls while paused (a server refusing connections): nobody is judged
        stopped meanwhile, and after it resumes each device gets its longest wait again."""
        with self._lock:
            if paused:
                self.paused_since = now if self.paused_since is None else self.paused_since
            else:
                self.paused_since, self.resumed_at = None, now

    def longest_wait(self) -> float:
        """The longest a conforming device may wait between an answer and its next poll: the idle
        interval (the longest of the protocol; also the device's back-off after failures) with
        the cadence tolerance and network allowance."""
        cfg = self.config
        return max(
            cadence_window(self._scaled(key), cfg.tolerance, cfg.allowance_s, 0.0)[1]
            for key in ("idle_interval_s", "task_interval_s")
        )

    def _poll_due(self, state: DeviceState) -> float | None:
        last = state.last_poll
        if last is None or last.away or state.left or state.polls < POLLS_FOR_RHYTHM or self.paused_since is not None:
            return None
        return max(last.ended + self._busy(state, last), self.resumed_at) + self.longest_wait()

    def _busy(self, state: DeviceState, last: PollState) -> float:
        """Time the device may spend on the task its last poll brought, before waiting: until its
        result (when it came), up to the result deadline for a valid task still open, nothing for a
        task the contract finds faulty (refusing it needs no work)."""
        if last.task_rid is None:
            return 0.0
        if last.task_rid in state.last_result_end:
            return max(0.0, state.last_result_end[last.task_rid] - last.ended)
        if last.task_rid in state.outstanding and last.may_work:
            return self._scaled("result_timeout_s")
        return 0.0

    def _check_stop(self, state: DeviceState, at: float, evidence: str | None) -> list[Finding]:
        """POLL-STOPPED once per stop: ``at`` is past the due poll (``evidence``: what shows the device
        alive at ``at`` when judging a recording; None for a live tap's clock)."""
        due = self._poll_due(state)
        last = state.last_poll
        if due is None or last is None or last.stop is not None or at <= due:
            return []
        ago = f"{at - last.ended:.1f} s before {evidence}" if evidence else f"{at - last.ended:.1f} s ago"
        last.stop = self.make(
            "POLL-STOPPED",
            f"the device stopped polling: last taskRequest at {utc_clock(last.ended)} (exchange "
            f"#{last.exchange}), {ago}; expected one within {due - last.ended:.1f} s",
            None,
            endpoint="taskRequest",
            direction="request",
            expected=f"a taskRequest by {utc_clock(due)}",
            actual=f"none for {at - last.ended:.1f} s",
            device_id=state.device_id,
            at_exchange=last.exchange,
        )
        return [last.stop]

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    # ---- helpers used by _Judge ------------------------------------------
    def _scaled(self, key: str) -> float:
        return self.timing[key] * self.config.time_scale

    def emit(self, finding: Finding, ctx: Context | None = None) -> Finding:
        self.profile.apply(finding, ctx or Context())
        self.findings.append(finding)
        for listener in self.listeners:
            try:
                listener(finding)
            except Exception:  # noqa: BLE001 - a display problem must not stop judging
                pass
        return finding

    def make(
        self,
        rule_id: str,
        message: str,
        exchange: Exchange | None,
        *,
        endpoint: str = "",
        direction: str = "",
        pointer: str = "",
        expected: Any = None,
        actual: Any = None,
        device_id: str = "",
        ctx: Context | None = None,
        at_exchange: int = -1,
    ) -> Finding:
        """A finding of ``rule_id``; ``at_exchange`` names the exchange it is about when none is at hand."""
        rule = RULES[rule_id]
        party = rule.party
        if party == "sender":
            party = "device" if direction == "request" else "server"
        finding = Finding(
            rule=rule_id,
            severity=rule.severity,
            message=message,
            spec=rule.spec,
            party=party,
            exchange=exchange.index if exchange else at_exchange,
            endpoint=endpoint,
            direction=direction,
            pointer=pointer,
            expected=expected,
            actual=actual,
            device_id=device_id,
        )
        return self.emit(finding, ctx)

    def _other(self, exchange: Exchange) -> None:
        """Non-protocol traffic: passes, and GETs count as downloads for DOWNLOAD-FETCHED."""
        self.other_traffic += 1
        if exchange.method.upper() == "GET" and is_ok_status(exchange):
            self.fetched.append((exchange.started, exchange.url or exchange.path))

    def _result_missing(self, state: DeviceState, task: IssuedTask, waited: float) -> Finding:
        task.missing_reported = True
        return self.make(
            "RESULT-MISSING",
            f"{task.task} (request_id {task.rid!r}, exchange #{task.exchange}) got no "
            f"taskResult from {state.device_id} after {task.polls_since} further poll(s) and {waited:.1f} s",
            None,
            endpoint="taskResult",
            direction="request",
            pointer="/request_id",
            expected=f"one taskResult with request_id {task.rid!r}",
            actual="none",
            device_id=state.device_id,
        )

    def _facecmd_missing(self, state: DeviceState) -> Finding:
        assert state.facecmd is not None
        _, polls, index = state.facecmd
        state.facecmd = None
        return self.make(
            "FACECMD-CAPTURE",
            f"faceCmd (exchange #{index}) succeeded but {state.device_id} uploaded no "
            f"capture to /faceRecognition within {polls} further poll(s)",
            None,
            endpoint="faceRecognition",
            direction="request",
            expected="a faceRecognition capture",
            actual="none",
            device_id=state.device_id,
        )


class _Judge:
    """Judges one exchange; one instance per exchange keeps the code flat."""

    def __init__(
        self,
        engine: Engine,
        exchange: Exchange,
        endpoint: Endpoint,
        judged: Judged,
        read: dict[str, tuple[bytes | None, Parsed]] | None = None,
    ) -> None:
        self.engine = engine
        self.ex = exchange
        self.endpoint = endpoint
        self.read = read or {}  # bodies the engine already parsed: what -> (raw, parsed)
        self.judged = judged
        self.version = engine.version
        self.request_errors = 0

    def run(self) -> None:
        ex, endpoint = self.ex, self.endpoint
        request = self.parse_request()
        if ex.method.upper() != "POST":
            self.finding(
                "HTTP-METHOD",
                f"{endpoint.path} was requested with {ex.method}; device messages are POSTed",
                "request",
                expected="POST",
                actual=ex.method,
            )
        if not since_ok(endpoint.since, self.version):
            self.finding(
                "ENDPOINT-NOT-IN-VERSION",
                f"{endpoint.path} exists from V{endpoint.since}; this session judges protocol V{self.version}",
                "request",
                expected=f"V>={endpoint.since}",
                actual=self.version,
            )
        device_id = self.judged.device_id
        state = self.engine.devices.setdefault(device_id, DeviceState(device_id))
        task = None
        if isinstance(request, dict):
            schema = endpoint.request
            if endpoint.name == "taskResult":
                issued = self.engine.issued.get(rid_key(request.get("request_id")) or "")
                task = issued.task if issued else None
                schema = self.engine.contract.result_schema(task)
            self.validate(schema, request, "request", f"{endpoint.name} request")
            if endpoint.name == "faceRecognition":
                self.check_snap_time(request)  # a request error, so judged before the answer (a 4xx is then right)
        answer = self.judge_answer(request, state)
        self.judged.answer = answer
        handler = getattr(self, f"on_{endpoint.name}", None)
        if handler is not None:
            handler(state, request, answer)
        if endpoint.name != "taskRequest" and self.judged.device_id:
            evidence = f"its {endpoint.name} at {utc_clock(ex.started)} (exchange #{ex.index})"
            self.judged.findings.extend(self.engine._check_stop(state, ex.started, evidence))

    def parse_request(self) -> Any:
        """Parse first, so every finding of the exchange (method, version too) names its device."""
        raw = self.ex.request_body
        parsed = self.parsed(raw, f"{self.endpoint.name} request")
        request = parsed.value
        device_id = request.get("device_id") if isinstance(request, dict) else None
        if not isinstance(device_id, str) or not device_id:
            device_id = self.owner_of_result(request) or self.ex.peer or "?"
        self.judged.device_id = device_id
        self.judged.request = request
        self.report_parse(parsed, "request", Context(body=request, empty_body=not (raw or b"").strip()))
        return request

    # ---- building blocks ---------------------------------------------------
    def finding(
        self,
        rule: str,
        message: str,
        direction: str,
        *,
        pointer: str = "",
        expected: Any = None,
        actual: Any = None,
        ctx: Context | None = None,
    ) -> Finding:
        made = self.engine.make(
            rule,
            message,
            self.ex,
            endpoint=self.endpoint.name,
            direction=direction,
            pointer=pointer,
            expected=expected,
            actual=actual,
            device_id=self.judged.device_id,
            ctx=ctx,
        )
        self.judged.findings.append(made)
        if direction == "request" and made.severity is Severity.ERROR:
            self.request_errors += 1
        return made

    def issue(self, issue: Issue, direction: str, ctx: Context | None = None) -> Finding:
        return self.finding(
            issue.rule,
            issue.message,
            direction,
            pointer=issue.pointer,
            expected=issue.expected,
            actual=issue.actual,
            ctx=ctx,
        )

    def parse(self, raw: bytes | None, direction: str, what: str, schema: str = "") -> Any:
        parsed = self.parsed(raw, what)
        self.report_parse(
            parsed, direction, Context(schema=schema, body=parsed.value, empty_body=not (raw or b"").strip())
        )
        return parsed.value

    def parsed(self, raw: bytes | None, what: str) -> Parsed:
        """The body as the engine read it before taking its lock, or read now."""
        done = self.read.get(what)
        return done[1] if done is not None and done[0] is raw else self.engine.read(raw, what)

    def report_parse(self, parsed: Parsed, direction: str, ctx: Context) -> None:
        """The refusal, or the findings of a message that is still judged (duplicate keys, unsafe integers)."""
        for item in [parsed.failure] if parsed.failure is not None else parsed.issues:
            self.issue(item, direction, ctx)

    def validate(self, schema: str, body: dict[str, Any], direction: str, what: str) -> None:
        contract = self.engine.contract
        required = contract.required_fields(schema, self.version)
        for item in schema_issues(contract, schema, body, self.version, what, self.engine.limits):
            top = item.pointer.split("/")[1] if item.pointer.count("/") >= 1 else ""
            ctx = Context(schema=schema, body=body, optional=top not in required)
            self.issue(item, direction, ctx)
        issues, downloads = content_issues(contract, schema, body, self.version, what, redacted=self.ex.redacted)
        for item in issues:
            self.issue(item, direction, Context(schema=schema, body=body))
        self.downloads = downloads

    def errors_at(self, *pointers: str) -> bool:
        """A cross-field rule is moot when one of its fields is already wrong."""
        return any(f.pointer in pointers and f.severity is Severity.ERROR for f in self.judged.findings)

    def owner_of_result(self, request: Any) -> str | None:
        if isinstance(request, dict):
            issued = self.engine.issued.get(rid_key(request.get("request_id")) or "")
            if issued:
                return issued.device_id
        return None

    # ---- the answer --------------------------------------------------------
    def judge_answer(self, request: Any, state: DeviceState) -> Any:
        ex, endpoint = self.ex, self.endpoint
        if ex.status is None:
            self.finding(
                "ANSWER-MISSING",
                f"no answer to {endpoint.path}: {ex.error or 'connection failed'}",
                "answer",
                expected="an HTTP answer",
                actual=ex.error or "none",
            )
            return None
        if not is_ok_status(ex):
            bad_request = self.request_errors > 0 and 400 <= ex.status < 500
            if not bad_request:
                self.finding(
                    "ANSWER-HTTP-STATUS",
                    f"{endpoint.path} answered HTTP {ex.status} to a "
                    f"{'valid' if not self.request_errors else 'faulty'} request",
                    "answer",
                    expected="2xx" if not self.request_errors else "2xx or 4xx",
                    actual=ex.status,
                )
            return None
        if endpoint.name == "taskRequest":
            return self.judge_task(request)
        if request is None:
            return None  # a refused or unreadable message: any answer (4xx, an error code) is fair
        schema = endpoint.answer
        if endpoint.answer == "server/ack" and not (ex.response_body or b"").strip():
            return None  # errata #18: an empty 2xx acknowledges too
        answer = self.parse(ex.response_body, "answer", f"{endpoint.name} answer", schema)
        if isinstance(answer, dict):
            self.validate(schema, answer, "answer", f"{endpoint.name} answer")
        return answer

    def judge_task(self, request: Any) -> Any:
        answer = self.parse(self.ex.response_body, "answer", "taskRequest answer", "server/tasks")
        if not isinstance(answer, dict):
            return None
        name = answer.get("request_type")
        tasks = self.engine.contract.tasks(self.version)
        if name not in tasks:
            known = name in self.engine.contract.all_tasks
            why = (
                f"{name} exists only from V{self.engine.contract.all_tasks[name].since}"
                if known
                else "request_type is missing"
                if name is None
                else f"{name!r} is not a task of the document"
            )
            self.finding(
                "TASK-UNKNOWN",
                f"taskRequest answer: {why} (protocol V{self.version})",
                "answer",
                pointer="/request_type",
                expected=sorted(tasks),
                actual=name,
            )
            return answer
        self.judged.task = name
        self.validate(tasks[name].schema, answer, "answer", f"{name} task")
        return answer

    # ---- per endpoint conversation rules -------------------------------------
    def on_taskRequest(self, state: DeviceState, request: Any, answer: Any) -> None:
        engine, ex = self.engine, self.ex
        self.check_cadence(state)
        self.check_devtime(state, request)
        for task in list(state.outstanding.values()):
            task.polls_since += 1
            if task.polls_since >= 2 and not task.missing_reported:
                self.judged.findings.append(engine._result_missing(state, task, ex.started - task.issued_at))
        if state.facecmd:
            result_at, polls, index = state.facecmd
            state.facecmd = (result_at, polls + 1, index)
            if polls + 1 >= 2:
                self.judged.findings.append(engine._facecmd_missing(state))
        state.polls += 1
        state.left = False
        kind, rid = "none", None
        # after a task that sends the device elsewhere (contract.moves_away, errata #22) this server
        # cannot time its next poll, so no cadence is expected
        moves_away = self.judged.task in engine.contract.moves_away
        if isinstance(answer, dict) and self.judged.task and not moves_away:
            kind = "idle" if self.judged.task == engine.contract.idle_task else "task"
            if kind == "task":
                rid = self.issue_task(state, answer)
        elif isinstance(answer, dict) and rid_key(answer.get("request_id")) is not None:
            rid = self.issue_task(state, answer)  # TASK-UNKNOWN with an id: the device's refusal (code != 0) answers it
        faulty = any(f.direction == "answer" and f.severity is Severity.ERROR for f in self.judged.findings)
        state.last_poll = PollState(
            ex.index,
            ex.ended if ex.ended is not None else ex.started,
            kind,
            rid,
            away=moves_away,
            may_work=not faulty,
        )

    def issue_task(self, state: DeviceState, answer: dict[str, Any]) -> str | None:
        key = rid_key(answer.get("request_id"))
        if key is None:
            return None
        previous = self.engine.issued.get(key)
        if previous is not None:
            self.finding(
                "REQUEST-ID-DUPLICATE",
                f"request_id {answer.get('request_id')!r} was already used for "
                f"{previous.task} to {previous.device_id} (exchange #{previous.exchange}); ids must be unique",
                "answer",
                pointer="/request_id",
                expected="a request_id never used before",
                actual=answer.get("request_id"),
            )
        task = IssuedTask(
            task=self.judged.task or "?",
            rid=answer.get("request_id"),
            device_id=state.device_id,
            exchange=self.ex.index,
            issued_at=self.ex.ended or self.ex.started,
            payload=answer,
            downloads=list(getattr(self, "downloads", [])),
            signature=task_signature(answer),
        )
        self.check_resent(state, task)
        self.engine.issued[key] = task
        if previous is not None and previous.device_id == state.device_id:
            state.finished.pop(key, None)
        state.outstanding[key] = task
        return key

    def check_resent(self, state: DeviceState, task: IssuedTask) -> None:
        """TASK-RESENT: the same task (all but its request_id) sent again after the device failed it,
        more than RESEND_LIMIT times; reported once per failed task."""
        failed = state.failed.get(task.signature)
        if failed is None:
            return
        failed.resent.append(task.rid)
        if len(failed.resent) <= RESEND_LIMIT or failed.reported:
            return
        failed.reported = True
        self.finding(
            "TASK-RESENT",
            f"the server sent {task.task} to {state.device_id} again (request_id {task.rid!r}): "
            f"{len(failed.resent)} times since the device failed it with code {failed.code!r} (request_id "
            f"{failed.rid!r}, exchange #{failed.exchange}); re-sent as request_ids {failed.resent}. A failed "
            f"task must not be re-sent forever: every later task waits behind it",
            "answer",
            pointer="/request_type",
            expected=f"at most {RESEND_LIMIT} re-sends of a failed task",
            actual=len(failed.resent),
        )

    def check_cadence(self, state: DeviceState) -> None:
        last = state.last_poll
        if last is None or last.kind == "none":
            return
        cfg = self.engine.config
        idle = last.kind == "idle"
        nominal = self.engine._scaled("idle_interval_s" if idle else "task_interval_s")
        busy = 0.0
        if not idle and last.task_rid in state.last_result_end:
            busy = max(0.0, state.last_result_end[last.task_rid] - last.ended)
        low, high = cadence_window(nominal, cfg.tolerance, cfg.allowance_s, busy)
        gap = self.ex.started - last.ended
        if low <= gap <= high:
            return
        rule = "CADENCE-IDLE" if idle else "CADENCE-TASK"
        after = self.engine.contract.idle_task if idle else "a task"
        self.finding(
            rule,
            f"taskRequest came {gap:.3f} s after the answer with {after} (exchange #{last.exchange}); "
            f"expected {nominal:.3f} s (accepted {low:.3f}–{high:.3f} s)",
            "request",
            expected=f"{low:.3f}..{high:.3f} s",
            actual=round(gap, 3),
        )

    def check_devtime(self, state: DeviceState, request: Any) -> None:
        if not state.devtime or not isinstance(request, dict):
            return
        stamp = request.get("time_stamp")
        set_to, set_at, index = state.devtime
        state.devtime = None
        if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
            return
        expected = set_to + (self.ex.started - set_at)
        slack = self.engine.config.devtime_tolerance_s + 1.0  # +1: time_stamp has whole seconds
        if abs(stamp - expected) > slack:
            self.finding(
                "DEVTIME-APPLIED",
                f"setDevTime (exchange #{index}) set the clock to {set_to}; this "
                f"taskRequest should carry ~{expected:.0f} but carries {stamp} ({stamp - expected:+.0f} s)",
                "request",
                pointer="/time_stamp",
                expected=round(expected),
                actual=stamp,
            )

    def on_taskResult(self, state: DeviceState, request: Any, answer: Any) -> None:
        if not isinstance(request, dict):
            return
        engine, ex = self.engine, self.ex
        key = rid_key(request.get("request_id"))
        task = state.outstanding.get(key) if key else None
        if task is not None:
            task.results += 1
            task.result_code = request.get("code")
            state.finished[key] = state.outstanding.pop(key)  # type: ignore[index]
            state.last_result_end[key] = ex.ended or ex.started  # type: ignore[index]
            if task.result_code == 0:
                state.failed.pop(task.signature, None)
                self.after_success(state, task, request)
            elif isinstance(task.result_code, int) and not isinstance(task.result_code, bool):
                state.failed.setdefault(task.signature, FailedTask(task.task, task.rid, task.result_code, ex.index))
            return
        if key and key in state.finished:
            done = state.finished[key]
            done.results += 1
            self.finding(
                "RESULT-DUPLICATE",
                f"second taskResult for {done.task} request_id {request.get('request_id')!r} "
                f"(result #{done.results}); each task gets exactly one",
                "request",
                pointer="/request_id",
                expected="1 result",
                actual=done.results,
            )
            return
        foreign = engine.issued.get(key) if key else None
        if foreign is not None and foreign.device_id != state.device_id:
            self.finding(
                "RESULT-UNKNOWN-ID",
                f"taskResult from {state.device_id} for request_id {request.get('request_id')!r}, "
                f"which was given to {foreign.device_id}",
                "request",
                pointer="/request_id",
                expected=f"an id given to {state.device_id}",
                actual=request.get("request_id"),
            )
            if self.accepted(answer):
                self.finding(
                    "RESULT-FOREIGN-ACCEPTED",
                    f"the server accepted {state.device_id}'s result for a task it gave "
                    f"{foreign.device_id} (request_id {request.get('request_id')!r}); it must refuse it",
                    "answer",
                    expected="4xx or code != 0",
                    actual=answer if answer is not None else ex.status,
                )
            return
        if state.polls == 0:
            return  # joined mid-conversation: the task was sent before the capture began
        if state.last_poll and state.last_poll.kind == "idle" and not state.outstanding:
            self.finding(
                "RESULT-FOR-IDLE",
                f"taskResult (request_id {request.get('request_id')!r}) after an {self.engine.contract.idle_task} "
                f"answer; {self.engine.contract.idle_task} has no request_id and gets no result",
                "request",
                pointer="/request_id",
                expected="no taskResult",
                actual=request.get("request_id"),
            )
            return
        expected = sorted(state.outstanding) or "an issued request_id"
        if len(state.outstanding) == 1:
            # the one open task was answered, under a wrong id: one fault, not two
            only = next(iter(state.outstanding.values()))
            only.missing_reported = True
        self.finding(
            "RESULT-UNKNOWN-ID",
            f"taskResult for request_id {request.get('request_id')!r}, which was never given to {state.device_id}",
            "request",
            pointer="/request_id",
            expected=expected,
            actual=request.get("request_id"),
        )

    def accepted(self, answer: Any) -> bool:
        if not is_ok_status(self.ex):
            return False
        return not isinstance(answer, dict) or answer.get("code", 0) == 0

    def after_success(self, state: DeviceState, task: IssuedTask, result: dict[str, Any]) -> None:
        if task.task == "setDevTime" and isinstance(task.payload.get("time_stamp"), int):
            state.devtime = (task.payload["time_stamp"], task.issued_at, task.exchange)
        if task.task == "faceCmd":
            state.facecmd = (self.ex.started, 0, task.exchange)
        if self.engine.config.check_downloads:
            for url in task.downloads:
                if not any(
                    task.issued_at - 1e-3 <= at <= self.ex.started and _same_url(url, got)
                    for at, got in self.engine.fetched
                ):
                    self.finding(
                        "DOWNLOAD-FETCHED",
                        f"{task.task} (request_id {task.rid!r}) reported success but {url} was never fetched",
                        "request",
                        pointer="/code",
                        expected=f"GET {url}",
                        actual="no download",
                    )

    def check_snap_time(self, request: dict[str, Any]) -> None:
        if not self.errors_at("/snap_time", "/snap_time_ms"):
            for item in snap_time_issues(request, "faceRecognition request"):
                self.issue(item, "request")

    def on_faceRecognition(self, state: DeviceState, request: Any, answer: Any) -> None:
        if not isinstance(request, dict):
            return
        if state.facecmd:
            state.facecmd = None
        self.check_path_names(request, answer)
        if not isinstance(answer, dict):
            return
        for name in self.engine.contract.echo_fields(self.endpoint.name, self.version):
            if name in answer and name in request and answer[name] != request[name]:
                self.finding(
                    "ACK-ECHO",
                    f"faceRecognition answer {name} is {answer[name]!r}; it must echo the capture's {request[name]!r}",
                    "answer",
                    pointer=f"/{name}",
                    expected=request[name],
                    actual=answer[name],
                )
        code = answer.get("code")
        if self.request_errors == 0 and isinstance(code, int) and code != 0:
            self.finding(
                "ACK-CODE",
                f"faceRecognition answer code {code} for a capture with no errors; 0 means received",
                "answer",
                pointer="/code",
                expected=0,
                actual=code,
            )

    def check_path_names(self, request: dict[str, Any], answer: Any) -> None:
        """FRPIC-PATH-ACCEPTED: a file-name field (x-file-name) that broke its pattern is a path; a
        server that acknowledged it as accepted (code 0, or an empty 2xx) may have written through it.
        A refusal (4xx, code != 0) passes."""
        broken = [f for f in self.judged.findings if f.rule == "MSG-FORMAT" and f.direction == "request"]
        if not broken or not self.accepted(answer):
            return
        names = self.engine.contract.file_name_pointers(self.endpoint.request, request, self.version)
        how = f"code {answer.get('code', 0)}" if isinstance(answer, dict) else f"HTTP {self.ex.status} with no refusal"
        for pointer, value in sorted({f.pointer: f.actual for f in broken if f.pointer in names}.items()):
            self.finding(
                "FRPIC-PATH-ACCEPTED",
                f"capture {pointer[1:]} {abbreviate(value, 60)} is a path, not a file "
                f"name, and the server acknowledged it as accepted ({how}): from outside nobody can tell "
                "whether it was neutralised. Check on the server by hand: where it writes capture images, "
                "that no file was created or overwritten outside that folder through this name, and that "
                "the capture was stored under a sanitised name",
                "answer",
                pointer=pointer,
                expected="a refusal: 4xx or code != 0",
                actual=answer if isinstance(answer, dict) else self.ex.status,
            )

    def on_gpsReport(self, state: DeviceState, request: Any, answer: Any) -> None:
        if not isinstance(request, dict):
            return
        lat, lon = request.get("latitude"), request.get("longitude")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lat, lon)):
            return
        previous, state.last_gps = state.last_gps, (self.ex.started, float(lat), float(lon))
        if previous is None:
            return
        cfg = self.engine.config
        moved = haversine_m(previous[1], previous[2], lat, lon)
        gap = self.ex.started - previous[0]
        min_gap = self.engine._scaled("gps_min_interval_s") * (1 - cfg.tolerance)
        min_move = self.engine.timing["gps_min_distance_m"]
        if gap < min_gap and moved < min_move:
            self.finding(
                "GPS-CADENCE",
                f"gpsReport {gap:.3f} s after the previous one and only {moved:.1f} m away; "
                f"a report needs > {self.engine._scaled('gps_min_interval_s'):.3f} s or > {min_move:.0f} m",
                "request",
                expected=f">= {min_gap:.3f} s or >= {min_move:.0f} m",
                actual=f"{gap:.3f} s, {moved:.1f} m",
            )
        distance = request.get("distance")
        if isinstance(distance, (int, float)) and not isinstance(distance, bool):
            slack = max(cfg.gps_distance_tolerance_m, 0.1 * moved)
            if abs(distance - moved) > slack:
                self.finding(
                    "GPS-DISTANCE",
                    f"gpsReport distance {distance} m but the positions are {moved:.1f} m apart (haversine)",
                    "request",
                    pointer="/distance",
                    expected=round(moved, 1),
                    actual=distance,
                )


def _same_url(wanted: str, got: str) -> bool:
    if wanted == got:
        return True
    tail = wanted.split("://", 1)[-1]
    tail = tail[tail.find("/") :] if "/" in tail else "/"
    return got == tail or got.endswith(tail)


def message_kinds(contract: Contract) -> list[str]:
    """Names accepted by ``judge_message``: endpoints (device message), their
    answers (``<endpoint>-answer``; ``task`` for the taskRequest answer) and
    any schema name."""
    kinds = list(contract.all_endpoints) + [f"{e}-answer" for e in contract.all_endpoints] + ["task"]
    return kinds + sorted(contract.raw)


def judge_message(engine: Engine, kind: str, raw: bytes) -> list[Finding]:
    """Judge one message on its own (no conversation): parse, schema, content."""
    contract = engine.contract
    if kind in contract.all_endpoints:
        endpoint, direction, schema = contract.all_endpoints[kind], "request", contract.all_endpoints[kind].request
    elif kind.endswith("-answer") and kind[: -len("-answer")] in contract.all_endpoints:
        endpoint = contract.all_endpoints[kind[: -len("-answer")]]
        direction, schema = "answer", endpoint.answer
    elif kind == "task":
        endpoint, direction, schema = contract.all_endpoints["taskRequest"], "answer", "tasks"
    elif kind in contract.raw:
        direction, schema = ("request" if kind.startswith("device/") else "answer"), kind
        endpoint = next(
            (e for e in contract.all_endpoints.values() if kind in (e.request, e.answer)),
            contract.all_endpoints["taskResult" if kind.startswith("device/results/") else "taskRequest"],
        )
    else:
        raise ValueError(f"unknown message kind {kind!r}; one of: {', '.join(message_kinds(contract))}")
    with engine._lock:
        exchange = Exchange("POST", endpoint.path, raw if direction == "request" else b"", started=0.0, ended=0.0)
        exchange.index = engine.count
        engine.count += 1
        judged = Judged(exchange, endpoint.name, "")
        judge = _Judge(engine, exchange, endpoint, judged)
        if schema == "tasks":
            exchange.response_body = raw
            judge.judge_task(None)
            return judged.findings
        body = judge.parse(raw, direction, f"{kind} message", schema)
        if isinstance(body, dict):
            judge.validate(schema, body, direction, f"{kind} message")
            if schema == contract.all_endpoints["faceRecognition"].request and not judge.errors_at(
                "/snap_time", "/snap_time_ms"
            ):
                for item in snap_time_issues(body, f"{kind} message"):
                    judge.issue(item, direction)
        return judged.findings
