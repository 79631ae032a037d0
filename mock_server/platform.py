"""The platform: one place where device messages are judged, answered and
recorded, and where the Python API and the HTTP control API do their work.

A device exchange goes through three steps, each done once:

1. :meth:`Platform.hear`: the engine judges the request (body read within
   the limits, device named, findings made: :meth:`Engine.judge_request`);
   needs no lock;
2. :meth:`Platform.decide`: the answer is planned from that judgement and
   the server state (:mod:`mock_server.answers`), the engine completes its
   judgement with the answer (:meth:`Engine.feed`), the rows are built and
   what the next answers depend on (a task taken off its queue) is applied;
3. the rows are committed: on their own (:meth:`Platform.answer`, in a worker
   thread) or with the other exchanges decided in the same turn of the event
   loop (:class:`Batch`). Either way before the answer is sent.

The platform's lock (``cond``, whose condition every change notifies) is held
from 2 to 3 where the answer depends on the queues (a poll, a result), so no
one sees a decision before its commit. An upload, or a message that cannot be
read, is answered from the message alone: its heavy part (judging a 20 MB
capture, storing it) runs beside the other devices' exchanges instead of in
front of them. The engine and the store keep their own locks; the order is
always platform, engine, store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig, Judged, Request
from facecert.core.jsonsafe import clean_text
from facecert.core.model import Exchange, Finding, Severity
from facecert.core.rules.conversation import peer_host
from facecert.mock_server.answers import capture_image, plan_for, refused_body
from facecert.mock_server.assets import Assets
from facecert.mock_server.config import ServerConfig
from facecert.mock_server.faults import Fault, FaultKind, OutageMode, make_fault
from facecert.mock_server.messages import Incoming, Plan, Reply
from facecert.mock_server.messages import to_json as _json
from facecert.mock_server.misbehaviours import misbehaviour_name
from facecert.mock_server.offload import Reader
from facecert.mock_server.restore import restore
from facecert.mock_server.state import (
    CLIENT_GONE,
    DeviceInfo,
    DownloadState,
    Pending,
    Queued,
    Queues,
    ServerState,
    TaskState,
)
from facecert.mock_server.store import (
    DEVICE_ROW,
    PARSED_COPY_MAX,
    UNMADE,
    Store,
    bindable,
    decode_json_columns,
)
from facecert.recording import RecordingFailed, RecordingHealth, what_to_do
from facecert.stalls import stall_clock

# The endpoints whose answer depends on the queues (the next task, the task a result answers).
CONVERSATION = frozenset({"taskRequest", "taskResult"})
JSON_HEADERS = {"content-type": "application/json"}

logger = logging.getLogger(__name__)


class Rejected(ValueError):
    """A control request the contract refuses (HTTP 422 with the findings)."""

    def __init__(self, message: str, findings: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


@dataclass
class Decided:
    """One device exchange answered and judged, its rows built, not yet committed."""

    ex: Exchange
    endpoint: str | None
    device_id: str
    reply: Reply
    judged: Judged | None = None  # None: stored unjudged (the client left, or judging failed)
    plan: Plan | None = None
    device_row: list[Any] | None = None  # the devices row as it stood when decided (None: the stored one stands)
    request_json: Any = UNMADE  # the request's stored JSON copy, made before any lock (UNMADE: at the write)
    answer_json: Any = UNMADE  # the answer's stored JSON copy when known already
    findings: list[Finding] = field(default_factory=list)
    exchange_id: int = 0  # its row, once written
    device_key: tuple[Any, ...] | None = None  # what the row says that is not recounted at a restart


class Platform:
    """State, engine and storage of one mock server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.prefix = config.normalised_prefix()
        self.contract = get_contract()
        self.engine_config = EngineConfig(
            profile=config.profile,
            protocol_version=config.protocol_version,
            tolerance=config.tolerance,
            time_scale=config.time_scale,
            max_body=config.max_body,
            check_downloads=True,
            keep_findings=False,  # each is in the session database with its exchange (Platform.findings)
        )
        self.reader = Reader()  # big bodies are read in a worker process
        self.engine = Engine(self.engine_config, reader=self.reader.read)
        self.version = self.engine.version
        self.store = Store(config.db)
        self.recording = RecordingHealth()  # exchanges the store could not keep (a full disk): answered 503
        self.assets = Assets(config.assets, config.firmware)
        self.cond = threading.Condition(threading.RLock())
        self.state = ServerState(self.contract, self.version, self.contract.result_deadline_s * config.time_scale)
        self.listeners: list[Callable[[Any], None]] = []  # each given an event (a dict), or its maker (takes_factory)
        self.base = ""  # http://host:port, set when the server listens
        self.listening = True
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's event loop, once it runs
        self.pause_listening: Callable[[float], None] | None = None  # set by MockServer (outage mode "refuse")
        self.batch = Batch(self)
        self.stalls = stall_clock()  # how long this process could not run: read with every device stamp
        self._versions_text: dict[str, tuple[dict[str, Any], str]] = {}  # per device: its versions, as stored
        restore(self.store, self.state, self.engine)  # a restart on the same --db: queues, awaited tasks, devices
        # per device, what its stored row says (_device_row): the rows restore has just read are stored
        self._device_rows = {d: self._device_key(d, info) for d, info in self.state.devices.items()}

    def close(self) -> None:
        self.reader.close()
        self.store.close()

    # ---- the server state, for readers ---------------------------------------
    @property
    def queues(self) -> Queues:
        return self.state.queues

    @property
    def devices_seen(self) -> dict[str, DeviceInfo]:
        return self.state.devices

    @property
    def faults(self) -> list[Fault]:
        return self.state.faults

    @property
    def misbehaving(self) -> set[str]:
        return self.state.misbehaving

    @property
    def last_rid(self) -> int | None:
        return self.state.last_rid

    @staticmethod
    def errors_of(findings: list[Finding], direction: str = "") -> list[Finding]:
        return [f for f in findings if f.severity is Severity.ERROR and (not direction or f.direction == direction)]

    def result_timeout(self) -> float:
        return self.state.result_timeout_s

    # ---- tasks -------------------------------------------------------------
    def enqueue(self, device_id: str, task: Any, raw: bool = False) -> Any:
        """Queue a task for a device (before or after it first polls).

        Checked against the contract unless ``raw``: a task with errors is
        refused with :class:`Rejected`. The request id is generated (unique,
        increasing) and replaces any the caller put in. ``raw`` tasks are
        sent exactly as given (dict, or text/bytes that need not be JSON).
        """
        if not isinstance(device_id, str) or not device_id:
            raise Rejected("device_id must be a non-empty string")
        with self.cond:
            if raw:
                return self._enqueue_raw(device_id, task)
            if not isinstance(task, dict):
                raise Rejected("a task is a JSON object (send raw: true to queue anything else)")
            name = task.get("request_type")
            tasks = self.contract.tasks(self.version)
            if name not in tasks or tasks[name].idle:
                sendable = sorted(n for n, t in tasks.items() if not t.idle)
                raise Rejected(
                    f"request_type {name!r} is not a task that can be queued (protocol "
                    f"V{self.version}): one of {', '.join(sendable)}; {self.contract.idle_task} is answered when the "
                    "queue is empty"
                )
            body = {**task, "request_id": self.state.next_rid}
            errors = self.errors_of(self.engine.check_message(tasks[name].schema, _json(body)))
            if errors:
                raise Rejected(f"{name} breaks the contract ({len(errors)} error(s))", [f.to_dict() for f in errors])
            self.state.take_rid()
            return self._push(device_id, body["request_id"], name, body, raw=False)

    def _enqueue_raw(self, device_id: str, task: Any) -> Any:
        if isinstance(task, str):
            task = task.encode("utf-8")
        rid = task.get("request_id") if isinstance(task, dict) else None
        name = task.get("request_type") if isinstance(task, dict) else None
        return self._push(device_id, rid, str(name) if name is not None else "(raw)", task, raw=True)

    def _push(self, device_id: str, rid: Any, name: str, body: Any, raw: bool) -> Any:
        stored = body if isinstance(body, bytes) else _json(body)
        with self.store.tx() as conn:
            task_id = self.store.insert(
                conn,
                "tasks",
                request_id=rid if isinstance(rid, int) else None,
                device_id=device_id,
                request_type=name,
                body=stored,
                raw=int(raw),
                state=TaskState.QUEUED,
                queued_at=time.time(),
            )
        self.state.queues.push(device_id, Queued(task_id, rid, name, body, raw))
        self.cond.notify_all()
        return rid

    def _resend(self, pending: Pending) -> None:
        """Misbehaviour resend-failed-task: the failed task goes back in the queue as it was sent, under a
        new request_id (raw tasks are not re-sent: their ids are the caller's)."""
        rows = self.store.rows("SELECT body FROM tasks WHERE id = ? AND raw = 0", (pending.task_id,))
        if rows:
            self.enqueue(pending.device_id, json.loads(rows[0]["body"]))

    def queue(self, device_id: str) -> list[dict[str, Any]]:
        """Queued (not yet sent) and awaiting-result tasks of a device."""
        with self.cond:
            queued = [
                {
                    "state": TaskState.QUEUED.value,
                    "request_id": q.request_id,
                    "request_type": q.request_type,
                    "raw": q.raw,
                    "task_id": q.task_id,
                }
                for q in self.state.queues.by_device.get(device_id, ())
            ]
            awaiting = [
                {
                    "state": TaskState.EXPIRED.value if p.expired else "awaiting",
                    "request_id": p.request_id,
                    "request_type": p.request_type,
                    "sent_at": p.sent_at,
                    "deadline": p.deadline,
                    "task_id": p.task_id,
                }
                for p in self.state.queues.awaiting(device_id)
            ]
            return queued + awaiting

    # ---- reads ---------------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        with self.cond:
            queues = self.state.queues
            return [
                info.to_dict(len(queues.by_device.get(d, ())), len(queues.awaiting(d)))
                for d, info in sorted(self.state.devices.items())
            ]

    def _select(
        self,
        table: str,
        device_id: str | None,
        columns: str = "*",
        extra: str = "",
        params: tuple[Any, ...] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows in arrival order; with ``limit``, only the latest ``limit``."""
        where, args = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        if extra:
            where = f"{where} AND {extra}" if where else f"WHERE {extra}"
        if limit is not None:
            sql = f"SELECT {columns} FROM {table} {where} ORDER BY id DESC LIMIT ?"
            rows = self.store.rows(sql, (*args, *params, int(limit)))[::-1]
        else:
            rows = self.store.rows(f"SELECT {columns} FROM {table} {where} ORDER BY id", (*args, *params))
        return [decode_json_columns(r) for r in rows]

    def results(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self._select("results", device_id)

    def captures(self, device_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return self._select(
            "captures",
            device_id,
            "id, exchange_id, device_id, snap_time, frpic_name, accepted, received, "
            "(image IS NOT NULL OR image_in_request = 1) AS has_image",
            limit=limit,
        )

    def capture_image(self, capture_id: int) -> bytes | None:
        rows = self.store.rows("SELECT image, image_in_request, exchange_id FROM captures WHERE id = ?", (capture_id,))
        if not rows or not rows[0]["image_in_request"]:
            return rows[0]["image"] if rows else None
        return self._image_of_exchange(rows[0]["exchange_id"])

    def _image_of_exchange(self, exchange_id: int) -> bytes | None:
        """A big capture's image, read from the capture itself (it is not stored twice)."""
        parsed = self.engine.read(self.store.request_body(exchange_id), "faceRecognition request")
        return capture_image(self.contract, self.version, parsed.value) if isinstance(parsed.value, dict) else None

    def alarms(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self._select("alarms", device_id)

    def gps(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self._select("gps", device_id)

    def downloads(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._select("downloads", None, limit=limit)

    def tasks(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self._select("tasks", device_id)

    def findings(
        self, device_id: str | None = None, party: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        rows = self._select(
            "findings", device_id, extra="party = ?" if party else "", params=(party,) if party else (), limit=limit
        )
        return [{**r["data"], "id": r["id"], "exchange_id": r["exchange_id"]} for r in rows]

    def exchanges(self, device_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        columns = (
            "id, idx, device_id, endpoint, method, path, peer, started, ended, status, error, "
            "request_json, response_json, COALESCE(request_size, length(request_body)) AS request_bytes, "
            "length(response_body) AS response_bytes"
        )
        return self._select("exchanges", device_id, columns, limit=limit)

    # ---- faults and misbehaviours --------------------------------------------
    def set_fault(
        self,
        kind: str,
        device_id: str | None = None,
        endpoints: list[str] | None = None,
        duration: float | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        fault = make_fault(kind, device_id, endpoints, list(self.contract.all_endpoints), duration, **params)
        refuse = fault.kind is FaultKind.OUTAGE and fault.params["mode"] == OutageMode.REFUSE
        pause = self.pause_listening if refuse else None
        if refuse and pause is None:
            raise Rejected("outage mode 'refuse' needs the server's listener (MockServer)")
        with self.cond:
            self.state.faults.append(fault)
        if pause is not None:
            pause(float(duration or 0))
        return fault.to_dict()

    def set_listening(self, on: bool) -> None:
        with self.cond:
            self.listening = on
            self.engine.tap_paused(not on, time.time())  # refused connections: no poll can be seen meanwhile
            self.cond.notify_all()

    def clear_faults(self, device_id: str | None = None) -> None:
        with self.cond:
            self.state.faults = [f for f in self.state.faults if device_id is not None and f.device_id != device_id]

    def fault_for(self, device_id: str, endpoint: str, now: float | None = None) -> Fault | None:
        with self.cond:
            return self.state.fault_for(device_id, endpoint, now)

    def set_misbehaviour(self, name: str, on: bool = True) -> None:
        """Switch one on or off (old underscore spellings accepted: ``capture_5xx``)."""
        try:
            name = misbehaviour_name(name)
        except ValueError as exc:
            raise Rejected(str(exc)) from None
        with self.cond:
            (self.state.misbehaving.add if on else self.state.misbehaving.discard)(name)

    def misbehaves(self, name: str) -> bool:
        return self.state.misbehaves(name)

    # ---- assets --------------------------------------------------------------
    def asset_url(self, name: str) -> str:
        return f"{self.base}{self.prefix}/assets/{name}"

    # ---- waiting -------------------------------------------------------------
    def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        with self.cond:
            found = self.cond.wait_for(predicate, timeout=timeout)
        if not found:
            raise TimeoutError(f"{what} did not happen within {timeout:.2f} s")
        return found

    def wait_for_poll(self, device_id: str, timeout: float, after: float | None = None) -> dict[str, Any]:
        """Until the device polls (after ``after``, epoch seconds, when given)."""

        def polled() -> Any:
            info = self.state.devices.get(device_id)
            if info and info.polls and (after is None or info.last_poll > after):
                return info.to_dict()
            return None

        return self._wait(polled, timeout, f"a taskRequest from {device_id}")

    def wait_for_result(self, request_id: Any, timeout: float) -> dict[str, Any]:
        """Until an accepted taskResult for ``request_id`` is stored; returns it."""

        def arrived() -> Any:
            rows = self._select("results", None, extra="request_id = ? AND accepted = 1", params=(str(request_id),))
            return rows[0] if rows else None

        return self._wait(arrived, timeout, f"a taskResult for request_id {request_id!r}")

    def wait_for_capture(self, device_id: str, timeout: float, after: float = 0.0) -> dict[str, Any]:
        """Until a capture from the device is stored (received after ``after``)."""

        def arrived() -> Any:
            rows = [c for c in self.captures(device_id) if c["received"] > after]
            return rows[0] if rows else None

        return self._wait(arrived, timeout, f"a capture from {device_id}")

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str = "the condition") -> Any:
        """Generic wait on platform state (notified by every change)."""
        return self._wait(predicate, timeout, what)

    # ---- deadlines -------------------------------------------------------------
    def check_deadlines(self, now: float | None = None) -> list[Finding]:
        """Tasks past the result deadline (the engine's finding, the task marked expired) and
        devices that stopped polling (POLL-STOPPED)."""
        now = time.time() if now is None else now
        with self.cond:
            made = self.engine.check_deadlines(now, in_flight=self.slowed_polls(now), stall_at=self.stalls.read())
            unanswered = self.state.queues.all_unanswered()
            late = [p for p in unanswered if not p.expired and now >= p.deadline]
            if not made and not late:
                return []
            with self.store.tx() as conn:
                self._insert_findings(conn, None, made)
                for task in late:
                    task.expired = True
                    self.store.update(conn, "tasks", {"id": task.task_id}, state=TaskState.EXPIRED)
            self.cond.notify_all()
        for finding in made:
            self._announce(functools.partial(_deadline_event, finding))
        return made

    def slowed_polls(self, now: float) -> set[str]:
        """Devices whose polls a slow fault holds unanswered: the engine sees a poll only once it is
        answered, so these are not judged stopped meanwhile."""
        slowed = set()
        for device_id in self.state.devices:
            fault = self.state.fault_for(device_id, "taskRequest", now)
            if fault is not None and fault.kind is FaultKind.SLOW:
                slowed.add(device_id)
        return slowed

    # ---- device exchanges --------------------------------------------------------
    def hear(self, incoming: Incoming) -> tuple[Exchange, Request]:
        """Step 1: the exchange as it came in, and the engine's judgement of its request (outside
        every lock: other devices are answered meanwhile)."""
        ex = Exchange(
            incoming.method,
            incoming.path,
            incoming.body,
            None,
            None,
            started=incoming.started,
            request_headers=incoming.headers,
            peer=incoming.peer,
            url=incoming.url,
            stall_started=incoming.stall_started,
        )
        return ex, self.engine.judge_request(ex)

    def slow_delay(self, incoming: Incoming, heard: Request) -> float:
        """The delay a slow fault puts on this message's answer (0: none)."""
        if not self.state.faults:
            return 0.0
        fault = self.fault_for(heard.device_id, incoming.endpoint)
        return float(fault.params["delay"]) if fault is not None and fault.kind is FaultKind.SLOW else 0.0

    def holds_lock(self, incoming: Incoming, heard: Request) -> bool:
        """Whether the answer depends on the queues: decided and committed under the platform's lock."""
        return heard.failure is None and incoming.endpoint in CONVERSATION

    def answer(self, incoming: Incoming, ex: Exchange, heard: Request) -> Reply:
        """Steps 2 and 3 on their own (a worker thread): decided, judged, committed, then answered."""
        # before any lock, what costs in proportion to the body: its stored JSON copy, its file when it is big
        body_json = self.store.json_copy(heard.body, incoming.body)
        self.store.spill_ahead(ex.request_body)
        if self.holds_lock(incoming, heard):
            with self.cond:
                decided = self.decide(incoming, ex, heard, body_json)
                self._commit([decided])
                self.cond.notify_all()
        else:
            decided = self.decide(incoming, ex, heard, body_json)
            self._commit([decided])
            with self.cond:
                self.cond.notify_all()
        self._committed(decided)
        return decided.reply

    def answer_safely(self, incoming: Incoming, ex: Exchange | None = None, heard: Request | None = None) -> Reply:
        """:meth:`answer` (hearing the request first when not done), and should it fail (a bug of ours),
        the exchange is still stored and answered 500 with a JSON body, without a traceback."""
        try:
            if ex is None or heard is None:
                ex, heard = self.hear(incoming)
            return self.answer(incoming, ex, heard)
        except Exception as exc:  # noqa: BLE001 - the record and the answer must survive a bug
            return self.failed(incoming, exc)

    def failed(self, incoming: Incoming, exc: BaseException) -> Reply:
        """The exchange stored unjudged with a 500 that says what went wrong; a 503 when it was the disk
        that failed (:meth:`unrecorded`), where storing it again would fail again."""
        if isinstance(exc, RecordingFailed):
            return self.unrecorded(exc)
        reason = f"internal error: {type(exc).__name__}: {str(exc)[:200]}"
        answer = _json({"code": 500, "log": reason})
        ex = Exchange(
            incoming.method,
            incoming.path,
            incoming.body,
            500,
            answer,
            started=incoming.started,
            ended=time.time(),
            request_headers=incoming.headers,
            response_headers=dict(JSON_HEADERS),
            peer=incoming.peer,
            url=incoming.url,
            error=reason,
        )
        try:
            self.store_unjudged(ex, incoming.endpoint, peer_host(incoming.peer) or "?")
        except RecordingFailed as disk:
            return self.unrecorded(disk)
        return Reply(500, answer)

    def unrecorded(self, exc: RecordingFailed) -> Reply:
        """An exchange the store could not keep: the disk's doing, not the device's, so it is answered 503
        (never as if it were kept) and the spell is told on the console once, not a traceback a request.
        What the platform and the engine had decided for it stands: from here on the record and the judgement
        are incomplete, which the certification says (HARNESS-RECORDING) and ``facecert serve`` prints."""
        if self.recording.refused(str(exc), what_to_do(exc)):
            logger.error(
                "facecert cannot record: %s. Every device request is answered 503 until it can again; "
                "the record and the judgement from here on are incomplete: %s",
                exc,
                what_to_do(exc).replace("run again", "start again"),
            )
        answer = _json({"code": 503, "log": f"not recorded ({exc.reason}): the server kept nothing of this request"})
        return Reply(503, answer, dict(JSON_HEADERS))

    def _kept(self) -> None:
        """After a commit: a spell of failing writes ends, and the console hears how many were refused."""
        ended = self.recording.kept()
        if ended:
            logger.warning("facecert records again: %d device requests were answered 503 meanwhile", ended)

    def decide(self, incoming: Incoming, ex: Exchange, heard: Request, body_json: str | None) -> Decided:
        """Step 2: the answer planned, the engine's judgement completed with it, the rows built, and what
        the next answers depend on applied (the platform's lock is held where the answer needs it)."""
        device_id = heard.device_id
        with self.cond:
            info = self.state.device(device_id, incoming.started, incoming.peer)
            fault = self.state.fault_for(device_id, incoming.endpoint)
        plan = plan_for(self.state, incoming, heard, fault)
        ex.ended, ex.stall_ended, stamped = time.time(), self.stalls.read(), time.monotonic()
        if incoming.gone():
            # nobody to answer: stored as unanswered; the plan's writes (a task sent, a capture taken) do not happen
            ex.error = CLIENT_GONE
            return Decided(ex, incoming.endpoint, device_id, Reply(None), request_json=None)
        body = plan.answer if isinstance(plan.answer, bytes) else b"" if plan.answer is None else _json(plan.answer)
        ex.status, ex.error = plan.status, plan.error
        ex.response_body = body if plan.status is not None else None
        ex.response_headers = dict(JSON_HEADERS) if plan.status is not None else {}
        judged = self.engine.feed(ex, heard)
        if plan.answer is None and plan.status is not None:
            ex.response_body = refused_body(plan, judged.findings)
        answer_json: Any = UNMADE
        if isinstance(plan.answer, dict) and judged.answer is not None:
            # an answer of ours that the engine read back whole: its stored copy is the text we sent
            answer_json = body.decode("utf-8") if len(body) <= PARSED_COPY_MAX else None
        row, key = self._device_row(device_id)
        with self.cond:
            if plan.after is not None:
                plan.after()
            if incoming.endpoint == "taskRequest":
                info.polled(incoming.started, heard.body)
        reply = Reply(plan.status, ex.response_body or b"", dict(JSON_HEADERS), stamped)
        return Decided(
            ex, incoming.endpoint, device_id, reply, judged, plan, row, body_json, answer_json, judged.findings, 0, key
        )

    def _device_key(self, device_id: str, info: DeviceInfo) -> tuple[Any, ...]:
        """What a device's row holds that a restart cannot recount from the exchanges: its first-seen time,
        its peer and its versions (as stored: the text is made once while they stay the same)."""
        made = self._versions_text.get(device_id)
        if made is None or made[0] is not info.versions:  # DeviceInfo keeps its versions while they stay the same
            made = self._versions_text[device_id] = (info.versions, _json({"versions": info.versions}).decode())
        return info.first_seen, info.peer, made[1]

    def _device_row(self, device_id: str) -> tuple[list[Any] | None, tuple[Any, ...] | None]:
        """The device's row to write with this exchange and its key, or ``(None, None)`` when the stored row
        says it already: the last-seen time and the poll count are not written again with every poll (a WAL
        page in every commit, a quarter of a poll's); a restart counts them from the exchanges (restore)."""
        info = self.state.devices.get(device_id)
        if info is None:
            return None, None
        key = self._device_key(device_id, info)
        if self._device_rows.get(device_id) == key:
            return None, None
        first_seen, peer, versions = key
        return [bindable(v) for v in (device_id, first_seen, info.last_seen, peer, info.polls, versions)], key

    def _commit(self, batch: list[Decided]) -> None:
        """Step 3: the exchanges and everything they caused, in one transaction."""
        try:
            with self.store.tx() as conn:
                for decided in batch:
                    self._write(conn, decided)
                    if decided.device_key is not None:  # told under the store's lock: in the commits' order
                        self._device_rows[decided.device_id] = decided.device_key
        except BaseException:
            for decided in batch:  # not stored after all: the next exchange of the device writes its row
                if decided.device_key is not None:
                    self._device_rows.pop(decided.device_id, None)
            raise
        self._kept()

    def _write(self, conn: Any, decided: Decided) -> None:
        judged = decided.judged
        request, answer = (judged.request, judged.answer) if judged else (None, None)
        exchange_id = decided.exchange_id = self.store.insert_exchange(
            conn,
            decided.ex,
            decided.device_id,
            decided.endpoint,
            request,
            answer,
            decided.request_json,
            decided.answer_json,
        )
        self._insert_findings(conn, exchange_id, decided.findings)
        if decided.plan is not None:
            for write in decided.plan.writes:
                if write.where is None:
                    self.store.insert(conn, write.table, **write.bound(exchange_id))
                else:
                    self.store.update(conn, write.table, write.where, **write.bound(exchange_id))
        if decided.device_row is not None:
            conn.execute(DEVICE_ROW, decided.device_row)

    def _committed(self, decided: Decided) -> None:
        """After the commit: what a misbehaviour queues again, and the live display."""
        if decided.plan is not None and decided.plan.resend is not None:
            self._resend(decided.plan.resend)
        if self.listeners:
            ex = decided.ex
            self._announce(
                functools.partial(
                    _exchange_event,
                    decided.exchange_id,
                    decided.endpoint,
                    ex.method,
                    ex.path,
                    decided.device_id,
                    ex.status,
                    tuple(decided.findings),
                )
            )

    # ---- recording -------------------------------------------------------------
    def _insert_findings(self, conn: Any, exchange_id: int | None, findings: list[Finding]) -> None:
        if not findings:
            return
        conn.executemany(_FINDING_ROW, _finding_rows(exchange_id, findings))

    def _announce(self, event: Callable[[], dict[str, Any]]) -> None:
        """Show an event to the listeners (built only when someone listens). A listener that
        ``takes_factory`` (the console feed) is handed ``event`` itself and builds it on a thread of its
        own: the findings' strict copies are no work of the event loop's (``event`` holds no body)."""
        if not self.listeners:
            return
        shown: dict[str, Any] | None = None
        for listener in list(self.listeners):
            try:
                if getattr(listener, "takes_factory", False):
                    listener(event)
                else:
                    if shown is None:
                        shown = event()
                    listener(shown)
            except Exception:
                logger.exception("a listener of the mock server failed on an event (ignored)")

    def store_unjudged(self, ex: Exchange, endpoint: str | None, device_id: str) -> int:
        """Store an exchange the engine is not shown (the client left, or judging failed)."""
        with self.cond:
            with self.store.tx() as conn:
                exchange_id = self.store.insert_exchange(conn, ex, device_id, endpoint, None, None)
            self.cond.notify_all()
        self._announce(
            functools.partial(_exchange_event, exchange_id, endpoint, ex.method, ex.path, device_id, ex.status, ())
        )
        return exchange_id

    def record_other(self, ex: Exchange) -> int:
        """A request that is no device message (router 404/405, a refused control
        call): stored, and shown to the engine as other traffic."""
        with self.cond:
            judged = self.engine.feed(ex)
            device_id = self.device_by_peer(ex.peer)
            reply = Reply(ex.status, ex.response_body or b"")
            row, key = self._device_row(device_id)
            decided = Decided(
                ex, None, device_id, reply, judged, device_row=row, findings=judged.findings, device_key=key
            )
            self._commit([decided])
            self.cond.notify_all()
        self._committed(decided)
        return decided.exchange_id

    # ---- downloads -------------------------------------------------------------
    def download_started(self, peer: str, name: str, path: str, size: int, status: int) -> int:
        with self.cond:
            device_id = self.device_by_peer(peer)
            with self.store.tx() as conn:
                row = self.store.insert(
                    conn,
                    "downloads",
                    device_id=device_id,
                    peer=peer,
                    name=name,
                    path=path,
                    status=status,
                    size=size,
                    bytes=0,
                    completed=0,
                    state=DownloadState.STARTED if status == 200 else DownloadState.REFUSED,
                    started=time.time(),
                )
            self.cond.notify_all()
            return row

    def download_finished(self, row: int, ex: Exchange, sent: int, completed: bool, refused: bool = False) -> None:
        """Log the end of a download and feed it to the engine (DOWNLOAD-FETCHED counts it)."""
        with self.cond:
            device_id = self.device_by_peer(ex.peer)
            if not completed and not refused:
                ex.status, ex.error = None, f"download aborted after {sent} bytes"
            judged = self.engine.feed(ex)
            state = DownloadState.ABORTED
            if completed or refused:
                state = DownloadState.COMPLETED if completed else DownloadState.REFUSED
            with self.store.tx() as conn:
                self.store.update(
                    conn, "downloads", {"id": row}, bytes=sent, completed=int(completed), state=state, ended=ex.ended
                )
                exchange_id = self.store.insert_exchange(conn, ex, device_id, None, None, None)
                self._insert_findings(conn, exchange_id, judged.findings)
            self.cond.notify_all()
        path, status = ex.path, ex.status  # the event keeps no body alive
        self._announce(
            lambda: {
                "kind": "download",
                "path": path,
                "device_id": device_id,
                "status": status,
                "bytes": sent,
                "completed": completed,
                "findings": [],
            }
        )

    def device_by_peer(self, peer: str) -> str:
        """The device last seen from the peer's host, when exactly one was."""
        host = peer_host(peer)
        matches = [d for d, info in self.state.devices.items() if peer_host(info.peer) == host]
        return matches[0] if len(matches) == 1 else ""


_FINDING_FIELDS = tuple(item.name for item in dataclasses.fields(Finding))
_FINDING_ROW = (
    "INSERT INTO findings (exchange_id, device_id, rule, severity, party, created, data) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_LONG_DIGITS = re.compile("[0-9]{16}")
_FINDING_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # made once (json.dumps: once a call)
_SAFE_INT = 2**53 - 1


def _finding_rows(exchange_id: int | None, findings: list[Finding]) -> list[list[Any]]:
    """The findings' rows: the device id made bindable (it came from outside); the rest is ours (a row id,
    the rule's names, the time) or strict JSON in valid UTF-8 already (:func:`finding_json`)."""
    now = time.time()
    return [
        [exchange_id, bindable(f.device_id), f.rule, f.severity.value, f.party, now, finding_json(f)] for f in findings
    ]


def finding_json(finding: Finding) -> str:
    """The finding as stored: the text of ``to_json(finding.to_dict())``, without the strict copy
    ``to_dict`` makes when nothing in the finding needs one: the plain encoding is taken when it
    succeeds (no NaN, nothing but JSON types), is valid UTF-8 (no lone surrogate) and holds no
    integer beyond ±(2**53-1) (looked for directly when every field is a scalar, as a run of 16
    digits in the text otherwise, where a false alarm only costs the strict way)."""
    data = {name: getattr(finding, name) for name in _FINDING_FIELDS}
    data["severity"] = finding.severity.value
    try:
        text = _FINDING_ENCODER.encode(data)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate cannot be encoded
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return _json(finding.to_dict()).decode()
    if all(map(_safe_scalar, data.values())) or _LONG_DIGITS.search(text) is None:
        return text
    return _json(finding.to_dict()).decode()


def _safe_scalar(value: Any) -> bool:
    """A value whose plain JSON is its strict JSON: a string, a float, None, or an integer a double holds."""
    kind = type(value)
    if kind is int:
        return -_SAFE_INT <= value <= _SAFE_INT
    return kind is str or kind is float or value is None or kind is bool


def _exchange_event(
    exchange_id: int,
    endpoint: str | None,
    method: str,
    path: str,
    device_id: str,
    status: int | None,
    findings: tuple[Finding, ...],
) -> dict[str, Any]:
    """What the listeners are shown of a committed exchange (made from these values only: an event
    waiting to be printed keeps no body alive)."""
    return {
        "kind": "exchange",
        "id": exchange_id,
        "endpoint": endpoint,
        "method": method,
        "path": path,
        "device_id": device_id,
        "status": status,
        "findings": [_shown(f) for f in findings],
    }


def _shown(finding: Finding) -> dict[str, Any]:
    """What a display shows of a finding (the console: severity, rule, message), strict JSON data like
    ``Finding.to_dict`` (the texts quoted from a device cleaned of lone surrogates) without its deep copy
    of ``expected`` and ``actual``."""
    return {
        "rule": finding.rule,
        "severity": finding.severity.value,
        "party": finding.party,
        "exchange": finding.exchange,
        "direction": finding.direction,
        "pointer": clean_text(finding.pointer),
        "message": clean_text(finding.message),
    }


def _deadline_event(finding: Finding) -> dict[str, Any]:
    return {"kind": "deadline", "device_id": finding.device_id, "findings": [finding.to_dict()]}


class Batch:
    """Exchanges decided on the event loop in one turn, committed together before any is answered.

    The first exchange of a turn takes the platform's lock and schedules the commit for the loop's
    next turn; the exchanges decided meanwhile join it. The commit is one transaction (the WAL pages
    are written once for all of them, not once each); then the lock is let go and every answer is
    sent. Nothing is answered before it is stored.

    The only device request in flight has nobody to share a commit with: :meth:`answer_now` decides
    and commits it at once (no future, no extra turn of the loop). The loop never blocks on a lock
    another thread holds (a big message deciding or committing in a worker thread): when the
    platform's lock is taken, the exchange goes the worker-thread way too; when the store is busy,
    the commit waits for :meth:`Store.when_free` while the loop serves the others."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.open: list[tuple[Decided, asyncio.Future[Reply]]] = []
        self.scheduled = False
        self.in_flight = 0  # device requests between their arrival and their answer (counted by the HTTP layer)
        self.loop: asyncio.AbstractEventLoop | None = None

    def alone(self) -> bool:
        """No other device request in flight and no turn's commit open: none could join this one's."""
        return self.in_flight <= 1 and not self.scheduled

    def answer_now(self, incoming: Incoming, ex: Exchange, heard: Request) -> Reply | None:
        """Decided and committed now (on the loop); None when another thread holds the platform's lock or
        the store (then :meth:`answer`, which waits without blocking the loop)."""
        platform = self.platform
        cond, store = platform.cond, platform.store
        if not cond.acquire(blocking=False):
            return None
        try:
            if not store.lock.acquire(blocking=False):
                return None
            try:
                decided = platform.decide(incoming, ex, heard, store.json_copy(heard.body, incoming.body))
                platform._commit([decided])
            except Exception as exc:  # noqa: BLE001 - the record and the answer must survive a bug
                return platform.failed(incoming, exc)
            finally:
                store.lock.release()
            cond.notify_all()
        finally:
            cond.release()
        try:
            platform._committed(decided)
        except Exception:
            logger.exception("after-commit work of an exchange failed (it is stored and answered)")
        return decided.reply

    def answer(self, incoming: Incoming, ex: Exchange, heard: Request) -> asyncio.Future[Reply]:
        """Decide now (on the loop); the future gives the reply once it is committed."""
        platform, loop = self.platform, asyncio.get_running_loop()
        if not self.scheduled:
            if not platform.cond.acquire(blocking=False):
                # another thread decides or commits under the lock (a big result): this one goes that way too,
                # so the loop does not wait for it
                return loop.run_in_executor(None, platform.answer_safely, incoming, ex, heard)
            # held to the commit: nobody sees a decision before it is stored
            self.scheduled, self.loop = True, loop
            loop.call_soon(self.commit)
        future: asyncio.Future[Reply] = loop.create_future()
        try:
            decided = platform.decide(incoming, ex, heard, platform.store.json_copy(heard.body, incoming.body))
        except Exception as exc:  # noqa: BLE001 - the record and the answer must survive a bug
            future.set_result(platform.failed(incoming, exc))
        else:
            self.open.append((decided, future))
        return future

    def _again(self) -> None:
        """The store is free (called from the thread that let it go): commit on the loop."""
        loop = self.loop
        try:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self.commit)
        except RuntimeError:  # closed meanwhile (shutdown): nobody is left to answer
            pass

    def commit(self) -> None:
        if not self.scheduled:  # woken once more after the commit (Store.when_free may call twice)
            return
        platform = self.platform
        store = platform.store
        if not store.lock.acquire(blocking=False):
            store.when_free(self._again)  # a worker thread commits: this turn's commit follows it, the loop goes on
            return
        batch = self.open
        self.open, self.scheduled = [], False
        error: Exception | None = None
        try:
            if batch:
                platform._commit([decided for decided, _ in batch])
        except Exception as exc:  # noqa: BLE001 - each exchange is answered 500 below, stored unjudged
            error = exc
        finally:
            store.lock.release()
            platform.cond.notify_all()
            platform.cond.release()
        for decided, future in batch:
            if error is not None:
                reply = platform.failed(_incoming_of(decided), error)
                if not future.done():
                    future.set_result(reply)
            else:
                if not future.done():  # a handler cancelled meanwhile (shutdown) has nobody to answer
                    future.set_result(decided.reply)
                try:
                    platform._committed(decided)  # before the answer leaves: it goes at the loop's next turn
                except Exception:
                    logger.exception("after-commit work of an exchange failed (it is stored and answered)")


def _incoming_of(decided: Decided) -> Incoming:
    ex = decided.ex
    return Incoming(
        decided.endpoint or "", ex.method, ex.path, ex.url, ex.peer, ex.started, ex.request_headers, ex.request_body
    )
