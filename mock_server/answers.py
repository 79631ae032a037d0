"""What the platform answers to each device message (docs/mock-server.md,
"Answers"), including the fault modes and the misbehaviours.

Each ``plan_*`` decides status and body and says what to write to the
database; :class:`mock_server.platform.Platform` judges and commits it.
Field and task names come from the contract, never from lists here.
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any

from facecert.core.contract import get_contract
from facecert.core.rules.conversation import rid_key
from facecert.core.rules.message import ParseFailure, decoded_base64, resolve_pointer
from facecert.mock_server.faults import Fault
from facecert.mock_server.messages import Incoming, Plan
from facecert.mock_server.messages import to_json as _json
from facecert.mock_server.state import Pending, Queued

if TYPE_CHECKING:
    from facecert.mock_server.platform import Platform

UNKNOWN_TASK = "facecertUnknownTask"  # a request_type the document does not define (misbehaviour unknown-task)


def plan_for(
    platform: Platform, incoming: Incoming, request: Any, failure: ParseFailure | None, device_id: str
) -> Plan:
    fault = platform.fault_for(device_id, incoming.endpoint)
    plan = None
    if fault is not None and fault.kind != "slow":
        plan = plan_fault(fault)
    elif incoming.method.upper() == "CONNECT":  # a 2xx would switch the connection to a tunnel (RFC 9110 §9.3.6)
        plan = Plan(405, {"code": 405, "log": "CONNECT is not a device message: devices POST (HTTP-METHOD)"})
    elif failure is not None:
        too_large = failure.issue.rule == "MSG-TOO-LARGE"
        plan = Plan(413 if too_large else 400, None, log=f"refused: {failure.issue.message}")
    else:
        handler = _HANDLERS[incoming.endpoint]
        plan = handler(platform, incoming, request, device_id)
    if incoming.endpoint == "taskRequest":
        info = platform.devices_seen[device_id]
        previous = plan.after

        def polled() -> None:
            if previous is not None:
                previous()
            info.polled(incoming.started, request)

        plan.after = polled
    return plan


def plan_fault(fault: Fault) -> Plan:
    if fault.kind == "outage" and fault.params["mode"] in ("drop", "refuse"):  # refuse: kept-alive connections
        return Plan(None, error="connection closed without an answer (outage fault)")
    if fault.kind == "outage":
        return Plan(503, {"code": 503, "log": "service unavailable (outage fault)"})
    if fault.kind == "error":
        status = fault.params["status"]
        return Plan(status, {"code": status, "log": f"server error {status} (error fault)"})
    return Plan(200, fault.params["body"].encode("utf-8"))  # malformed


# ---- /taskRequest ------------------------------------------------------------
@functools.cache
def idle_shape(version: str) -> tuple[str, tuple[str, ...]]:
    """The task that carries no work (catalogue `idle: true`) and its required fields besides request_type."""
    contract = get_contract()
    return contract.idle_task, contract.idle_fields(version)


def idle_answer(platform: Platform, now: float) -> dict[str, Any]:
    name, others = idle_shape(platform.version)
    answer: dict[str, Any] = {"request_type": name}
    if not platform.misbehaves("idle-without-time-stamp"):
        for key in others:
            answer[key] = int(now)  # the idle task's only other field is the server time
    return answer


def not_json(wire: bytes) -> bytes:
    return b"<task>" + wire + b"</task>"


def missing_vendor_fields(platform: Platform, endpoint: str, request: Any) -> list[str]:
    """The catalogue's vendor extras of ``endpoint`` the message lacks (misbehaviour require-vendor-field)."""
    present = request if isinstance(request, dict) else {}
    return [name for name in platform.contract.vendor_extras.get(endpoint, {}) if name not in present]


def plan_task_request(platform: Platform, incoming: Incoming, request: Any, device_id: str) -> Plan:
    if platform.misbehaves("no-answer"):
        return Plan(None, error="connection closed without an answer (misbehaviour no-answer)")
    missing = (
        missing_vendor_fields(platform, incoming.endpoint, request)
        if platform.misbehaves("require-vendor-field")
        else []
    )
    if missing:
        return Plan(
            500,
            {"code": 500, "log": f"internal error: {', '.join(missing)} missing (misbehaviour require-vendor-field)"},
        )
    item = platform.queues.peek(device_id)
    if item is not None and not platform.misbehaves("ignore-queued-tasks"):  # misbehaving: queued, never sent
        return plan_send_task(platform, device_id, item)
    now = time.time()
    if platform.misbehaves("idle-empty-body"):
        return Plan(200, b"")
    answer: dict[str, Any]
    if platform.misbehaves("unknown-task"):
        answer = {"request_type": UNKNOWN_TASK, "request_id": platform.next_rid()}
    else:
        answer = idle_answer(platform, now)
    wire = _json(answer)
    return Plan(200, not_json(wire) if platform.misbehaves("task-not-json") else wire)


def plan_send_task(platform: Platform, device_id: str, item: Queued) -> Plan:
    body, rid = item.body, item.request_id
    if isinstance(body, dict) and not item.raw:
        body = json.loads(json.dumps(body))
        if platform.misbehaves("duplicate-request-id") and platform.last_rid is not None:
            body["request_id"] = rid = platform.last_rid
        if platform.misbehaves("oversized-user-info"):
            pad_serialised_limits(platform, body)
    wire = body if isinstance(body, bytes) else _json(body)
    if platform.misbehaves("task-not-json"):
        wire = not_json(wire)
    now = time.time()
    deadline = now + platform.result_timeout()

    def write(conn: Any, exchange_id: int) -> None:
        platform.store.update(
            conn, "tasks", {"id": item.task_id}, state="sent", sent_at=now, deadline=deadline, sent_exchange=exchange_id
        )

    def after() -> None:
        platform.queues.pop(device_id)
        key = rid_key(rid)
        if key is not None:
            platform.queues.pending[key] = Pending(item.task_id, rid, item.request_type, device_id, now, deadline)
        if isinstance(rid, int) and not isinstance(rid, bool):
            platform.last_rid = rid

    return Plan(200, wire, write=write, after=after)


def pad_serialised_limits(platform: Platform, body: dict[str, Any]) -> None:
    """Grow every object with a serialised size limit past it (misbehaviour
    oversized_user_info): its first string member is padded."""
    name = body.get("request_type")
    schema = platform.contract.all_tasks[name].schema if name in platform.contract.all_tasks else None
    if schema is None:
        return
    for pointer, notes in platform.contract.annotations(schema, body, platform.version):
        limit = notes.get("x-max-serialized-bytes")
        target = resolve_pointer(body, pointer)
        if limit is None or not isinstance(target, dict):
            continue
        key = next((k for k, v in target.items() if isinstance(v, str)), None)
        if key is not None:
            target[key] = target[key] + "x" * (int(limit) + 1)


# ---- /taskResult -----------------------------------------------------------------
def plan_task_result(platform: Platform, incoming: Incoming, request: dict[str, Any], device_id: str) -> Plan:
    key = rid_key(request.get("request_id"))
    pending = platform.queues.pending.get(key) if key else None
    schema = platform.contract.result_schema(pending.request_type if pending else None)
    errors = platform.errors_of(platform.prejudge(schema, incoming.body), "request")
    now = time.time()
    rid_text = key or ""

    def store_result(accepted: bool, state: str | None = None):
        def write(conn: Any, exchange_id: int) -> None:
            code = request.get("code") if isinstance(request.get("code"), int) else None
            platform.store.insert(
                conn,
                "results",
                exchange_id=exchange_id,
                device_id=device_id,
                request_id=rid_text,
                request_type=pending.request_type if pending else None,
                code=code,
                accepted=int(accepted),
                received=now,
                body=json.dumps(request, ensure_ascii=False),
            )
            if state and pending is not None:
                platform.store.update(
                    conn, "tasks", {"id": pending.task_id}, state=state, result_code=code, done_at=now
                )

        return write

    if errors:
        return Plan(400, None, log=f"result refused: {len(errors)} error(s)", write=store_result(False))
    if pending is None:
        return Plan(
            200,
            {"code": 1, "log": f"refused: request_id {request.get('request_id')!r} was never given to {device_id}"},
            write=store_result(False),
        )
    foreign = pending.device_id != device_id
    if foreign and not platform.misbehaves("accept-foreign-result"):
        return Plan(
            200,
            {"code": 1, "log": f"refused: request_id {request.get('request_id')!r} was given to another device"},
            write=store_result(False),
        )
    if pending.done:
        return Plan(
            200,
            {"code": 0, "log": f"duplicate result for request_id {request.get('request_id')!r} ignored"},
            write=store_result(False),
        )

    code = request.get("code")

    def after() -> None:
        pending.done = True
        if platform.misbehaves("resend-failed-task") and isinstance(code, int) and code != 0:
            resend(platform, pending)

    state = "late" if pending.expired else "done"
    return Plan(
        200,
        {"code": 0, "log": f"result for {pending.request_type} {request.get('request_id')!r} recorded"},
        write=store_result(True, state),
        after=after,
    )


def resend(platform: Platform, pending: Pending) -> None:
    """Misbehaviour resend_failed_task: the failed task goes back in the queue as it was sent, under a
    new request_id (raw tasks are not re-sent: their ids are the caller's)."""
    rows = platform.store.rows("SELECT body FROM tasks WHERE id = ? AND raw = 0", (pending.task_id,))
    if rows:
        platform.enqueue(pending.device_id, json.loads(rows[0]["body"]))


# ---- uploads ---------------------------------------------------------------------
def capture_image(platform: Platform, request: dict[str, Any]) -> bytes | None:
    """The first JPEG the capture carries (for thumbnails), decoded."""
    schema = platform.contract.all_endpoints["faceRecognition"].request
    for pointer, notes in platform.contract.annotations(schema, request, platform.version):
        value = resolve_pointer(request, pointer)
        if notes.get("contentMediaType") == "image/jpeg" and isinstance(value, str):
            data = decoded_base64(value)  # decoded once for the engine's image check and for this
            return None if isinstance(data, Exception) else data
    return None


def echo_answer(platform: Platform, request: dict[str, Any]) -> dict[str, Any]:
    """The capture answer: code plus an echo of the fields its schema marks x-echo (errata #19)."""
    answer: dict[str, Any] = {"code": 1 if platform.misbehaves("capture-code-nonzero") else 0}
    for name in platform.contract.echo_fields("faceRecognition", platform.version):
        if name in request:
            answer[name] = request[name]
            if platform.misbehaves("capture-no-echo"):
                answer[name] = answer[name] + 1 if isinstance(answer[name], int) else f"{answer[name]}-not-echoed"
    answer["log"] = "'faceRecognition' received"
    return answer


def only_path_names(platform: Platform, request: dict[str, Any], errors: list[Any]) -> bool:
    """Every error is a file-name field (x-file-name) that is a path (misbehaviour accept-path-frpic)."""
    schema = platform.contract.all_endpoints["faceRecognition"].request
    names = platform.contract.file_name_pointers(schema, request, platform.version)
    return all(f.rule == "MSG-FORMAT" and f.pointer in names for f in errors)


def plan_capture(platform: Platform, incoming: Incoming, request: dict[str, Any], device_id: str) -> Plan:
    errors = platform.errors_of(platform.prejudge(incoming.endpoint, incoming.body), "request")
    if errors and platform.misbehaves("accept-path-frpic") and only_path_names(platform, request, errors):
        errors = []  # misbehaving: the path is taken as a name (and only stored in the database)
    image = capture_image(platform, request)
    now = time.time()

    def write(conn: Any, exchange_id: int) -> None:
        snap = request.get("snap_time") if isinstance(request.get("snap_time"), int) else None
        name = request.get("frpic_name") if isinstance(request.get("frpic_name"), str) else None
        platform.store.insert(
            conn,
            "captures",
            exchange_id=exchange_id,
            device_id=device_id,
            snap_time=snap,
            frpic_name=name,
            accepted=int(not errors),
            received=now,
            image=image,
        )

    if errors:
        return Plan(400, None, log=f"capture refused: {len(errors)} error(s)", write=write)
    if platform.misbehaves("capture-5xx"):
        return Plan(500, {"code": 500, "log": "internal error (misbehaviour capture-5xx)"}, write=write)
    return Plan(200, echo_answer(platform, request), write=write)


def plan_report(platform: Platform, incoming: Incoming, request: dict[str, Any], device_id: str) -> Plan:
    """deviceAlarm and gpsReport: stored, acknowledged with {code: 0, log} (errata #18)."""
    errors = platform.errors_of(platform.prejudge(incoming.endpoint, incoming.body), "request")
    table = "alarms" if incoming.endpoint == "deviceAlarm" else "gps"
    now = time.time()

    def write(conn: Any, exchange_id: int) -> None:
        platform.store.insert(
            conn,
            table,
            exchange_id=exchange_id,
            device_id=device_id,
            accepted=int(not errors),
            received=now,
            body=json.dumps(request, ensure_ascii=False),
        )

    if errors:
        return Plan(400, None, log=f"{incoming.endpoint} refused: {len(errors)} error(s)", write=write)
    return Plan(200, {"code": 0, "log": f"'{incoming.endpoint}' received"}, write=write)


_HANDLERS = {
    "taskRequest": plan_task_request,
    "taskResult": plan_task_result,
    "faceRecognition": plan_capture,
    "deviceAlarm": plan_report,
    "gpsReport": plan_report,
}
