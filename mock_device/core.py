"""The reference device's behaviour without I/O: a sans-I/O core, in the manner of h11.

:class:`DeviceCore` holds every decision the device makes: the poll body and when to poll,
how to carry out each task and what to report, the back-off after failures, the camera's,
alarms' and GPS schedules, the resume-transfer spool and every fault knob. It never opens a
socket, never sleeps and never reads a clock. A driver feeds it events and performs the
actions it returns:

- events: :meth:`~DeviceCore.start` (now is t), :meth:`~DeviceCore.receive` (the answer to
  request #n arrived: a :class:`~facecert.mock_device.flow.Reply` with status, bytes, times),
  :meth:`~DeviceCore.timer_fired` (timer #n fired), and the commands a test or a
  certification step gives (:meth:`~DeviceCore.capture_command`, :meth:`~DeviceCore.alarm_command`,
  :meth:`~DeviceCore.gps_on`);
- actions: :class:`Send` (send this request), :class:`Wait` (wake me at t) and
  :class:`Finished` (the command #n is done, with its value).

Two drivers exist: asyncio + httpx (:class:`facecert.mock_device.device.Device`, what
``facecert device``, the tests and the certification plans run) and Locust/gevent
(``mock_device/locustfile.py``, what ``facecert fleet`` runs). Neither holds protocol logic.

Inside, each activity is a generator of steps (mock_device.flow); the core resumes the one an
event concerns and turns its next step into an action. All of it is single-threaded: a driver
calls the core from one thread (its event loop).

Two clocks. The core's ``now`` is its own clock: the time a timer was due when it fires, the
time an answer ended when it arrives. Every :class:`Send` carries ``due``, when the device meant
to send it; the driver stamps when the bytes really left. The difference is the driver's lag
(an overloaded load generator), which is not the device's doing: the fleet judges a device on
its own clock and reports the lag apart (mock_device.verdict).
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from facecert.core.contract import get_contract
from facecert.core.model import Exchange
from facecert.core.rules.conversation import haversine_m
from facecert.core.rules.message import Issue, content_issues, parse_message
from facecert.mock_device import messages
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.facedb import FaceDB
from facecert.mock_device.faults import CADENCE_EARLY_FACTOR, CADENCE_LATE_FACTOR
from facecert.mock_device.flow import Flow, Oversized, Park, Reply, Request, Sleep, Step
from facecert.mock_device.gps import Route
from facecert.mock_device.spool import Spool
from facecert.mock_device.stats import DeviceStats
from facecert.mock_device.tasks import (
    BAD_PARAMETER,
    COMMAND_UNKNOWN,
    CURL_COULDNT_CONNECT,
    CURL_FILESIZE_EXCEEDED,
    CURL_HTTP_RETURNED_ERROR,
    CURL_OPERATION_TIMEDOUT,
    HANDLERS,
    DownloadFailed,
    Outcome,
    done,
)

logger = logging.getLogger("mock_device")
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
MAX_REJECTIONS = 5  # a capture the server explicitly refuses (2xx, code != 0) is retried this often, then dropped
_RANGE_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"})  # bound a value
_CAPTURE_LOCK = "capture-lock"  # one capture delivery (or spool replay) at a time
_SPOOL = "spool"  # something was spooled: the sender wakes
_GPS = "gps"  # GPS was switched on: the GPS activity wakes


def idle_task_name() -> str:
    """The task that has no result (idleTime): the catalogue says so, not this code."""
    return get_contract().idle_task


# ---- what the core asks of its driver ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Send this request and hand the outcome to :meth:`DeviceCore.receive` with ``ticket``."""

    ticket: int
    method: str
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float  # seconds for the whole exchange
    endpoint: str  # catalogue endpoint name, or "download" (a file a task names)
    due: float  # the device's own clock: when it meant to send this (epoch s)
    limit: int = 0  # largest answer read (bytes); past it the driver stops reading: flow.Oversized. 0: no limit


@dataclass(frozen=True, slots=True)
class Wait:
    """Call :meth:`DeviceCore.timer_fired` with ``ticket`` at ``until`` (epoch s)."""

    ticket: int
    until: float


@dataclass(frozen=True, slots=True)
class Finished:
    """The command given ``ticket`` is done: its value, or the exception it ended with."""

    ticket: int
    value: Any = None
    error: BaseException | None = None


Action = Send | Wait | Finished


class _Activity:
    """One running generator and what it waits for."""

    __slots__ = ("command", "due", "gen", "name", "timed")

    def __init__(self, gen: Flow[Any], name: str, command: int | None) -> None:
        self.gen = gen
        self.name = name
        self.command = command  # the ticket a Finished reports to, for commands
        self.due: float | None = None  # own clock of the step it waits on (a Sleep's until, a Request's due)
        self.timed = False  # resumed by its timer: what it sends now ends a wait the protocol times


class DeviceCore:
    """One simulated terminal's behaviour (see the module docstring for the events and actions)."""

    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self.contract = get_contract()
        self.version = self.contract.check_version(cfg.protocol_version)
        self.timing = self.contract.timing
        self.limits = self.contract.limits  # bounds on one answer: the contract's (catalogue.yaml limits:)
        self.server = cfg.server
        self.servers: list[str] = [cfg.server]
        self.faces = FaceDB()
        self.stats = DeviceStats(latency_samples=cfg.latency_samples)
        self.exchanges: list[Exchange] = []
        # kept only when recording (cfg.record), like the exchanges: a fleet's devices count them (stats)
        self.results: list[dict[str, Any]] = []
        self.captures_made: list[dict[str, Any]] = []  # (snap_time, frpic_name) of every capture, in order
        self.refused: dict[str, int] = {}  # answers the device could not use, by the engine's rule id
        self.resume_transfer = cfg.resume_transfer
        self.spool = Spool(cfg.spool_dir / cfg.device_id if cfg.spool_dir else None, cfg.spool_max)
        self.screen_savers: dict[str, bytes] = {}
        self.screen_saver_settings: dict[str, Any] = {}
        self.face_config: dict[str, Any] = {}
        self.first_face_count: int | None = None  # what getDevStatus reports under the static-face-count knob
        self.ws_server: str | None = None
        self.gps_enabled = False
        self.polling = True  # False once the stop-after-malformed-task knob has ended the poll loop
        self.now = 0.0  # the device's own clock, as the last event set it (epoch s, before setDevTime)
        # every exchange, with when the device meant to send it (its own clock) and whether it ended a timed
        # wait (a poll after its interval, a report after its GPS wait): the fleet's streaming judge
        self.on_exchange: Callable[[Exchange, float, bool], None] | None = None
        self._timed = False  # the activity being resumed was woken by its timer
        self._clock_offset = 0.0
        self._log: collections.deque[str] = collections.deque(maxlen=cfg.log_lines)
        self._random: random.Random | None = None  # made when first needed: 2.5 KB a device, a fleet has thousands
        self._face_seq = 0
        self._first_poll = True
        self._rejections: dict[str, int] = {}
        self._tickets = itertools.count(1)
        self._waiting: dict[int, _Activity] = {}  # ticket -> the activity a Send or a Wait will resume
        self._parked: dict[str, list[_Activity]] = {}
        self._signals: set[str] = set()  # sticky events: set until an activity waits on them
        self._ready: list[tuple[_Activity, Any]] = []  # a list: a deque's first block is 760 bytes, a device
        self._alive: set[_Activity] = set()
        self._poller: _Activity | None = None
        self._capture_locked = False
        self.running = False

    # ---- clock, log ------------------------------------------------------------------------------
    def clock(self) -> float:
        """The device's own clock (UTC seconds) as of the last event: what setDevTime moves."""
        return self.now + self._clock_offset

    def set_clock(self, epoch_s: float) -> None:
        self._clock_offset = epoch_s - self.now
        self.log(f"clock set to {int(epoch_s)}")

    @property
    def clock_offset(self) -> float:
        return self._clock_offset

    def log(self, message: str) -> None:
        try:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.clock()))
        except (OverflowError, OSError, ValueError):  # a clock no date shows: the log still takes the line
            stamp = f"{self.clock():.0f}"
        line = f"{stamp} {self.cfg.device_id} {message}"
        self._log.append(line)
        logger.debug(line)

    def log_text(self) -> str:
        return "\n".join(self._log)

    def scaled(self, key: str) -> float:
        return self.timing[key] * self.cfg.time_scale

    @property
    def rng(self) -> random.Random:
        """The device's own random source (captures, its route), seeded by its seed and id."""
        if self._random is None:
            self._random = random.Random(self.cfg.seed ^ zlib.crc32(self.cfg.device_id.encode()))
        return self._random

    # ---- events in, actions out ------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        """The device is switched on at ``now``: its poll loop, sender, camera and GPS begin."""
        if self.running:
            raise RuntimeError("device core already running")
        self.running = True
        self.now = now
        if len(self.spool):
            self._signals.add(_SPOOL)  # records left from a previous run
        if self.gps_enabled:
            self._signals.add(_GPS)
        self.log(f"starting: server {self.server}, protocol V{self.version}, time scale {self.cfg.time_scale}")
        self._poller = self._spawn(self._poll_loop(), "poll")
        self._spawn(self._sender_loop(), "sender")
        if self.cfg.captures_per_minute > 0:
            self._spawn(self._capture_loop(), "camera")
        self._spawn(self._gps_loop(), "gps")
        return self._pump()

    def receive(self, ticket: int, reply: Reply) -> list[Action]:
        """The outcome of the request sent for ``ticket``."""
        activity = self._waiting.pop(ticket, None)
        if activity is None:
            return []  # stopped meanwhile
        self.now = reply.ended or self.now
        self._ready.append((activity, reply))
        return self._pump()

    def timer_fired(self, ticket: int, now: float) -> list[Action]:
        """The timer of ``ticket`` fired at ``now``; the device's clock reads the time it was due."""
        activity = self._waiting.pop(ticket, None)
        if activity is None:
            return []
        self.now = activity.due if activity.due is not None else now
        activity.timed = True
        self._ready.append((activity, self.now))
        return self._pump()

    def capture_command(self, kind: str, now: float) -> tuple[int, list[Action]]:
        """The camera makes one capture now; Finished carries its body once delivered or spooled.
        Under the no-capture knob it is made and never sent (faceCmd's captures still are)."""
        return self._command(self._camera_capture(kind), "capture", now)

    def alarm_command(self, alarm_type: int, status: int, now: float) -> tuple[int, list[Action]]:
        """Raise an alarm now; Finished carries the exchange (None when the no-alarm knob swallows it)."""
        return self._command(self.send_alarm(alarm_type, status), "alarm", now)

    def gps_on(self, now: float | None = None) -> list[Action]:
        """Start reporting along the route (before or after start)."""
        self.gps_enabled = self.gps_allowed()
        if "no-gps" in self.cfg.faults:
            self.gps_enabled = False
            self.log("GPS switched on; no gpsReport will be sent")
        elif not self.gps_enabled:
            self.log(f"gpsReport does not exist in protocol V{self.version}; GPS stays off")
        else:
            if now is not None:
                self.now = now
            self._signal(_GPS)
        return self._pump() if self.running else []

    def gps_off(self) -> None:
        self.gps_enabled = False

    def stop(self) -> None:
        """Switched off: every activity ends where it is (the driver drops its timers and requests)."""
        for activity in list(self._alive):
            activity.gen.close()
        self._alive.clear()
        self._waiting.clear()
        self._parked.clear()
        self._ready.clear()
        self._signals.discard(_GPS)
        self._capture_locked = False
        self._poller = None
        self.running = False

    def poll_due(self) -> float | None:
        """When the poll loop means to act next (own clock: its timer's due time, or when it sent the
        request it waits on); None once it has ended (the stop-after-malformed-task knob)."""
        poller = self._poller
        return poller.due if poller is not None and poller in self._alive else None

    # ---- the scheduler ---------------------------------------------------------------------------
    def _spawn(self, gen: Flow[Any], name: str, command: int | None = None) -> _Activity:
        activity = _Activity(gen, name, command)
        self._alive.add(activity)
        self._ready.append((activity, None))
        return activity

    def _command(self, gen: Flow[Any], name: str, now: float) -> tuple[int, list[Action]]:
        if not self.running:
            raise RuntimeError("device not started")
        ticket = next(self._tickets)
        self.now = now
        self._spawn(gen, name, ticket)
        return ticket, self._pump()

    def _pump(self) -> list[Action]:
        actions: list[Action] = []
        while self._ready:
            activity, value = self._ready.pop(0)
            if activity in self._alive:
                self._advance(activity, value, actions)
        return actions

    def _advance(self, activity: _Activity, value: Any, actions: list[Action]) -> None:
        self._timed, activity.timed = activity.timed, False
        try:
            step: Step = activity.gen.send(value)
        except StopIteration as end:
            self._alive.discard(activity)
            if activity.command is not None:
                actions.append(Finished(activity.command, end.value))
            return
        except Exception as exc:  # a bug in one activity must not take the others down
            self._alive.discard(activity)
            self.log(f"{activity.name} failed: {exc!r}")
            logger.debug("%s failed", activity.name, exc_info=True)
            if activity.command is not None:
                actions.append(Finished(activity.command, None, exc))
            return
        if isinstance(step, Request):
            ticket = next(self._tickets)
            activity.due = self.now
            self._waiting[ticket] = activity
            headers = dict(JSON_HEADERS) if step.json_body else {}
            timeout = self.cfg.request_timeout_s
            limit = self.limits.max_body_bytes
            actions.append(
                Send(ticket, step.method, step.url, step.body, headers, timeout, step.endpoint, self.now, limit)
            )
        elif isinstance(step, Sleep):
            ticket = next(self._tickets)
            activity.due = step.until
            self._waiting[ticket] = activity
            actions.append(Wait(ticket, step.until))
        else:
            self._parked.setdefault(step.key, []).append(activity)

    def _signal(self, key: str) -> None:
        """Set a sticky event: activities parked on it resume; the next to wait passes at once."""
        self._signals.add(key)
        for activity in self._parked.pop(key, []):
            self._ready.append((activity, None))

    def _wait_signal(self, key: str) -> Flow[None]:
        while key not in self._signals:
            yield Park(key)
        self._signals.discard(key)

    def _lock(self) -> Flow[None]:
        while self._capture_locked:
            yield Park(_CAPTURE_LOCK)
        self._capture_locked = True

    def _unlock(self) -> None:
        self._capture_locked = False
        for activity in self._parked.pop(_CAPTURE_LOCK, []):
            self._ready.append((activity, None))

    # ---- HTTP ------------------------------------------------------------------------------------
    def send(
        self, method: str, url: str, raw: bytes = b"", json_body: bool = True, endpoint: str = ""
    ) -> Flow[Exchange]:
        """One request, recorded as the device saw it; transport errors become status None."""
        due, timed = self.now, self._timed
        reply: Reply = yield Request(method, url, raw, json_body, endpoint)
        if reply.status is not None:
            self.stats.latency(reply.ended - reply.started)
        exchange = Exchange(
            method,
            urlsplit(url).path or "/",
            raw,
            reply.status,
            reply.body,
            started=reply.started,
            ended=reply.ended,
            request_headers=dict(JSON_HEADERS) if json_body else {},
            response_headers=reply.headers,
            url=url,
            error=reply.error,
            stall_started=reply.stall_started,
            stall_ended=reply.stall_ended,
        )
        if self.cfg.record:
            self.exchanges.append(exchange)
        if self.on_exchange is not None:
            self.on_exchange(exchange, due, timed)
        return exchange

    def endpoint_url(self, name: str) -> str:
        return self.server + self.contract.all_endpoints[name].path

    def post(self, endpoint: str, body: dict[str, Any]) -> Flow[Exchange]:
        return (yield from self.send("POST", self.endpoint_url(endpoint), messages.encode(body), endpoint=endpoint))

    def download(self, url: str) -> Flow[bytes]:
        """GET a file a task names; DownloadFailed carries the libcurl-style code."""
        self.stats.add("downloads")
        exchange = yield from self.send("GET", url, json_body=False, endpoint="download")
        if exchange.status is None:
            code = CURL_OPERATION_TIMEDOUT if (exchange.error or "").startswith("timeout") else CURL_COULDNT_CONNECT
            raise DownloadFailed(code, f"download of {url} failed: {exchange.error}")
        if exchange.status >= 400:
            raise DownloadFailed(CURL_HTTP_RETURNED_ERROR, f"download of {url} answered HTTP {exchange.status}")
        body = exchange.response_body or b""
        if isinstance(body, Oversized):  # libcurl's CURLOPT_MAXFILESIZE: the transfer is abandoned
            self.refuse("MSG-TOO-LARGE", f"download of {url} is {len(body):,} bytes or more, above {body.kept:,}")
            raise DownloadFailed(
                CURL_FILESIZE_EXCEEDED,
                f"download of {url} is larger than {self.limits.max_body_bytes:,} bytes; abandoned",
            )
        return body

    def json_answer(self, exchange: Exchange, what: str = "answer") -> Any:
        """The answer as a JSON object when it is a 2xx whose body the engine's strict reader accepts within
        the contract's limits (parse_message: size, depth, members, strings, numbers, UTF-8, no NaN, no
        duplicate keys); None otherwise. A body it refuses is counted under the reader's rule (``refused``)
        and logged: the device carries on as after any unusable answer (it backs off and polls again)."""
        if exchange.status is None or not 200 <= exchange.status < 300 or not exchange.response_body:
            return None
        parsed = parse_message(exchange.response_body, self.limits, what, self.contract.content_fields)
        for issue in parsed.issues:  # the value is usable (an integer beyond 2**53, a repeated key): logged
            self.log(f"{issue.rule}: {issue.message} (used anyway)")
        if parsed.failure is not None:
            self.refuse(parsed.failure.rule, parsed.failure.message)
            return None
        return parsed.value

    def refuse(self, rule: str, message: str) -> None:
        """An answer the device could not use, counted by the engine's rule id, and logged."""
        self.refused[rule] = self.refused.get(rule, 0) + 1
        self.log(f"{rule}: {message}")

    # ---- the poll loop ---------------------------------------------------------------------------
    def _poll_loop(self) -> Flow[None]:
        first_backoff = self.scaled("task_interval_s")
        backoff = first_backoff
        while self.polling:
            try:
                next_at = yield from self.poll_once()
            except Exception as exc:  # a bug in one cycle must not kill the device
                self.log(f"poll cycle failed: {exc!r}")
                logger.debug("poll cycle failed", exc_info=True)
                next_at = None
            if not self.polling:
                break
            if next_at is None:
                next_at = self.now + backoff
                backoff = min(backoff * 2, self.scaled("idle_interval_s"))
            else:
                backoff = first_backoff
            yield Sleep(next_at)

    def poll_once(self) -> Flow[float | None]:
        """One poll and whatever it brings; when to poll next (epoch s), None after a failure."""
        body = messages.poll_body(self.cfg, self.clock(), self.version)
        method, raw = messages.poll_request(self.cfg, body, self._first_poll)
        self._first_poll = False
        exchange = yield from self.send(method, self.endpoint_url("taskRequest"), raw, endpoint="taskRequest")
        self.stats.add("polls")
        answer = self.json_answer(exchange, "taskRequest answer")
        if not isinstance(answer, dict):
            self.stats.add("failures")
            why = exchange.error or "not a JSON object"
            self.log(f"taskRequest: no usable answer (status {exchange.status}, {why}); backing off")
            return None
        if len(self.spool):
            self._signal(_SPOOL)
        name = answer.get("request_type")
        if name == self.contract.idle_task:
            self.stats.add("idle")
            if "result-for-idle" in self.cfg.faults:
                yield from self.post_result(0, done(name))
            factor = CADENCE_EARLY_FACTOR if "cadence-idle" in self.cfg.faults else 1.0
            return (exchange.ended or self.now) + self.scaled("idle_interval_s") * factor
        if "request_id" not in answer:
            self.stats.add("failures")
            self.log(f"taskRequest answer {name!r} without request_id: nothing to report; backing off")
            return None
        self.stats.add("tasks")
        outcome = yield from self.run_task(answer)
        if outcome.code != 0:
            self.stats.add("task_failures")
        anchor = exchange.ended or self.now
        result = yield from self.post_result(answer["request_id"], outcome)
        if result is not None and result.ended:
            anchor = result.ended
        if outcome.after is not None:
            after = outcome.after()
            if after is not None:
                yield from after
        if "stop-after-malformed-task" in self.cfg.faults and outcome.code in (COMMAND_UNKNOWN, BAD_PARAMETER):
            self.polling = False  # the knob: a task it could not use killed the poll loop, nothing else
            self.log("poll loop ended after a task it could not use (fault stop-after-malformed-task)")
        factor = CADENCE_LATE_FACTOR if "cadence-task" in self.cfg.faults else 1.0
        return anchor + self.scaled("task_interval_s") * factor

    def run_task(self, task: dict[str, Any]) -> Flow[Outcome]:
        """Validate the task through the contract, then carry it out."""
        name = task.get("request_type")
        known = self.contract.tasks(self.version)
        if not isinstance(name, str) or name not in known or name not in HANDLERS:
            self.log(f"task {name!r} is not a command of protocol V{self.version}")
            return Outcome(COMMAND_UNKNOWN, f"'{name}' failed: command does not exist")
        errors = [
            e
            for e in self.contract.errors(known[name].schema, task, self.version)
            if e.keyword != "unevaluatedProperties"
        ]
        if "accept-out-of-range" in self.cfg.faults:
            errors = [e for e in errors if e.keyword not in _RANGE_KEYWORDS]
        if "follow-log-path" in self.cfg.faults:  # file names (x-file-name) taken as given, paths and all
            names = self.contract.file_name_pointers(known[name].schema, task, self.version)
            errors = [e for e in errors if not (e.keyword == "pattern" and e.pointer in names)]
        if errors:
            where = ", ".join(sorted({e.pointer or "/" for e in errors}))
            self.log(f"task {name} rejected: {where}: {errors[0].message}")
            return Outcome(BAD_PARAMETER, f"'{name}' failed: bad parameter {where}")
        refused = [i for i in self.content_problems(name, task) if not i.pointer.startswith("/user_list/")]
        if refused:  # content the schema only annotates (images, size limits); users are judged one by one
            where = ", ".join(sorted({i.pointer for i in refused}))
            self.log(f"task {name} rejected: {refused[0].message}")
            return Outcome(BAD_PARAMETER, f"'{name}' failed: bad parameter {where}")
        if "skip-download" in self.cfg.faults and self.downloads_of(name, task):
            return done(name)
        try:
            handled = HANDLERS[name](self, task)
            outcome = handled if isinstance(handled, Outcome) else (yield from handled)
        except Exception as exc:  # a device reports failure, it does not crash
            self.log(f"task {name} failed: {exc!r}")
            logger.debug("task %s failed", name, exc_info=True)
            return Outcome(BAD_PARAMETER, f"'{name}' failed: {exc}")
        self.log(f"task {name} (request_id {task.get('request_id')!r}) -> code {outcome.code}")
        return outcome

    def content_problems(self, name: str, task: dict[str, Any]) -> list[Issue]:
        """What the contract's content annotations say is wrong with a task (base64 images that are not
        images, user_info over its serialised size), by the engine's own checks."""
        schema = self.contract.tasks(self.version)[name].schema
        return content_issues(self.contract, schema, task, self.version, name)[0]

    def downloads_of(self, name: str, task: dict[str, Any]) -> list[str]:
        """The URLs a task makes the device fetch (the schema's x-download annotations say which)."""
        schema = self.contract.tasks(self.version)[name].schema
        return content_issues(self.contract, schema, task, self.version, name)[1]

    def post_result(self, request_id: Any, outcome: Outcome) -> Flow[Exchange | None]:
        faults = self.cfg.faults
        if "result-missing" in faults:
            return None
        if "result-wrong-id" in faults:
            request_id = request_id + 1_000_000 if isinstance(request_id, int) else f"{request_id}-x"
        body = messages.result_body(self.cfg, request_id, outcome.code, outcome.log, outcome.extras)
        if self.cfg.record:
            self.results.append(body)  # before sending: a test that saw the server store it finds it here
        self.stats.add("results")
        exchange = yield from self.post("taskResult", body)
        if "result-duplicate" in faults:
            exchange = yield from self.post("taskResult", body)
        if exchange.status is None or exchange.status >= 300:
            self.log(f"taskResult {request_id!r}: server answered {exchange.status or exchange.error}")
        return exchange

    def task_properties(self, name: str) -> dict[str, Any]:
        """The fields a task has in the declared version (from its schema)."""
        return messages.schema_properties(self.contract.tasks(self.version)[name].schema, self.version)

    def user_defaults(self, name: str) -> dict[str, Any]:
        """Defaults the schema gives the fields of one user in addUser/updateUser (user_list: whitelist)."""
        items = self.task_properties(name).get("user_list", {}).get("items", {})
        return {k: v["default"] for k, v in (items.get("properties") or {}).items() if "default" in v}

    def move_to(self, url: str) -> None:
        """setPlatformServer: the result went to the old server; from now on, the new one."""
        self.log(f"platform server {self.server} -> {url}")
        self.server = url.rstrip("/")
        self.servers.append(self.server)

    # ---- captures and resume transfer ------------------------------------------------------------
    def make_capture(self, kind: str = "face") -> dict[str, Any]:
        self._face_seq += 1
        users = list(self.faces) if kind == "face" else []
        user = self.rng.choice(users) if users else None
        body = messages.capture_body(
            self.cfg,
            self.clock(),
            self._face_seq,
            kind if user or kind != "face" else "stranger",
            user,
            self.version,
            self.rng,
        )
        if self.cfg.record:
            self.captures_made.append({"snap_time": body.get("snap_time"), "frpic_name": body.get("frpic_name")})
        self.stats.add("captures_made")
        return body

    def capture(self, kind: str = "face") -> Flow[dict[str, Any]]:
        """Make a capture and deliver it (or spool it); the capture made."""
        body = self.make_capture(kind)
        yield from self._lock()
        try:
            if len(self.spool) == 0 and (yield from self._deliver(body)) == "acked":
                return body
            self._keep_or_drop(body)
        finally:
            self._unlock()
        return body

    def _camera_capture(self, kind: str) -> Flow[dict[str, Any]]:
        if "no-capture" in self.cfg.faults:
            body = self.make_capture(kind)
            self.log(f"capture {body.get('frpic_name')} made, not uploaded")
            return body
        return (yield from self.capture(kind))

    def _keep_or_drop(self, body: dict[str, Any]) -> None:
        if self.resume_transfer:
            dropped = self.spool.push(body)
            self.log(f"capture {body.get('frpic_name')} kept for resume transfer ({len(self.spool)} waiting)")
            if dropped:
                self.stats.add("captures_dropped", dropped)
                self.log(f"resume-transfer spool full ({self.spool.max_records}): the oldest capture dropped")
            self._signal(_SPOOL)
        else:
            self.stats.add("captures_dropped")
            self.log(f"capture {body.get('frpic_name')} dropped (resume transfer off)")
        self.stats.captures_buffered = len(self.spool)

    def _deliver(self, body: dict[str, Any]) -> Flow[str]:
        """POST one capture: "acked" when the answer acknowledges it (code 0, snap_time and frpic_name
        echoed), "refused" when the server answered 2xx without acknowledging, "failed" otherwise."""
        exchange = yield from self.post("faceRecognition", body)
        answer = self.json_answer(exchange, "faceRecognition answer")
        acked = (
            isinstance(answer, dict)
            and answer.get("code") == 0
            and all(answer.get(name) == body.get(name) for name in self.contract.echo_fields("faceRecognition"))
        )
        if acked:
            self.stats.add("captures_sent")
            return "acked"
        self.log(
            f"capture {body.get('frpic_name')} not acknowledged (status {exchange.status}, answer "
            f"{str(answer)[:80] if answer is not None else exchange.error})"
        )
        if exchange.status is None or exchange.status >= 500:
            self.stats.add("failures")
            return "failed"
        return "refused"  # answered, but not acknowledged (4xx, or code != 0, or no echo): retried a few times

    def drain_spool(self) -> Flow[bool]:
        """Replay spooled captures oldest first; stops at the first one not acknowledged."""
        yield from self._lock()
        try:
            if len(self.spool) and "lose-buffered" in self.cfg.faults:
                lost = self.spool.clear()
                self.log(f"{lost} buffered capture(s) lost")
            while (body := self.spool.peek()) is not None:
                delivered = yield from self._deliver(body)
                name = str(body.get("frpic_name"))
                if delivered != "acked":
                    if delivered == "refused":
                        self._rejections[name] = self._rejections.get(name, 0) + 1
                    if self._rejections.get(name, 0) < MAX_REJECTIONS:
                        return False
                    self.stats.add("captures_dropped")
                    self.log(f"capture {name} refused {MAX_REJECTIONS} times; dropped")
                self._rejections.pop(name, None)
                self.spool.pop()
                self.stats.captures_buffered = len(self.spool)
            self.stats.captures_buffered = 0
            return True
        finally:
            self._unlock()

    def _sender_loop(self) -> Flow[None]:
        """Sleeps until something is spooled; then replays, retrying every task interval until empty."""
        while True:
            yield from self._wait_signal(_SPOOL)
            while len(self.spool):
                try:
                    if (yield from self.drain_spool()):
                        break
                except Exception as exc:  # noqa: BLE001 - retried next interval
                    self.log(f"resume transfer failed: {exc!r}")
                yield Sleep(self.now + self.scaled("task_interval_s"))

    def _capture_loop(self) -> Flow[None]:
        every = 60.0 / self.cfg.captures_per_minute * self.cfg.time_scale
        yield Sleep(self.now + self.rng.uniform(0, every))
        while True:
            kind = self.rng.choices(messages.CAPTURE_KINDS, weights=(6, 2, 1, 1))[0]
            try:
                yield from self._camera_capture(kind)
            except Exception as exc:  # noqa: BLE001 - the next capture is due anyway
                self.log(f"capture failed: {exc!r}")
            yield Sleep(self.now + every)

    # ---- alarms and GPS --------------------------------------------------------------------------
    def send_alarm(self, alarm_type: int, status: int = 1) -> Flow[Exchange | None]:
        """Report an alarm; None when the no-alarm knob swallows it."""
        body = messages.alarm_body(self.cfg, self.clock(), alarm_type, status, self.version)
        if "no-alarm" in self.cfg.faults:
            self.log(f"alarm {alarm_type} raised, not reported")
            return None
        exchange = yield from self.post("deviceAlarm", body)
        self.stats.add("alarms")
        return exchange

    def gps_allowed(self) -> bool:
        return "gpsReport" in self.contract.endpoints(self.version) or "gps-old-version" in self.cfg.faults

    def _gps_loop(self) -> Flow[None]:
        """Walk the route ahead, one simulated second at a time, to the next position a report is due at
        (more than 5 s or 20 m since the last one, contract timing); sleep that long; report."""
        tick = self.cfg.time_scale  # one simulated second
        route: Route | None = None  # made when GPS first goes on (two random sources: 5 KB a device)
        standing = "gps-too-often" in self.cfg.faults
        every, far = self.timing["gps_min_interval_s"], self.timing["gps_min_distance_m"]
        last: tuple[float, float] | None = None  # position of the last report
        while True:
            if not self.gps_enabled:
                self._signals.discard(_GPS)
                yield from self._wait_signal(_GPS)  # nothing scheduled while GPS is off: a fleet has thousands
            if route is None:
                route = Route(seed=self.rng.randrange(1 << 30))
            seconds, moved = 0, 0.0
            lat, lon = route.lat, route.lon
            while last is not None:
                lat, lon = route.step(moving=False if standing else None)
                seconds += 1
                moved = haversine_m(last[0], last[1], lat, lon)
                if standing or seconds >= every or moved >= far:
                    break
            yield Sleep(self.now + seconds * tick)
            if not self.gps_enabled:
                continue
            yield from self.post("gpsReport", messages.gps_body(self.cfg, self.clock(), lat, lon, moved))
            self.stats.add("gps")
            last = (lat, lon)
