"""The platform: one place where device messages are judged, answered and
recorded, and where the Python API and the HTTP control API do their work.

Every device exchange runs through :meth:`Platform.process` synchronously,
in a worker thread (parse, decide the answer, feed the engine, commit to
SQLite, wake waiters); the HTTP layer only reads bodies and writes answers.
Waiting helpers use one ``threading.Condition`` that every change notifies.

The condition's lock is held only where the answer depends on the queues: a
poll or a result that parsed. An upload, or any message that cannot be read,
is answered from the message alone, so its heavy part (judging a 20 MB
capture, storing it) runs beside the other devices' exchanges instead of in
front of them; the engine and the store keep their own locks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.knobs import knob_name
from facecert.core.model import Exchange, Finding, Severity
from facecert.core.rules.conversation import rid_key
from facecert.core.rules.message import Parsed, ParseFailure
from facecert.mock_server.answers import capture_image, plan_for
from facecert.mock_server.assets import Assets
from facecert.mock_server.config import ServerConfig
from facecert.mock_server.faults import Fault, make_fault
from facecert.mock_server.messages import Incoming, Plan, Reply
from facecert.mock_server.messages import to_json as _json
from facecert.mock_server.misbehaviours import misbehaviour_name
from facecert.mock_server.offload import Reader
from facecert.mock_server.restore import restore
from facecert.mock_server.state import CLIENT_GONE, DeviceInfo, Queued, Queues
from facecert.mock_server.store import Store, bindable, decode_json_columns

_READ = threading.local()  # per thread: the body the platform read last, for the engines to reuse


class ReadOnce(Engine):
    """The engine, reading a body the platform has read already only once: a 20 MB
    capture is parsed one time, not three (platform, own judgement, conversation)."""

    def read(self, raw: bytes | None, what: str) -> Parsed:
        last = getattr(_READ, "last", None)
        if last is not None and last[0] is raw and raw is not None:
            return last[1]  # same bytes, same limits; the label of the first reading is kept
        return super().read(raw, what)


def read_once(engine: Engine, reader: Reader, raw: bytes, what: str) -> Parsed:
    """Read ``raw`` (a big body in the reader's process) and keep it for the engines of
    this thread until the next message."""
    if len(raw) > engine.limits.max_body_bytes:
        parsed = engine.read(raw, what)  # refused for its size alone, at once
    else:
        parsed = reader.read(raw, engine.limits, what, engine.contract.content_fields)
    _READ.last = (raw, parsed)
    return parsed


# The endpoints whose answer depends on the queues (the next task, the task a result answers).
CONVERSATION = frozenset({"taskRequest", "taskResult"})


class Rejected(ValueError):
    """A control request the contract refuses (HTTP 422 with the findings)."""

    def __init__(self, message: str, findings: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


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
        )
        self.engine = ReadOnce(self.engine_config)
        self.version = self.engine.version
        self._checkers = threading.local()  # per thread: judges single messages (enqueue, uploads), no conversation
        self._ahead = threading.local()  # per thread: a message judged on its own before the lock was taken
        self.store = Store(config.db)
        self.reader = Reader()  # big bodies are read in a worker process
        self.assets = Assets(config.assets, config.firmware)
        self.cond = threading.Condition(threading.RLock())
        self.queues = Queues()
        self.devices_seen: dict[str, DeviceInfo] = {}
        self.faults: list[Fault] = []
        self.misbehaving: set[str] = set()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.base = ""  # http://host:port, set when the server listens
        self.listening = True
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's event loop, once it runs
        self.pause_listening: Callable[[float], None] | None = None  # set by MockServer (outage mode "refuse")
        # generated ids only: a raw task may carry any request_id (even one beyond 64 bits, stored as text)
        last = self.store.scalar("SELECT MAX(request_id) FROM tasks WHERE raw = 0 AND typeof(request_id) = 'integer'")
        self._next_rid = int(last or 0) + 1
        self.last_rid: int | None = None
        restore(self)  # a restart on the same --db: queues, awaited tasks, devices

    def close(self) -> None:
        self.reader.close()
        self.store.close()
        self.assets.close()

    # ---- judging helpers -----------------------------------------------------
    def prejudge(self, kind: str, raw: bytes) -> list[Finding]:
        """Findings of one message on its own (same engine code, no conversation). Each thread
        has its own checker engine, so no lock is taken; a message judged ahead is not judged twice."""
        ahead = getattr(self._ahead, "done", None)
        if ahead is not None and ahead[0] == kind and ahead[1] is raw:
            return list(ahead[2])
        checker = getattr(self._checkers, "engine", None)
        if checker is None:
            checker = self._checkers.engine = ReadOnce(self.engine_config)
        found = judge_message(checker, kind, raw)
        checker.findings.clear()
        return found

    def _judge_ahead(self, incoming: Incoming, request: Any) -> None:
        """A taskResult's own judgement, made before the lock (its answer needs the lock, its
        schema check does not); the task it answers is looked up again under the lock."""
        pending = self.queues.pending.get(rid_key(request.get("request_id")) or "")
        schema = self.contract.result_schema(pending.request_type if pending else None)
        self._ahead.done = (schema, incoming.body, self.prejudge(schema, incoming.body))

    @staticmethod
    def errors_of(findings: list[Finding], direction: str = "") -> list[Finding]:
        return [f for f in findings if f.severity is Severity.ERROR and (not direction or f.direction == direction)]

    def result_timeout(self) -> float:
        return self.contract.result_deadline_s * self.config.time_scale

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
            body = {**task, "request_id": self._next_rid}
            errors = self.errors_of(self.prejudge(tasks[name].schema, _json(body)))
            if errors:
                raise Rejected(f"{name} breaks the contract ({len(errors)} error(s))", [f.to_dict() for f in errors])
            self._next_rid += 1
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
                state="queued",
                queued_at=time.time(),
            )
        self.queues.push(device_id, Queued(task_id, rid, name, body, raw))
        self.cond.notify_all()
        return rid

    def queue(self, device_id: str) -> list[dict[str, Any]]:
        """Queued (not yet sent) and awaiting-result tasks of a device."""
        with self.cond:
            queued = [
                {
                    "state": "queued",
                    "request_id": q.request_id,
                    "request_type": q.request_type,
                    "raw": q.raw,
                    "task_id": q.task_id,
                }
                for q in self.queues.by_device.get(device_id, ())
            ]
            awaiting = [
                {
                    "state": "expired" if p.expired else "awaiting",
                    "request_id": p.request_id,
                    "request_type": p.request_type,
                    "sent_at": p.sent_at,
                    "deadline": p.deadline,
                    "task_id": p.task_id,
                }
                for p in self.queues.awaiting(device_id)
            ]
            return queued + awaiting

    # ---- reads ---------------------------------------------------------------
    def devices(self) -> list[dict[str, Any]]:
        with self.cond:
            return [
                info.to_dict(len(self.queues.by_device.get(d, ())), len(self.queues.awaiting(d)))
                for d, info in sorted(self.devices_seen.items())
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
        return capture_image(self, parsed.value) if isinstance(parsed.value, dict) else None

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
        refuse = fault.kind == "outage" and fault.params["mode"] == "refuse"
        if refuse and self.pause_listening is None:
            raise Rejected("outage mode 'refuse' needs the server's listener (MockServer)")
        with self.cond:
            self.faults.append(fault)
        if refuse:
            self.pause_listening(float(duration or 0))  # type: ignore[misc]
        return fault.to_dict()

    def set_listening(self, on: bool) -> None:
        with self.cond:
            self.listening = on
            self.engine.tap_paused(not on, time.time())  # refused connections: no poll can be seen meanwhile
            self.cond.notify_all()

    def clear_faults(self, device_id: str | None = None) -> None:
        with self.cond:
            self.faults = [f for f in self.faults if device_id is not None and f.device_id != device_id]

    def fault_for(self, device_id: str, endpoint: str, now: float | None = None) -> Fault | None:
        now = time.time() if now is None else now
        with self.cond:
            self.faults = [f for f in self.faults if f.until is None or f.until > now]
            return next((f for f in reversed(self.faults) if f.applies(device_id, endpoint, now)), None)

    def set_misbehaviour(self, name: str, on: bool = True) -> None:
        """Switch one on or off (old underscore spellings accepted: ``capture_5xx``)."""
        try:
            name = misbehaviour_name(name)
        except ValueError as exc:
            raise Rejected(str(exc)) from None
        with self.cond:
            (self.misbehaving.add if on else self.misbehaving.discard)(name)

    def misbehaves(self, name: str) -> bool:
        return knob_name(name) in self.misbehaving

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
            info = self.devices_seen.get(device_id)
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
            made = self.engine.check_deadlines(now, in_flight=self.slowed_polls(now))
            late = [p for p in self.queues.pending.values() if not p.done and not p.expired and now >= p.deadline]
            if not made and not late:
                return []
            with self.store.tx() as conn:
                self._insert_findings(conn, None, made)
                for pending in late:
                    pending.expired = True
                    self.store.update(conn, "tasks", {"id": pending.task_id}, state="expired")
            self.cond.notify_all()
        for finding in made:
            self._announce({"kind": "deadline", "device_id": finding.device_id, "findings": [finding.to_dict()]})
        return made

    def slowed_polls(self, now: float) -> set[str]:
        """Devices whose polls a slow fault holds unanswered: the engine sees a poll only once it is
        answered, so these are not judged stopped meanwhile."""
        slowed = set()
        for device_id in self.devices_seen:
            fault = self.fault_for(device_id, "taskRequest", now)
            if fault is not None and fault.kind == "slow":
                slowed.add(device_id)
        return slowed

    # ---- recording -------------------------------------------------------------
    def _insert_findings(self, conn: Any, exchange_id: int | None, findings: list[Finding]) -> None:
        now = time.time()
        for f in findings:
            self.store.insert(
                conn,
                "findings",
                exchange_id=exchange_id,
                device_id=f.device_id,
                rule=f.rule,
                severity=f.severity.value,
                party=f.party,
                created=now,
                data=_json(f.to_dict()).decode(),
            )

    def device(self, device_id: str, now: float, peer: str) -> DeviceInfo:
        info = self.devices_seen.get(device_id)
        if info is None:
            info = self.devices_seen[device_id] = DeviceInfo(device_id, first_seen=now)
        info.saw(now, peer)
        return info

    def record(
        self,
        ex: Exchange,
        endpoint: str | None,
        device_id: str,
        plan: Plan | None = None,
        build_error: Callable[[list[Finding]], bytes] | None = None,
    ) -> tuple[int, list[Finding]]:
        """Judge an exchange and commit it with everything it caused (before it is answered)."""
        judged = self.engine.feed(ex)
        if build_error is not None:
            ex.response_body = build_error(judged.findings)
        device_id = judged.device_id or device_id
        self.store.spill_ahead(ex.request_body)  # a big body is written before the lock, not while others wait
        with self.store.tx() as conn:
            exchange_id = self.store.insert_exchange(conn, ex, device_id, endpoint, judged.request, judged.answer)
            self._insert_findings(conn, exchange_id, judged.findings)
            if plan is not None and plan.write is not None:
                plan.write(conn, exchange_id)
            info = self.devices_seen.get(device_id)
            if info is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        bindable(v)
                        for v in (
                            device_id,
                            info.first_seen,
                            info.last_seen,
                            info.peer,
                            info.polls,
                            _json({"versions": info.versions}).decode(),
                        )
                    ],
                )
        with self.cond:
            if plan is not None and plan.after is not None:
                plan.after()
            self.cond.notify_all()
        self._announce(
            {
                "kind": "exchange",
                "id": exchange_id,
                "endpoint": endpoint,
                "method": ex.method,
                "path": ex.path,
                "device_id": device_id,
                "status": ex.status,
                "findings": [f.to_dict() for f in judged.findings],
            }
        )
        return exchange_id, judged.findings

    def _announce(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a display problem must not stop the server
                pass

    def next_rid(self) -> int:
        rid = self._next_rid
        self._next_rid += 1
        return rid

    # ---- device exchanges ------------------------------------------------------
    def process(self, incoming: Incoming) -> Reply:
        """Answer one device message; everything is stored before this returns."""
        request, failure = self.parse(incoming)  # outside the lock: other devices are answered meanwhile
        try:
            if failure is None and incoming.endpoint in CONVERSATION:
                if incoming.endpoint == "taskResult":
                    self._judge_ahead(incoming, request)
                with self.cond:  # the answer depends on the queues: decided, stored and applied at once
                    device_id = self.device_of(request, incoming)
                    self.device(device_id, incoming.started, incoming.peer)
                    plan = plan_for(self, incoming, request, failure, device_id)
                    return self._finish(incoming, device_id, plan)
            with self.cond:
                device_id = self.device_of(request, incoming)
                self.device(device_id, incoming.started, incoming.peer)
            plan = plan_for(self, incoming, request, failure, device_id)
            return self._finish(incoming, device_id, plan)
        finally:
            self._ahead.done = None
            _READ.last = None

    def parse(self, incoming: Incoming) -> tuple[Any, ParseFailure | None]:
        """The request as the engine reads it (within the contract's limits and ``max_body``)."""
        parsed = read_once(self.engine, self.reader, incoming.body, f"{incoming.endpoint} request")
        return (None, ParseFailure(parsed.failure)) if parsed.failure is not None else (parsed.value, None)

    def device_of(self, request: Any, incoming: Incoming) -> str:
        """The device a message is from: its device_id, else the owner of its
        request_id, else its peer address (what the engine does too)."""
        if isinstance(request, dict):
            device_id = request.get("device_id")
            if isinstance(device_id, str) and device_id:
                return device_id
            pending = self.queues.pending.get(rid_key(request.get("request_id")) or "")
            if pending is not None:
                return pending.device_id
        return incoming.peer.rsplit(":", 1)[0] or "?"

    def process_safely(self, incoming: Incoming) -> Reply:
        """:meth:`process`, and should it fail (a bug of ours), the exchange is
        still stored and answered 500 with a JSON body, without a traceback."""
        try:
            return self.process(incoming)
        except Exception as exc:  # noqa: BLE001 - the record and the answer must survive a bug
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
                response_headers={"content-type": "application/json"},
                peer=incoming.peer,
                url=incoming.url,
                error=reason,
            )
            self.store_unjudged(ex, incoming.endpoint, incoming.peer.rsplit(":", 1)[0] or "?")
            return Reply(500, answer)

    def store_unjudged(self, ex: Exchange, endpoint: str | None, device_id: str) -> int:
        """Store an exchange the engine is not shown (the client left, or judging failed)."""
        with self.cond:
            with self.store.tx() as conn:
                exchange_id = self.store.insert_exchange(conn, ex, device_id, endpoint, None, None)
            self.cond.notify_all()
        self._announce(
            {
                "kind": "exchange",
                "id": exchange_id,
                "endpoint": endpoint,
                "method": ex.method,
                "path": ex.path,
                "device_id": device_id,
                "status": ex.status,
                "findings": [],
            }
        )
        return exchange_id

    def record_other(self, ex: Exchange) -> int:
        """A request that is no device message (router 404/405, a refused control
        call): stored, and shown to the engine as other traffic."""
        with self.cond:
            exchange_id, _ = self.record(ex, None, self.device_by_peer(ex.peer))
        return exchange_id

    def _finish(self, incoming: Incoming, device_id: str, plan: Plan) -> Reply:
        ended = time.time()
        if incoming.gone():
            # nobody to answer: stored as unanswered; the plan's writes (a task sent, a capture taken) do not happen
            ex = Exchange(
                incoming.method,
                incoming.path,
                incoming.body,
                None,
                None,
                started=incoming.started,
                ended=ended,
                request_headers=incoming.headers,
                peer=incoming.peer,
                url=incoming.url,
                error=CLIENT_GONE,
            )
            self.store_unjudged(ex, incoming.endpoint, device_id)
            return Reply(None)
        headers = {"content-type": "application/json"}
        body = plan.answer if isinstance(plan.answer, bytes) else b"" if plan.answer is None else _json(plan.answer)
        ex = Exchange(
            incoming.method,
            incoming.path,
            incoming.body,
            plan.status,
            body if plan.status is not None else None,
            started=incoming.started,
            ended=ended,
            request_headers=incoming.headers,
            response_headers=headers if plan.status is not None else {},
            peer=incoming.peer,
            url=incoming.url,
            error=plan.error,
        )
        build_error = None
        if plan.answer is None and plan.status is not None:

            def build_error(findings: list[Finding]) -> bytes:
                shown = [f.to_dict() for f in findings if f.direction == "request" and f.severity is not Severity.INFO]
                return _json({"code": plan.status, "log": plan.log, "findings": shown})

        self.record(ex, incoming.endpoint, device_id, plan, build_error)
        return Reply(plan.status, ex.response_body or b"", headers)

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
                    state="started" if status == 200 else "refused",
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
            with self.store.tx() as conn:
                self.store.update(
                    conn,
                    "downloads",
                    {"id": row},
                    bytes=sent,
                    completed=int(completed),
                    state="completed" if completed else "refused" if refused else "aborted",
                    ended=ex.ended,
                )
                exchange_id = self.store.insert_exchange(conn, ex, device_id, None, None, None)
                self._insert_findings(conn, exchange_id, judged.findings)
            self.cond.notify_all()
        self._announce(
            {
                "kind": "download",
                "path": ex.path,
                "device_id": device_id,
                "status": ex.status,
                "bytes": sent,
                "completed": completed,
                "findings": [],
            }
        )

    def device_by_peer(self, peer: str) -> str:
        """The device last seen from the peer's address, when exactly one was."""
        host = peer.rsplit(":", 1)[0]
        matches = [d for d, info in self.devices_seen.items() if info.peer.rsplit(":", 1)[0] == host]
        return matches[0] if len(matches) == 1 else ""
