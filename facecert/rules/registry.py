"""The single list of rules. Reports, docs, the device's fault knobs and the
tests all enumerate this table, so a rule cannot exist in one and not the
others. Schema rules (MSG-*) are generic over the contract: which field and
which constraint is in the finding's pointer and message, taken from the
schemas."""

from __future__ import annotations

from dataclasses import dataclass

from facecert.model import Severity

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    party: str  # device, server, or "sender" (whoever sent the message)
    spec: str
    title: str
    origin: str = "engine"  # "engine": found in the exchanges; "plan": a check a certification step makes


_TABLE: list[Rule] = [
    # --- one message against its schema (party: whoever sent it) ---
    Rule("MSG-NOT-JSON", E, "sender", "§1–§4 JSON 格式", "body is not a JSON document (or not UTF-8)"),
    Rule("MSG-NOT-OBJECT", E, "sender", "§1–§4 JSON 格式", "body is JSON but not an object"),
    Rule("MSG-EMPTY-BODY", E, "sender", "§1–§4 JSON 格式", "body is empty where a message is required"),
    Rule("MSG-TOO-LARGE", E, "sender", "errata #26", "body larger than the configured limit"),
    # bounds of catalogue.yaml `limits:` and strict JSON (RFC 8259, I-JSON RFC 7493): refused before judging
    Rule("MSG-TOO-DEEP", E, "sender", "§1–§4 JSON 格式; limits (RFC 8259 §9)", "objects/arrays nested deeper than the limit"),
    Rule("MSG-TOO-MANY-MEMBERS", E, "sender", "§1–§4 JSON 格式; limits (RFC 8259 §9)",
         "an object, an array or the whole message holds more values than the limit"),
    Rule("MSG-STRING-TOO-LONG", E, "sender", "§1–§4 JSON 格式; limits (RFC 8259 §9)",
         "a string or key longer than the limit (content fields excepted)"),
    Rule("MSG-NUMBER-TOO-LARGE", E, "sender", "§1–§4 JSON 格式; I-JSON (RFC 7493 §2.2)",
         "an integer beyond ±(2**53-1), or a number literal longer than the limit"),
    Rule("MSG-NOT-FINITE", E, "sender", "§1–§4 JSON 格式; RFC 8259 §6", "NaN, Infinity, or a number no 64-bit float holds (1e400)"),
    Rule("MSG-BAD-UNICODE", E, "sender", "§1–§4 JSON 格式; RFC 8259 §8.2, I-JSON (RFC 7493 §2.1)",
         "a string with a lone surrogate escape (\\ud800-\\udfff unpaired)"),
    Rule("MSG-DUPLICATE-KEY", E, "sender", "§1–§4 JSON 格式; RFC 8259 §4, I-JSON (RFC 7493 §2.3)",
         "an object names the same key twice"),
    Rule("MSG-REQUIRED", E, "sender", "parameter tables (必须 = Y)", "a required field is missing"),
    Rule("MSG-TYPE", E, "sender", "parameter tables (备注)", "a field has the wrong JSON type"),
    Rule("MSG-ENUM", E, "sender", "parameter tables (备注)", "a field's value is not one the document defines"),
    Rule("MSG-RANGE", E, "sender", "parameter tables (max/min, 范围)", "a value or length is out of range"),
    Rule("MSG-FORMAT", E, "sender", "parameter tables (备注)", "a string does not have the required form"),
    Rule("MSG-NOT-ALLOWED", E, "sender", "parameter tables (备注)", "a field is present where the document excludes it"),
    Rule("MSG-SCHEMA", E, "sender", "parameter tables", "the message breaks a combined constraint of its schema"),
    Rule("MSG-UNKNOWN-FIELD", I, "sender", "parameter tables", "a field the document does not define (vendor extension)"),
    Rule("TASK-UNKNOWN", E, "server", "§2 服务器返回的任务", "the taskRequest answer names no task of this protocol version"),
    Rule("ENDPOINT-NOT-IN-VERSION", E, "device", "更新说明 (revision table)", "an endpoint used that the declared protocol version does not have"),
    Rule("HTTP-METHOD", E, "device", "§1 方法 URL (POST)", "device messages are POSTed"),
    Rule("ANSWER-HTTP-STATUS", E, "server", "errata #18", "the server answered with a non-2xx status"),
    Rule("ANSWER-MISSING", E, "server", "errata #18", "the server gave no answer (connection failed or timed out)"),
    # --- content the schema can only annotate ---
    Rule("IMG-BASE64", E, "sender", "§4 image (Base64 编码)", "an image field is not valid base64"),
    Rule("IMG-FORMAT", E, "sender", "§4 image, §2.5 png", "an image is not of the stated format (JPEG/PNG)"),
    Rule("USERINFO-SIZE", E, "server", "§2.1 user_info (长度 256B)", "user_info longer than 256 bytes"),
    Rule("SNAPTIME-MS", E, "device", "§4 snap_time / snap_time_ms", "snap_time_ms disagrees with snap_time"),
    # --- across messages of one conversation ---
    Rule("RESULT-MISSING", E, "device", "工作流程, §3", "a task got no taskResult"),
    Rule("RESULT-DUPLICATE", E, "device", "§3", "a task got more than one taskResult"),
    Rule("RESULT-UNKNOWN-ID", E, "device", "§3 request_id", "a taskResult for a request_id this device was never given"),
    Rule("RESULT-FOR-IDLE", E, "device", "§2.4 idleTime, errata #17", "a taskResult sent for idleTime, which has no request_id"),
    Rule("RESULT-FOREIGN-ACCEPTED", E, "server", "§3 request_id, field failures", "the server accepted a result for a task it gave another device"),
    Rule("REQUEST-ID-DUPLICATE", E, "server", "§2 request_id (唯一 id)", "the server reused a request_id"),
    Rule("CADENCE-IDLE", E, "device", "工作流程 (等 20 秒)", "next taskRequest not ~20 s after idleTime"),
    Rule("CADENCE-TASK", E, "device", "工作流程 (5 秒)", "next taskRequest not ~5 s after a task"),
    Rule("ACK-ECHO", E, "server", "§4 服务器返回, errata #19", "capture answer does not echo snap_time / frpic_name"),
    Rule("ACK-CODE", E, "server", "§4 服务器返回", "capture answer code is not 0 for a valid capture"),
    Rule("GPS-CADENCE", E, "device", "§1.2 (5 秒 / 20 米)", "GPS report sooner than 5 s without moving 20 m"),
    Rule("GPS-DISTANCE", E, "device", "§1.2 distance", "reported distance disagrees with the positions"),
    Rule("DEVTIME-APPLIED", E, "device", "§2.3 setDevTime, errata #21", "clock not moved by setDevTime"),
    Rule("FACECMD-CAPTURE", E, "device", "§2.12 faceCmd, errata #23", "no capture uploaded after faceCmd"),
    Rule("DOWNLOAD-FETCHED", E, "device", "§2.1/§2.5/§2.6, errata #24", "task reported success without fetching its URL"),
    Rule("POLL-STOPPED", E, "device", "工作流程, errata #26",
         "no taskRequest for longer than the longest wait the device may make: it stopped polling"),
    Rule("TASK-RESENT", E, "server", "§3 code (失败代码), errata #29",
         "the server kept re-sending a task the device had failed (more than twice)"),
    Rule("FRPIC-PATH-ACCEPTED", W, "server", "§4 frpic_name, errata #28",
         "a capture whose frpic_name is a path was acknowledged as accepted: check the server by hand"),
]

# Checks the certification plans make in their steps (what a scenario expected and did not see).
# They are rules like the others, so every failure names one and every output can group by it.
# Party "harness": the scenario could not be carried out (its verdict is error, not fail).
_PLAN: list[Rule] = [
    Rule("TASK-NOT-SENT", E, "server", "§2 服务器返回的任务", "the platform was made to queue a task and did not send it", "plan"),
    Rule("TASK-NOT-DONE", E, "device", "§2 tasks, §3 code (0 = success)",
         "a task a conforming device carries out was reported with a non-zero code", "plan"),
    Rule("TASK-NOT-REFUSED", E, "device", "§2 tasks, §3 code (0 = success)",
         "a task a conforming device must refuse was reported with code 0", "plan"),
    Rule("FACEDB-COUNT", E, "device", "§2.1/§2.2/§2.9, getDevStatus total_face",
         "the face count did not change as the task implies", "plan"),
    Rule("RESULT-FIELD-EMPTY", E, "device", "§2.7 log_info, §2.8 getDevStatus",
         "a result field the task exists to return is empty", "plan"),
    Rule("CAPTURE-MISSING", E, "device", "§4 抓拍记录", "no capture arrived when one was made", "plan"),
    Rule("ALARM-MISSING", E, "device", "§1.3 alarmReport", "no alarm arrived when one was raised", "plan"),
    Rule("GPS-MISSING", E, "device", "§1.2 gpsReport", "fewer GPS reports arrived than the 5 s rule implies", "plan"),
    Rule("RESUME-REPLAY", E, "device", "§2.10 setResumeTransfer (断网续传)",
         "captures made during an outage were not replayed once each, in order", "plan"),
    Rule("PLATFORM-MOVED", E, "device", "§2.11 setPlatformServer, errata #22",
         "the device did not poll the server it was told to use", "plan"),
    Rule("HARNESS-TRIGGER", E, "harness", "trigger file", "the trigger file's call to the platform failed", "plan"),
    Rule("HARNESS-OPERATOR", E, "harness", "operator", "the step needs a person at the console and none answered", "plan"),
    Rule("HARNESS-ERROR", E, "harness", "facecert", "the harness itself failed (a bug of facecert: please report it)",
         "plan"),
]
_TABLE += _PLAN

RULES: dict[str, Rule] = {rule.id: rule for rule in _TABLE}


def get_rule(rule_id: str) -> Rule:
    return RULES[rule_id]
