"""The engine: exchanges in, findings out, for every tap alike.

One exchange is judged in four stages, the same for every tap:

1. the request (:meth:`Engine.judge_request`): its body read within the contract's limits, the
   device it is from, its framing (method, endpoint version), its schema and annotated content.
   It needs no conversation state but the task a taskResult's request_id names, so it runs
   outside the engine's lock, before the answer exists: a tap that answers (the mock server)
   decides its answer from it;
2. the answer: status, schema (a taskRequest answer by the task it names);
3. the conversation rules of the endpoint, one function per rule over the device's
   :class:`DeviceState` (:mod:`facecert.core.rules.conversation`);
4. liveness: a message from a device whose polls had stopped (POLL-STOPPED).

:meth:`Engine.feed` runs them all; handed the request's judgement, it starts at the answer and
reads and judges nothing of the request again. :func:`judge_message` runs stage 1 or 2 alone on
one message. Every finding is made in one place, :meth:`Engine.finding`, from the
:class:`Issue` a rule returns. Profiles only change severities, after a finding is made, so both
profiles see the same facts.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from facecert.core.contract import Contract, Endpoint, Limits, get_contract
from facecert.core.defaults import CADENCE_ALLOWANCE_S, CADENCE_TOLERANCE
from facecert.core.memo import Memo
from facecert.core.model import MESSAGE_BUDGET, Exchange, Finding, Severity, bounded
from facecert.core.profiles import Context, Profile, load_profile
from facecert.core.rules import conversation as rules
from facecert.core.rules.conversation import (
    POLLS_FOR_RHYTHM,
    RESEND_LIMIT,
    AnswerKind,
    DeviceState,
    IssuedTask,
    Pace,
    PollState,
    ResultFor,
    is_ok_status,
    peer_host,
    rid_key,
    same_url,
    utc_clock,
)
from facecert.core.rules.message import Issue, Parsed, content_issues, parse_message, schema_issues, snap_time_issues
from facecert.core.rules.registry import RULES
from facecert.core.versions import since_ok

__all__ = [
    "POLLS_FOR_RHYTHM",
    "RESEND_LIMIT",
    "Direction",
    "Engine",
    "EngineConfig",
    "Judged",
    "Request",
    "Where",
    "judge_message",
    "message_kinds",
]

# Reads one body within the limits: (raw, limits, what, content fields) -> Parsed. A tap may hand the
# engine its own (the mock server reads big bodies in a worker process), doing what parse_message does.
BodyReader = Callable[[bytes | None, Limits, str, frozenset[str]], Parsed]


class Direction(enum.StrEnum):
    """Which message of an exchange a finding is about (``Finding.direction``)."""

    REQUEST = "request"  # device -> server
    ANSWER = "answer"  # server -> device


class Where(NamedTuple):
    """What a finding is about besides its rule: the exchange (its index; -1: none at hand), the
    endpoint and the device."""

    exchange: int
    endpoint: str
    device_id: str


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
    # findings kept in ``Engine.findings``: a tap that stores them elsewhere as they come (the mock server,
    # through its listeners and its database) keeps none, or a server running for days grew by each
    keep_findings: bool = True


@dataclass(slots=True)
class Request:
    """The engine's judgement of a request, made before its answer exists (stage 1).

    ``findings`` are made (profile applied) but not yet recorded: :meth:`Engine.feed` records
    them with the rest of the exchange, numbered by its index. A tap that never feeds the
    exchange (the client left) leaves them unrecorded."""

    exchange: Exchange
    endpoint: Endpoint | None  # None: not a protocol path (other traffic)
    device_id: str = ""
    body: Any = None  # the parsed request; None when it was refused
    failure: Issue | None = None  # why it was refused (empty, too large, not JSON, ...)
    task: str | None = None  # a taskResult: the task its request_id names (None: none this engine knows)
    schema: str = ""  # the schema it was judged by
    findings: list[Finding] = field(default_factory=list)
    framing: list[Finding] = field(default_factory=list)  # of them, about the method and endpoint version

    def errors(self, framing: bool = True) -> list[Finding]:
        """The request's errors; without ``framing``, those of the message alone (its body: what
        :func:`judge_message` finds), not of how it was sent."""
        skip = () if framing else self.framing
        return [f for f in self.findings if f.severity is Severity.ERROR and not any(f is s for s in skip)]


class AnswerVerdict(NamedTuple):
    """What judging an answer's body gave (:meth:`_Judge.answer_body`): its parsed value (shared by every
    exchange that sends these bytes: read it, never change it), the issues reported with their direction
    and profile context, in order (findings are made from them anew for each exchange), and the task it
    carries with the URLs that task names."""

    value: Any
    recorded: tuple[tuple[Issue, Direction, Context | None], ...]
    task: str | None
    downloads: tuple[str, ...]


@dataclass(slots=True)
class Judged:
    """What the engine made of one exchange (handy for taps that answer or display)."""

    exchange: Exchange
    endpoint: str | None
    device_id: str
    request: Any = None
    answer: Any = None
    task: str | None = None
    findings: list[Finding] = field(default_factory=list)


# downloads seen (Engine.fetched) before the engine looks which of them an open task may still need
FETCHED_KEPT = 1024


class Engine:
    """Judge a stream of exchanges. Thread-safe: taps may feed from several threads."""

    def __init__(
        self, config: EngineConfig | None = None, contract: Contract | None = None, reader: BodyReader | None = None
    ) -> None:
        self.config = config or EngineConfig()
        self.contract = contract or get_contract()
        self.version = self.contract.check_version(self.config.protocol_version)
        self.limits = (self.config.limits or self.contract.limits).with_changes(max_body_bytes=self.config.max_body)
        self.profile: Profile = load_profile(self.config.profile)
        self.timing = self.contract.timing
        self.pace = self._pace()
        self.idle_task = self.contract.idle_task  # asked at every poll: looked up once
        self.reader: BodyReader = reader or parse_message
        self.findings: list[Finding] = []
        self.devices: dict[str, DeviceState] = {}
        self.issued: dict[str, IssuedTask] = {}
        self.fetched: list[tuple[float, str]] = []
        self._forget_fetched_at = FETCHED_KEPT
        self.other_traffic = 0
        self.count = 0
        self.last_time = 0.0
        self.listeners: list[Callable[[Finding], None]] = []
        self.paused_since: float | None = None  # the tap cannot see polls (see tap_paused)
        self.resumed_at = 0.0
        self._lock = threading.RLock()
        # an answer's verdict (parsed body, findings but where, task) is a pure function of its endpoint, its
        # exact bytes and whether it was redacted, for this engine's contract, version, limits and profile;
        # answers repeat (the idle answer, the acknowledgement), so each is judged once (bounded, see Memo)
        self.answers = Memo()
        # per schema: its validator's is_valid, and whether any content mark is reachable (see judge_body)
        self.schema_checks: dict[str, tuple[Callable[[Any], bool], bool]] = {}
        self.capture_schema = self.contract.all_endpoints["faceRecognition"].request  # snap_time is judged on it
        self.in_version = frozenset(self.contract.endpoints(self.version))  # what framing's version check passes

    def _pace(self) -> Pace:
        cfg, scale = self.config, self.config.time_scale
        return Pace(
            idle_s=self.timing["idle_interval_s"] * scale,
            task_s=self.timing["task_interval_s"] * scale,
            result_timeout_s=self.contract.result_deadline_s * scale,
            gps_min_interval_s=self.timing["gps_min_interval_s"] * scale,
            gps_min_distance_m=self.timing["gps_min_distance_m"],
            tolerance=cfg.tolerance,
            allowance_s=cfg.allowance_s,
            devtime_tolerance_s=cfg.devtime_tolerance_s,
            gps_distance_tolerance_m=cfg.gps_distance_tolerance_m,
        )

    # ---- public ----------------------------------------------------------
    def judge_request(self, exchange: Exchange) -> Request:
        """Stage 1 on ``exchange``'s request (its answer need not exist yet): read, device, framing,
        schema, content. Thread-safe; takes the engine's lock only to look up the task a result
        names. Hand the result to :meth:`feed` with the same exchange once it is answered."""
        endpoint = self.contract.endpoint_for_path(exchange.path)
        if endpoint is None:
            return Request(exchange, None)
        return _Judge(self, exchange, endpoint).request()

    def feed(self, exchange: Exchange, request: Request | None = None) -> Judged:
        """Judge one exchange and record its findings. ``request``: the judgement of its request
        made earlier by :meth:`judge_request` on this same exchange (not made again)."""
        judge: _Judge | None = None
        if request is None:  # judged here, before the lock: one big message holds up no other feeder
            endpoint = self.contract.endpoint_for_path(exchange.path)
            if endpoint is None:
                request = Request(exchange, None)
            else:
                judge = _Judge(self, exchange, endpoint)  # kept for the later stages (judge_request, inlined)
                request = judge.request()
        elif request.exchange is not exchange:
            raise ValueError("the request was judged on another exchange")
        answer: Parsed | AnswerVerdict | None = None
        if request.endpoint is not None:  # the answer is read before the lock too, unless judged before
            raw = exchange.response_body
            if raw is not None and len(raw) <= self.answers.max_body:
                answer = self.answers.get((request.endpoint.name, exchange.redacted, raw))
            if answer is None:
                answer = self.read(raw, f"{request.endpoint.name} answer")
        with self._lock:
            exchange.index = self.count if exchange.index < 0 else exchange.index
            self.count += 1
            self.last_time = max(self.last_time, exchange.ended or exchange.started)
            if request.endpoint is None:
                self._other(exchange)
                return Judged(exchange, None, "")
            if judge is None:
                judge = _Judge(self, exchange, request.endpoint, request, answer)
            else:  # the judge of the request goes on (its device is the request's)
                judge.heard, judge.answer_read = request, answer
            judged = judge.complete()
            self._record(judged.findings)
            return judged

    def read(self, raw: bytes | None, what: str) -> Parsed:
        """One body parsed within this engine's limits (thread-safe: no state)."""
        return self.reader(raw, self.limits, what, self.contract.content_fields)

    def check_message(self, kind: str, raw: bytes) -> list[Finding]:
        """The findings of one message on its own (see :func:`judge_message`), made but not
        recorded: no state is read or changed, no lock taken."""
        endpoint, direction, schema = _message_kind(self.contract, kind)
        exchange = Exchange(
            "POST", endpoint.path, raw if direction is Direction.REQUEST else b"", started=0.0, ended=0.0
        )
        if schema == "tasks":
            exchange.response_body = raw
        return _Judge(self, exchange, endpoint).message(kind, direction, schema, raw)

    def finish(self, until: float | None = None, stall_at: float = 0.0) -> list[Finding]:
        """End of the session: tasks never answered, captures never made. ``until`` is when the
        session ended, when the tap knows it (a device that polled no more before then stopped);
        without it a stop shows only by the device's own later messages (a capture that just ends
        stops nobody). ``stall_at``: the tap's stall clock then (facecert.stalls)."""
        with self._lock:
            made: list[Finding] = []
            if until is not None:
                for state in self.devices.values():
                    end = f"the end of the session at {utc_clock(until)}"
                    made.extend(self._check_stop(state, until, end, stall_at))
            for state in self.devices.values():
                missing = rules.results_missing_at_end(state, self.last_time, self.pace.result_timeout_s)
                made.extend(self.finding(i, _missing_where(state), Direction.REQUEST) for i in missing)
                if state.facecmd and state.facecmd[1] >= 1:
                    made.append(self.finding(rules.facecmd_missing(state), _capture_where(state), Direction.REQUEST))
            return self._record(made)

    def check_deadlines(self, now: float, in_flight: Collection[str] = (), stall_at: float = 0.0) -> list[Finding]:
        """Tasks past the result deadline and devices that stopped polling (a live tap calls this
        on a timer). ``in_flight``: devices whose poll the tap holds unanswered (a slow answer),
        which are not judged stopped meanwhile. ``stall_at``: the tap's stall clock ``now``
        (facecert.stalls): a device is given the time the tap could not run on top of its wait."""
        with self._lock:
            made: list[Finding] = []
            for state in self.devices.values():
                late = rules.results_past_deadline(state, now, self.pace.result_timeout_s)
                made.extend(self.finding(i, _missing_where(state), Direction.REQUEST) for i in late)
                if state.device_id not in in_flight:
                    made.extend(self._check_stop(state, now, None, stall_at))
            return self._record(made)

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
        return self.pace.longest_wait()

    def _poll_due(self, state: DeviceState, stall_at: float = 0.0) -> float | None:
        return rules.poll_due(state, self.pace, self.paused_since is not None, self.resumed_at, stall_at)

    def _check_stop(self, state: DeviceState, at: float, evidence: str | None, stall_at: float) -> list[Finding]:
        """POLL-STOPPED once per stop, about the device's last poll (made, not recorded)."""
        issue = rules.poll_stopped(state, self._poll_due(state, stall_at), at, evidence)
        if issue is None or state.last_poll is None:
            return []
        where = Where(state.last_poll.exchange, "taskRequest", state.device_id)
        state.last_poll.stop = self.finding(issue, where, Direction.REQUEST)
        return [state.last_poll.stop]

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    # ---- findings ---------------------------------------------------------------
    def finding(self, issue: Issue, where: Where, direction: Direction, ctx: Context | None = None) -> Finding:
        """The one place a finding is made: ``issue`` (what a rule found) with the registry's
        severity, party and spec section, ``where`` it happened, the profile applied. Recording it
        (``findings``, ``listeners``) is the caller's: feed records an exchange's findings together."""
        rule = RULES[issue.rule]
        party = rule.party
        if party == "sender":
            party = "device" if direction is Direction.REQUEST else "server"
        made = Finding(
            rule=issue.rule,
            severity=rule.severity,
            message=bounded(issue.message, MESSAGE_BUDGET),  # some quote what the peer sent (a request_id)
            spec=rule.spec,
            party=party,
            exchange=where.exchange,
            endpoint=where.endpoint,
            direction=direction.value,
            pointer=issue.pointer,
            expected=bounded(issue.expected),  # may hold the peer's values too (ACK-ECHO)
            actual=bounded(issue.actual),  # quoted within QUOTE_BUDGET: it lives as long as the session
            device_id=where.device_id,
        )
        return self.profile.apply(made, ctx or Context())

    def _record(self, findings: list[Finding]) -> list[Finding]:
        """Findings become the session's (in order), and each is shown to the listeners."""
        keep = self.config.keep_findings
        for made in findings:
            if keep:
                self.findings.append(made)
            for listener in self.listeners:
                try:
                    listener(made)
                except Exception:  # noqa: BLE001 - a display problem must not stop judging
                    pass
        return findings

    def _other(self, exchange: Exchange) -> None:
        """Non-protocol traffic: passes, and GETs count as downloads for DOWNLOAD-FETCHED."""
        self.other_traffic += 1
        if exchange.method.upper() == "GET" and is_ok_status(exchange):
            self.fetched.append((exchange.started, exchange.url or exchange.path))
            if len(self.fetched) >= self._forget_fetched_at:
                self.forget_fetched()
                self._forget_fetched_at = max(FETCHED_KEPT, 2 * len(self.fetched))  # amortised when none can go

    def forget_fetched(self) -> None:
        """Forget the downloads no open task can still count: DOWNLOAD-FETCHED looks only between a task
        and its result, and a server that serves downloads for days kept every one (and looked through
        all of them at each result). An open task whose result was said missing (a device that rebooted
        mid-upgrade) keeps only the downloads of its own URLs: one lost task would keep every later
        download for the rest of the session."""
        with self._lock:
            waiting = [task for state in self.devices.values() for task in state.outstanding.values() if task.downloads]
            since = min((task.issued_at for task in waiting if not task.missing_reported), default=None)
            lost = [task for task in waiting if task.missing_reported]
            if since is None and not lost:
                self.fetched.clear()
                return

            def needed(at: float, url: str) -> bool:
                if since is not None and at >= since - 1e-3:
                    return True
                return any(
                    at >= task.issued_at - 1e-3 and any(same_url(u, url) for u in task.downloads) for task in lost
                )

            self.fetched[:] = [f for f in self.fetched if needed(*f)]


def _missing_where(state: DeviceState) -> Where:
    return Where(-1, "taskResult", state.device_id)  # RESULT-MISSING: about the result that never came


def _capture_where(state: DeviceState) -> Where:
    return Where(-1, "faceRecognition", state.device_id)  # FACECMD-CAPTURE: about the capture that never came


class _Judge:
    """Judges one exchange: the stages of feed (and of a single message) over one instance."""

    def __init__(
        self,
        engine: Engine,
        exchange: Exchange,
        endpoint: Endpoint,
        heard: Request | None = None,
        answer_read: Parsed | AnswerVerdict | None = None,
    ) -> None:
        self.engine = engine
        self.ex = exchange
        self.endpoint = endpoint
        self.version = engine.version
        self.heard = heard  # the request's judgement (stage 1), once made
        self.answer_read = answer_read  # the answer body, read before the engine's lock (or its verdict)
        self.recording: list[tuple[Issue, Direction, Context | None]] | None = None  # see answer_body
        self.found: list[Finding] = []  # this exchange's findings, in the order made
        self.device_id = heard.device_id if heard else ""
        self.task: str | None = None  # the task a taskRequest answer carries (when the contract knows it)
        self.task_downloads: list[str] = []  # the URLs that task names (x-download)

    # ---- making findings ----------------------------------------------------
    def report(self, issues: Iterable[Issue | None], direction: Direction, ctx: Context | None = None) -> None:
        """What the rules found, as this exchange's findings (None: a rule that found nothing)."""
        where: Where | None = None  # made for the first issue: most messages have none
        for issue in issues:
            if issue is not None:
                where = where or Where(self.ex.index, self.endpoint.name, self.device_id)
                self.found.append(self.engine.finding(issue, where, direction, ctx))
                if self.recording is not None:
                    self.recording.append((issue, direction, ctx))

    def adopt(self, findings: Iterable[Finding]) -> None:
        """Findings the engine made elsewhere (about another exchange or endpoint) listed with this exchange's."""
        self.found.extend(findings)

    def errors_at(self, *pointers: str) -> bool:
        """A cross-field rule is moot when one of its fields is already wrong."""
        return any(f.pointer in pointers and f.severity is Severity.ERROR for f in self.found)

    # ---- the stages every message goes through ----------------------------------
    def read(self, raw: bytes | None, what: str, done: Parsed | None = None) -> Parsed:
        return done if done is not None else self.engine.read(raw, what)

    def report_read(self, parsed: Parsed, raw: bytes | None, direction: Direction, schema: str) -> None:
        """The refusal, or the findings of a message that is still judged (duplicate keys, unsafe integers)."""
        items = [parsed.failure] if parsed.failure is not None else parsed.issues
        if items:
            ctx = Context(schema=schema, body=parsed.value, empty_body=not (raw or b"").strip())
            self.report(items, direction, ctx)

    def judge_body(self, schema: str, body: dict[str, Any], direction: Direction, what: str) -> list[str]:
        """Schema, content annotations and (a capture) snap_time; returns the URLs the body names
        for download."""
        engine = self.engine
        contract = engine.contract
        checks = engine.schema_checks.get(schema)
        if checks is None:  # per schema, once: its validator's test and whether content marks are reachable
            annotated = contract.has_content_annotations(schema)
            checks = engine.schema_checks[schema] = (contract.validator(schema, self.version).is_valid, annotated)
        valid, annotated = checks
        violations = [] if valid(body) else schema_issues(contract, schema, body, self.version, what, engine.limits)
        required = contract.required_fields(schema, self.version) if violations else set()
        for item in violations:
            top = item.pointer.split("/")[1] if item.pointer.count("/") >= 1 else ""
            self.report([item], direction, Context(schema=schema, body=body, optional=top not in required))
        downloads: list[str] = []
        if annotated:
            issues, downloads = content_issues(contract, schema, body, self.version, what, redacted=self.ex.redacted)
            if issues:
                self.report(issues, direction, Context(schema=schema, body=body))
        if (
            direction is Direction.REQUEST
            and schema == engine.capture_schema
            and not self.errors_at("/snap_time", "/snap_time_ms")
        ):
            self.report(snap_time_issues(body, what), direction)  # a request error: judged before the answer
        return downloads

    def message(self, kind: str, direction: Direction, schema: str, raw: bytes) -> list[Finding]:
        """One message on its own (judge_message): the read and body stages, or a task's stage."""
        if schema == "tasks":
            self.judge_task()
            return self.found
        parsed = self.read(raw, f"{kind} message")
        self.report_read(parsed, raw, direction, schema)
        if isinstance(parsed.value, dict):
            self.judge_body(schema, parsed.value, direction, f"{kind} message")
        return self.found

    # ---- stage 1: the request -------------------------------------------------------
    def request(self) -> Request:
        ex, endpoint, engine = self.ex, self.endpoint, self.engine
        raw = ex.request_body
        what = f"{endpoint.name} request"
        parsed = self.read(raw, what)
        body = parsed.value
        declared = body.get("device_id") if isinstance(body, dict) else None
        named = isinstance(declared, str) and bool(declared)
        result = endpoint.name == "taskResult" and isinstance(body, dict)
        issued = self.issued_for(body) if result or not named else None
        schema, task = endpoint.request, None
        if result:
            task = issued.task if issued else None
            schema = engine.contract.result_schema(task)
        # the device first, so every finding of the exchange names it: its device_id, else the owner of
        # the task its request_id names, else the host it sends from
        device_id = str(declared) if named else (issued.device_id if issued else None) or peer_host(ex.peer) or "?"
        self.device_id = device_id
        self.report_read(parsed, raw, Direction.REQUEST, schema)
        framing_from = len(self.found)
        if ex.method != "POST" or endpoint.name not in engine.in_version:  # (most messages: nothing to say)
            self.report(self.framing(), Direction.REQUEST)
        framing = self.found[framing_from:]
        if isinstance(body, dict):
            self.judge_body(schema, body, Direction.REQUEST, what)
        return Request(ex, endpoint, device_id, body, parsed.failure, task, schema, list(self.found), framing)

    def issued_for(self, body: Any) -> IssuedTask | None:
        """The task a message's request_id names (a result's owner and schema)."""
        if not isinstance(body, dict):
            return None
        with self.engine._lock:
            return self.engine.issued.get(rid_key(body.get("request_id")) or "")

    def framing(self) -> list[Issue | None]:
        """HTTP-METHOD, ENDPOINT-NOT-IN-VERSION: how the message was sent."""
        ex, endpoint = self.ex, self.endpoint
        method = None
        if ex.method.upper() != "POST":
            method = Issue(
                "HTTP-METHOD",
                f"{endpoint.path} was requested with {ex.method}; device messages are POSTed",
                expected="POST",
                actual=ex.method,
            )
        version = None
        if endpoint.since is not None and not since_ok(endpoint.since, self.version):
            version = Issue(
                "ENDPOINT-NOT-IN-VERSION",
                f"{endpoint.path} exists from V{endpoint.since}; this session judges protocol V{self.version}",
                expected=f"V>={endpoint.since}",
                actual=self.version,
            )
        return [method, version]

    # ---- stages 2-4, once the exchange has its index (under the engine's lock) -------------
    def complete(self) -> Judged:
        assert self.heard is not None
        heard, ex = self.heard, self.ex
        for made in heard.findings:
            made.exchange = ex.index
        self.found = list(heard.findings)
        self.request_errors = sum(1 for f in heard.findings if f.severity is Severity.ERROR) if heard.findings else 0
        engine = self.engine
        state = engine.devices.get(self.device_id)
        if state is None:  # not setdefault: a DeviceState made for every exchange costs more than judging it
            state = engine.devices[self.device_id] = DeviceState(self.device_id)
        answer = self.judge_answer(heard.body)
        getattr(self, _ON[self.endpoint.name], _no_rules)(state, heard.body, answer)
        if self.endpoint.name != "taskRequest" and self.device_id:
            due = engine._poll_due(state, ex.stall_started)
            if due is not None and ex.started > due:  # (the evidence is written only for a stop)
                evidence = f"its {self.endpoint.name} at {utc_clock(ex.started)} (exchange #{ex.index})"
                self.adopt(engine._check_stop(state, ex.started, evidence, ex.stall_started))
        return Judged(ex, self.endpoint.name, self.device_id, heard.body, answer, self.task, self.found)

    def judge_answer(self, request: Any) -> Any:
        ex, endpoint = self.ex, self.endpoint
        if ex.status is None:
            self.report(
                [
                    Issue(
                        "ANSWER-MISSING",
                        f"no answer to {endpoint.path}: {ex.error or 'connection failed'}",
                        expected="an HTTP answer",
                        actual=ex.error or "none",
                    )
                ],
                Direction.ANSWER,
            )
            return None
        if not is_ok_status(ex):
            if not (self.request_errors > 0 and 400 <= ex.status < 500):  # a 4xx to a faulty request is right
                valid = not self.request_errors
                issue = Issue(
                    "ANSWER-HTTP-STATUS",
                    f"{endpoint.path} answered HTTP {ex.status} to a {'valid' if valid else 'faulty'} request",
                    expected="2xx" if valid else "2xx or 4xx",
                    actual=ex.status,
                )
                self.report([issue], Direction.ANSWER)
            return None
        if endpoint.name != "taskRequest":
            if request is None:
                return None  # a refused or unreadable message: any answer (4xx, an error code) is fair
            if not (ex.response_body or b"").strip() and self.engine.contract.may_answer_empty(endpoint.name):
                return None  # an empty 2xx acknowledges too (x-may-be-empty, errata #18)
        return self.answer_body()

    def answer_body(self) -> Any:
        """The answer's body judged (stage 2), or its verdict replayed when the engine judged these
        exact bytes for this endpoint before: the same findings, made anew for this exchange."""
        ex, endpoint, done = self.ex, self.endpoint, self.answer_read
        if isinstance(done, AnswerVerdict):
            for issue, direction, ctx in done.recorded:
                self.report((issue,), direction, ctx)
            self.task, self.task_downloads = done.task, list(done.downloads)
            return done.value
        self.recording = []
        if endpoint.name == "taskRequest":
            value = self.judge_task(done)
        else:
            parsed = self.read(ex.response_body, f"{endpoint.name} answer", done)
            self.report_read(parsed, ex.response_body, Direction.ANSWER, endpoint.answer)
            if isinstance(parsed.value, dict):
                self.judge_body(endpoint.answer, parsed.value, Direction.ANSWER, f"{endpoint.name} answer")
            value = parsed.value
        verdict = AnswerVerdict(value, tuple(self.recording), self.task, tuple(self.task_downloads))
        self.recording = None
        raw = ex.response_body
        if raw is not None:
            self.engine.answers.put((endpoint.name, ex.redacted, raw), len(raw), verdict)
        return value

    def judge_task(self, done: Parsed | None = None) -> Any:
        """A taskRequest answer: the task it names (TASK-UNKNOWN otherwise), by that task's schema."""
        raw = self.ex.response_body
        parsed = self.read(raw, "taskRequest answer", done)
        self.report_read(parsed, raw, Direction.ANSWER, "server/tasks")
        answer = parsed.value
        if not isinstance(answer, dict):
            return None
        contract = self.engine.contract
        name = answer.get("request_type")
        tasks = contract.tasks(self.version)
        if name not in tasks:
            known = name in contract.all_tasks
            why = (
                f"{name} exists only from V{contract.all_tasks[name].since}"
                if known
                else "request_type is missing"
                if name is None
                else f"{name!r} is not a task of the document"
            )
            issue = Issue(
                "TASK-UNKNOWN",
                f"taskRequest answer: {why} (protocol V{self.version})",
                pointer="/request_type",
                expected=sorted(tasks),
                actual=name,
            )
            self.report([issue], Direction.ANSWER)
            return answer
        self.task = name
        self.task_downloads = self.judge_body(tasks[name].schema, answer, Direction.ANSWER, f"{name} task")
        return answer

    # ---- stage 3: the conversation rules of each endpoint ----------------------------
    def on_taskRequest(self, state: DeviceState, request: Any, answer: Any) -> None:
        engine, ex, pace = self.engine, self.ex, self.engine.pace
        self.report(rules.cadence(state, ex.started, pace, engine.idle_task, ex.stall_started), Direction.REQUEST)
        self.report([rules.devtime_applied(state, request, ex.started, pace)], Direction.REQUEST)
        missing = rules.results_missing_at_poll(state, ex.started)
        self.adopt(engine.finding(i, _missing_where(state), Direction.REQUEST) for i in missing)
        capture = rules.facecmd_capture(state)
        if capture is not None:
            self.adopt([engine.finding(capture, _capture_where(state), Direction.REQUEST)])
        rules.count_poll(state)
        state.last_poll = self.poll_state(state, answer)

    def poll_state(self, state: DeviceState, answer: Any) -> PollState:
        """What this poll's answer gave the device (its next poll's cadence, its liveness); a task
        it carries is opened."""
        contract, ex = self.engine.contract, self.ex
        # after a task that sends the device elsewhere (contract.moves_away, errata #22) this server
        # cannot time its next poll, so no cadence is expected
        moves_away = self.task in contract.moves_away
        kind, rid = AnswerKind.NONE, None
        if isinstance(answer, dict) and self.task and not moves_away:
            kind = AnswerKind.IDLE if self.task == self.engine.idle_task else AnswerKind.TASK
            if kind is AnswerKind.TASK:
                rid = self.issue_task(state, answer)
        elif isinstance(answer, dict) and rid_key(answer.get("request_id")) is not None:
            rid = self.issue_task(state, answer)  # TASK-UNKNOWN with an id: the device's refusal (code != 0) answers it
        faulty = bool(self.found) and any(
            f.direction == Direction.ANSWER and f.severity is Severity.ERROR for f in self.found
        )
        ended = ex.ended if ex.ended is not None else ex.started
        stall = ex.stall_ended or ex.stall_started
        return PollState(ex.index, ended, kind, rid, away=moves_away, may_work=not faulty, stall_ended=stall)

    def issue_task(self, state: DeviceState, answer: dict[str, Any]) -> str | None:
        """The task the answer gives the device: REQUEST-ID-DUPLICATE, TASK-RESENT, then opened."""
        key = rid_key(answer.get("request_id"))
        if key is None:
            return None
        engine, ex = self.engine, self.ex
        self.report([rules.request_id_duplicate(engine.issued, answer)], Direction.ANSWER)
        task = IssuedTask(
            task=self.task or "?",
            rid=answer.get("request_id"),
            device_id=state.device_id,
            exchange=ex.index,
            issued_at=ex.ended or ex.started,
            payload=answer,
            downloads=list(self.task_downloads),
        )
        self.report([rules.task_resent(state, task)], Direction.ANSWER)
        rules.open_task(state, engine.issued, key, task)
        return key

    def on_taskResult(self, state: DeviceState, request: Any, answer: Any) -> None:
        if not isinstance(request, dict):
            return
        key = rid_key(request.get("request_id"))
        outcome = rules.result_for(state, self.engine.issued, key)
        _RESULT_RULES[outcome](self, state, key, request, answer)

    def result_for_open_task(self, state: DeviceState, key: str | None, request: dict[str, Any], answer: Any) -> None:
        assert key is not None
        ex = self.ex
        task = rules.close_task(state, key, request, ex.ended or ex.started, ex.index)
        if task.result_code == 0:
            rules.expect_after_success(state, task, ex.started)
            if self.engine.config.check_downloads:
                self.report(rules.downloads_fetched(task, self.engine.fetched, ex.started), Direction.REQUEST)
        task.settle()

    def result_for_finished_task(
        self, state: DeviceState, key: str | None, request: dict[str, Any], answer: Any
    ) -> None:
        assert key is not None
        self.report([rules.result_duplicate(state, key, request)], Direction.REQUEST)
        rules.busy_until(state, key, self.ex.ended or self.ex.started)

    def result_for_other_device(
        self, state: DeviceState, key: str | None, request: dict[str, Any], answer: Any
    ) -> None:
        foreign = self.engine.issued[key or ""]
        self.report([rules.result_of_other_device(state, foreign, request)], Direction.REQUEST)
        self.report([rules.foreign_result_accepted(state, foreign, request, self.ex, answer)], Direction.ANSWER)

    def result_before_capture(self, state: DeviceState, key: str | None, request: dict[str, Any], answer: Any) -> None:
        """Joined mid-conversation: the task was sent before the capture began; nothing to judge."""

    def result_for_idle(self, state: DeviceState, key: str | None, request: dict[str, Any], answer: Any) -> None:
        self.report([rules.result_for_idle(request, self.engine.idle_task)], Direction.REQUEST)

    def result_for_unknown(self, state: DeviceState, key: str | None, request: dict[str, Any], answer: Any) -> None:
        issue = rules.result_unknown_id(state, request)  # names the open tasks, before one is excused
        rules.answered_under_wrong_id(state)
        self.report([issue], Direction.REQUEST)

    def on_faceRecognition(self, state: DeviceState, request: Any, answer: Any) -> None:
        if not isinstance(request, dict):
            return
        state.facecmd = None  # the capture a faceCmd asked for (FACECMD-CAPTURE) came
        if rules.accepted(self.ex, answer):
            self.report(rules.paths_accepted(self.path_names(request), self.ex, answer), Direction.ANSWER)
        if not isinstance(answer, dict):
            return
        fields = self.engine.contract.echo_fields(self.endpoint.name, self.version)
        self.report(rules.ack_echo(request, answer, fields), Direction.ANSWER)
        self.report([rules.ack_code(answer, self.request_errors)], Direction.ANSWER)

    def path_names(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request's file-name fields (x-file-name) that broke their pattern: pointer -> value."""
        broken = [f for f in self.found if f.rule == "MSG-FORMAT" and f.direction == Direction.REQUEST]
        if not broken:
            return {}
        names = self.engine.contract.file_name_pointers(self.endpoint.request, request, self.version)
        return {f.pointer: f.actual for f in broken if f.pointer in names}

    def on_gpsReport(self, state: DeviceState, request: Any, answer: Any) -> None:
        if not isinstance(request, dict):
            return
        move = rules.gps_move(state, request, self.ex.started)
        if move is not None:
            pace = self.engine.pace
            self.report([rules.gps_cadence(move, pace), rules.gps_distance(move, request, pace)], Direction.REQUEST)


class _OnName(dict[str, str]):
    """Endpoint name -> the name of its conversation rules' method (``on_<endpoint>``), made once."""

    def __missing__(self, name: str) -> str:
        made = self[name] = f"on_{name}"
        return made


_ON = _OnName()


def _no_rules(state: DeviceState, request: Any, answer: Any) -> None:
    """An endpoint without conversation rules (deviceAlarm)."""


_RESULT_RULES: dict[ResultFor, Callable[[_Judge, DeviceState, str | None, dict[str, Any], Any], None]] = {
    ResultFor.OPEN_TASK: _Judge.result_for_open_task,
    ResultFor.FINISHED_TASK: _Judge.result_for_finished_task,
    ResultFor.OTHER_DEVICE: _Judge.result_for_other_device,
    ResultFor.BEFORE_CAPTURE: _Judge.result_before_capture,
    ResultFor.IDLE: _Judge.result_for_idle,
    ResultFor.UNKNOWN: _Judge.result_for_unknown,
}


def message_kinds(contract: Contract) -> list[str]:
    """Names accepted by ``judge_message``: endpoints (device message), their
    answers (``<endpoint>-answer``; ``task`` for the taskRequest answer) and
    any schema name."""
    kinds = list(contract.all_endpoints) + [f"{e}-answer" for e in contract.all_endpoints] + ["task"]
    return kinds + sorted(contract.raw)


def _message_kind(contract: Contract, kind: str) -> tuple[Endpoint, Direction, str]:
    """The endpoint, direction and schema a message kind names (see message_kinds)."""
    if kind in contract.all_endpoints:
        return contract.all_endpoints[kind], Direction.REQUEST, contract.all_endpoints[kind].request
    if kind.endswith("-answer") and kind[: -len("-answer")] in contract.all_endpoints:
        endpoint = contract.all_endpoints[kind[: -len("-answer")]]
        return endpoint, Direction.ANSWER, endpoint.answer
    if kind == "task":
        return contract.all_endpoints["taskRequest"], Direction.ANSWER, "tasks"
    if kind in contract.raw:
        direction = Direction.REQUEST if kind.startswith("device/") else Direction.ANSWER
        endpoint = next(
            (e for e in contract.all_endpoints.values() if kind in (e.request, e.answer)),
            contract.all_endpoints["taskResult" if kind.startswith("device/results/") else "taskRequest"],
        )
        return endpoint, direction, kind
    raise ValueError(f"unknown message kind {kind!r}; one of: {', '.join(message_kinds(contract))}")


def judge_message(engine: Engine, kind: str, raw: bytes) -> list[Finding]:
    """Judge one message on its own (no conversation), with the stages :meth:`Engine.feed` uses
    (read, then body: schema, content; a task by its task's schema), recorded as one exchange of
    the engine."""
    found = engine.check_message(kind, raw)
    with engine._lock:
        index = engine.count
        engine.count += 1
        for made in found:
            made.exchange = index
        return engine._record(found)
