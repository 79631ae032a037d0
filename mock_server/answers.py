"""What the platform answers to each device message (docs/mock-server.md,
"Answers"), including the fault modes and the misbehaviours.

Each ``plan_*`` decides status and body from the engine's judgement of the
request (:class:`facecert.core.engine.Request`: its body, device and errors,
judged once) and the server's state (:class:`mock_server.state.ServerState`),
and says what to write with the exchange and what to change in memory;
:class:`mock_server.platform.Platform` completes the judgement and commits it.
Field and task names come from the contract, never from lists here.
"""

from __future__ import annotations

import json
import time
from typing import Any

from facecert.core.contract import Contract
from facecert.core.engine import Request
from facecert.core.model import Finding
from facecert.core.rules.conversation import rid_key
from facecert.core.rules.message import decoded_base64, resolve_pointer
from facecert.mock_server.faults import Fault, FaultKind, OutageMode
from facecert.mock_server.messages import THIS_EXCHANGE, Incoming, Plan, Write
from facecert.mock_server.messages import to_json as _json
from facecert.mock_server.state import Pending, Queued, ServerState, TaskState

UNKNOWN_TASK = "facecertUnknownTask"  # a request_type the document does not define (misbehaviour unknown-task)


def plan_for(state: ServerState, incoming: Incoming, heard: Request, fault: Fault | None) -> Plan:
    """The answer to one device message (``fault``: the one in force for its device and endpoint)."""
    if fault is not None and fault.kind is not FaultKind.SLOW:
        return plan_fault(fault)
    if incoming.method.upper() == "CONNECT":  # a 2xx would switch the connection to a tunnel (RFC 9110 §9.3.6)
        return Plan(405, {"code": 405, "log": "CONNECT is not a device message: devices POST (HTTP-METHOD)"})
    if heard.failure is not None:
        too_large = heard.failure.rule == "MSG-TOO-LARGE"
        return Plan(413 if too_large else 400, None, log=f"refused: {heard.failure.message}")
    return _PLANNERS[incoming.endpoint](state, incoming, heard)


def plan_fault(fault: Fault) -> Plan:
    if fault.kind is FaultKind.OUTAGE and fault.params["mode"] in (
        OutageMode.DROP,
        OutageMode.REFUSE,
    ):  # refuse: kept-alive
        return Plan(None, error="connection closed without an answer (outage fault)")
    if fault.kind is FaultKind.OUTAGE:
        return Plan(503, {"code": 503, "log": "service unavailable (outage fault)"})
    if fault.kind is FaultKind.ERROR:
        status = fault.params["status"]
        return Plan(status, {"code": status, "log": f"server error {status} (error fault)"})
    return Plan(200, fault.params["body"].encode("utf-8"))  # malformed


def refused_body(plan: Plan, findings: list[Finding]) -> bytes:
    """The body of a refusal the planner left open (``plan.answer`` None): its status and log, and
    what the engine found in the request."""
    shown = [f.to_dict() for f in findings if f.direction == "request" and f.severity.value != "info"]
    return _json({"code": plan.status, "log": plan.log, "findings": shown})


# ---- /taskRequest ------------------------------------------------------------
def idle_answer(state: ServerState, now: float) -> dict[str, Any]:
    """The answer that means "nothing to do" (the contract's idle task) with the server time."""
    answer: dict[str, Any] = {"request_type": state.idle_task}
    if not state.misbehaves("idle-without-time-stamp"):
        for key in state.idle_fields:
            answer[key] = int(now)  # the idle task's only other field is the server time
    return answer


def not_json(wire: bytes) -> bytes:
    return b"<task>" + wire + b"</task>"


def missing_vendor_fields(contract: Contract, endpoint: str, request: Any) -> list[str]:
    """The catalogue's vendor extras of ``endpoint`` the message lacks (misbehaviour require-vendor-field)."""
    present = request if isinstance(request, dict) else {}
    return [name for name in contract.vendor_extras.get(endpoint, {}) if name not in present]


def plan_task_request(state: ServerState, incoming: Incoming, heard: Request) -> Plan:
    if state.misbehaves("no-answer"):
        return Plan(None, error="connection closed without an answer (misbehaviour no-answer)")
    if state.misbehaves("require-vendor-field"):
        missing = missing_vendor_fields(state.contract, incoming.endpoint, heard.body)
        if missing:
            log = f"internal error: {', '.join(missing)} missing (misbehaviour require-vendor-field)"
            return Plan(500, {"code": 500, "log": log})
    item = state.queues.peek(heard.device_id)
    if item is not None and not state.misbehaves("ignore-queued-tasks"):  # misbehaving: queued, never sent
        return plan_send_task(state, heard.device_id, item)
    if state.misbehaves("idle-empty-body"):
        return Plan(200, b"")
    answer: dict[str, Any]
    if state.misbehaves("unknown-task"):
        answer = {"request_type": UNKNOWN_TASK, "request_id": state.take_rid()}
    else:
        answer = idle_answer(state, time.time())
    return Plan(200, not_json(_json(answer)) if state.misbehaves("task-not-json") else answer)


def plan_send_task(state: ServerState, device_id: str, item: Queued) -> Plan:
    body, rid = item.body, item.request_id
    if isinstance(body, dict) and not item.raw:
        body = json.loads(json.dumps(body))
        if state.misbehaves("duplicate-request-id") and state.last_rid is not None:
            body["request_id"] = rid = state.last_rid
        if state.misbehaves("oversized-user-info"):
            pad_serialised_limits(state, body)
    wire: Any = body  # a dict is encoded by the platform
    if state.misbehaves("task-not-json"):
        wire = not_json(body if isinstance(body, bytes) else _json(body))
    now = time.time()
    deadline = now + state.result_timeout_s
    sent = Write(
        "tasks",
        {"state": TaskState.SENT, "sent_at": now, "deadline": deadline, "sent_exchange": THIS_EXCHANGE},
        where={"id": item.task_id},
    )

    def taken() -> None:
        state.queues.pop(device_id)
        key = rid_key(rid)
        if key is not None:
            state.queues.sent(key, Pending(item.task_id, rid, item.request_type, device_id, now, deadline))
        if isinstance(rid, int) and not isinstance(rid, bool):
            state.last_rid = rid

    return Plan(200, wire, writes=[sent], after=taken)


def pad_serialised_limits(state: ServerState, body: dict[str, Any]) -> None:
    """Grow every object with a serialised size limit past it (misbehaviour
    oversized_user_info): its first string member is padded."""
    contract = state.contract
    name = body.get("request_type")
    schema = contract.all_tasks[name].schema if name in contract.all_tasks else None
    if schema is None:
        return
    for pointer, notes in contract.annotations(schema, body, state.version):
        limit = notes.get("x-max-serialized-bytes")
        target = resolve_pointer(body, pointer)
        if limit is None or not isinstance(target, dict):
            continue
        key = next((k for k, v in target.items() if isinstance(v, str)), None)
        if key is not None:
            target[key] = target[key] + "x" * (int(limit) + 1)


# ---- /taskResult -----------------------------------------------------------------
def plan_task_result(state: ServerState, incoming: Incoming, heard: Request) -> Plan:
    request, device_id = heard.body, heard.device_id
    key = rid_key(request.get("request_id"))
    pending = state.queues.pending.get(key) if key else None
    errors = heard.errors(framing=False)
    now = time.time()
    code = request.get("code") if isinstance(request.get("code"), int) else None

    def stored(accepted: bool, done: TaskState | None = None) -> list[Write]:
        result = Write(
            "results",
            {
                "exchange_id": THIS_EXCHANGE,
                "device_id": device_id,
                "request_id": key or "",
                "request_type": pending.request_type if pending else None,
                "code": code,
                "accepted": int(accepted),
                "received": now,
                "body": json.dumps(request, ensure_ascii=False),
            },
        )
        if done is None or pending is None:
            return [result]
        task = Write("tasks", {"state": done, "result_code": code, "done_at": now}, where={"id": pending.task_id})
        return [result, task]

    if errors:
        return Plan(400, None, log=f"result refused: {len(errors)} error(s)", writes=stored(False))
    if pending is None:
        log = f"refused: request_id {request.get('request_id')!r} was never given to {device_id}"
        return Plan(200, {"code": 1, "log": log}, writes=stored(False))
    foreign = pending.device_id != device_id
    if foreign and not state.misbehaves("accept-foreign-result"):
        log = f"refused: request_id {request.get('request_id')!r} was given to another device"
        return Plan(200, {"code": 1, "log": log}, writes=stored(False))
    if pending.done:
        log = f"duplicate result for request_id {request.get('request_id')!r} ignored"
        return Plan(200, {"code": 0, "log": log}, writes=stored(False))

    sent_as = key  # found by it: never None here
    assert sent_as is not None

    def answered() -> None:
        state.queues.answered(sent_as, pending)

    failed = isinstance(request.get("code"), int) and request.get("code") != 0
    return Plan(
        200,
        {"code": 0, "log": f"result for {pending.request_type} {request.get('request_id')!r} recorded"},
        writes=stored(True, TaskState.LATE if pending.expired else TaskState.DONE),
        after=answered,
        resend=pending if failed and state.misbehaves("resend-failed-task") else None,
    )


# ---- uploads ---------------------------------------------------------------------
def capture_image(contract: Contract, version: str, request: dict[str, Any]) -> bytes | None:
    """The first JPEG the capture carries (for thumbnails), decoded."""
    schema = contract.all_endpoints["faceRecognition"].request
    for pointer, notes in contract.annotations(schema, request, version):
        value = resolve_pointer(request, pointer)
        if notes.get("contentMediaType") == "image/jpeg" and isinstance(value, str):
            data = decoded_base64(value)  # decoded once for the engine's image check and for this
            return None if isinstance(data, Exception) else data
    return None


def echo_answer(state: ServerState, request: dict[str, Any]) -> dict[str, Any]:
    """The capture answer: code plus an echo of the fields its schema marks x-echo (errata #19)."""
    answer: dict[str, Any] = {"code": 1 if state.misbehaves("capture-code-nonzero") else 0}
    for name in state.contract.echo_fields("faceRecognition", state.version):
        if name in request:
            answer[name] = request[name]
            if state.misbehaves("capture-no-echo"):
                answer[name] = answer[name] + 1 if isinstance(answer[name], int) else f"{answer[name]}-not-echoed"
    answer["log"] = "'faceRecognition' received"
    return answer


def only_path_names(state: ServerState, request: dict[str, Any], errors: list[Finding]) -> bool:
    """Every error is a file-name field (x-file-name) that is a path (misbehaviour accept-path-frpic)."""
    schema = state.contract.all_endpoints["faceRecognition"].request
    names = state.contract.file_name_pointers(schema, request, state.version)
    return all(f.rule == "MSG-FORMAT" and f.pointer in names for f in errors)


def plan_capture(state: ServerState, incoming: Incoming, heard: Request) -> Plan:
    request = heard.body
    errors = heard.errors(framing=False)
    if errors and state.misbehaves("accept-path-frpic") and only_path_names(state, request, errors):
        errors = []  # misbehaving: the path is taken as a name (and only stored in the database)
    snap, name = request.get("snap_time"), request.get("frpic_name")
    capture = Write(
        "captures",
        {
            "exchange_id": THIS_EXCHANGE,
            "device_id": heard.device_id,
            "snap_time": snap if isinstance(snap, int) else None,
            "frpic_name": name if isinstance(name, str) else None,
            "accepted": int(not errors),
            "received": time.time(),
            "image": capture_image(state.contract, state.version, request),
        },
    )
    if errors:
        return Plan(400, None, log=f"capture refused: {len(errors)} error(s)", writes=[capture])
    if state.misbehaves("capture-5xx"):
        return Plan(500, {"code": 500, "log": "internal error (misbehaviour capture-5xx)"}, writes=[capture])
    return Plan(200, echo_answer(state, request), writes=[capture])


def plan_report(state: ServerState, incoming: Incoming, heard: Request) -> Plan:
    """deviceAlarm and gpsReport: stored, acknowledged with {code: 0, log} (errata #18)."""
    errors = heard.errors(framing=False)
    report = Write(
        "alarms" if incoming.endpoint == "deviceAlarm" else "gps",
        {
            "exchange_id": THIS_EXCHANGE,
            "device_id": heard.device_id,
            "accepted": int(not errors),
            "received": time.time(),
            "body": json.dumps(heard.body, ensure_ascii=False),
        },
    )
    if errors:
        return Plan(400, None, log=f"{incoming.endpoint} refused: {len(errors)} error(s)", writes=[report])
    return Plan(200, {"code": 0, "log": f"'{incoming.endpoint}' received"}, writes=[report])


_PLANNERS = {
    "taskRequest": plan_task_request,
    "taskResult": plan_task_result,
    "faceRecognition": plan_capture,
    "deviceAlarm": plan_report,
    "gpsReport": plan_report,
}
