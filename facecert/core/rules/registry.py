"""The single list of rules. Reports, docs, the device's fault knobs and the
tests all enumerate this table, so a rule cannot exist in one and not the
others. Schema rules (MSG-*) are generic over the contract: which field and
which constraint is in the finding's pointer and message, taken from the
schemas."""

from __future__ import annotations

from dataclasses import dataclass

from facecert.core.model import Severity


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    party: str  # device, server, or "sender" (whoever sent the message)
    spec: str
    title: str
    origin: str = "engine"  # "engine": found in the exchanges; "plan": a check a certification step makes
    # what a finding's message looks like, with concrete values: written by running the engine on a breaking
    # case (tests/engine/test_rules.py) or, for plan rules, as the step words it (steps/*.py); `facecert rules`
    example: str = ""


_TABLE: list[Rule] = [
    # --- one message against its schema (party: whoever sent it) ---
    Rule(
        "MSG-NOT-JSON",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式",
        "body is not a JSON document (or not UTF-8)",
        example=(
            "deviceAlarm request body is not JSON: Expecting property name enclosed in double quotes: line 1"
            " column 2 (char 1)"
        ),
    ),
    Rule(
        "MSG-NOT-OBJECT",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式",
        "body is JSON but not an object",
        example="deviceAlarm request body is JSON list, not an object",
    ),
    Rule(
        "MSG-EMPTY-BODY",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式",
        "body is empty where a message is required",
        example="deviceAlarm request has an empty body; a JSON object is required",
    ),
    Rule(
        "MSG-TOO-LARGE",
        Severity.ERROR,
        "sender",
        "errata #26",
        "body larger than the configured limit",
        example="deviceAlarm request body is 20,971,621 bytes, above the limit of 20,971,520",
    ),
    # bounds of catalogue.yaml `limits:` and strict JSON (RFC 8259, I-JSON RFC 7493): refused before judging
    Rule(
        "MSG-TOO-DEEP",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式; limits (RFC 8259 §9)",
        "objects/arrays nested deeper than the limit",
        example=(
            "deviceAlarm request: /x_nested/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0 "
            "nests 33 levels deep here; the limit is 32"
        ),
    ),
    Rule(
        "MSG-TOO-MANY-MEMBERS",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式; limits (RFC 8259 §9)",
        "an object, an array or the whole message holds more values than the limit",
        example="deviceAlarm request: /x_many has 10,001 members; the limit is 10,000",
    ),
    Rule(
        "MSG-STRING-TOO-LONG",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式; limits (RFC 8259 §9)",
        "a string or key longer than the limit (content fields excepted)",
        example="deviceAlarm request: /x_text holds a string of 65,537 characters; the limit is 65,536",
    ),
    Rule(
        "MSG-NUMBER-TOO-LARGE",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式; I-JSON (RFC 7493 §2.2)",
        "an integer beyond ±(2**53-1), or a number literal longer than the limit",
        example=(
            "deviceAlarm request: /x_big is 9007199254740992, beyond ±9007199254740991 (2**53-1): many JSON "
            "readers cannot hold it exactly"
        ),
    ),
    Rule(
        "MSG-NOT-FINITE",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式; RFC 8259 §6",
        "NaN, Infinity, or a number no 64-bit float holds (1e400)",
        example=(
            "deviceAlarm request: /x_number is 1e400, which is no finite number (RFC 8259 has no NaN or "
            "Infinity; a 64-bit float cannot hold it)"
        ),
    ),
    Rule(
        "MSG-BAD-UNICODE",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式; RFC 8259 §8.2, I-JSON (RFC 7493 §2.1)",
        "a string with a lone surrogate escape (\\ud800-\\udfff unpaired)",
        example=(
            "deviceAlarm request: /x_text holds a string with a lone surrogate escape (\\ud800-\\udfff without"
            " its pair), which is no Unicode character"
        ),
    ),
    Rule(
        "MSG-DUPLICATE-KEY",
        Severity.ERROR,
        "sender",
        "§1–§4 JSON 格式; RFC 8259 §4, I-JSON (RFC 7493 §2.3)",
        "an object names the same key twice",
        example=(
            "deviceAlarm request: the body names 'device_ip' more than once; readers disagree on which value"
            " counts (this engine judges the last)"
        ),
    ),
    Rule(
        "MSG-REQUIRED",
        Severity.ERROR,
        "sender",
        "parameter tables (必须 = Y)",
        "a required field is missing",
        example=(
            "taskResult request: required field /code (Result code: 0 success, anything else failure (失败代码，0"
            " 表示成功)) is missing"
        ),
    ),
    Rule(
        "MSG-TYPE",
        Severity.ERROR,
        "sender",
        "parameter tables (备注)",
        "a field has the wrong JSON type",
        example=(
            'taskResult request: /code (Result code: 0 success, anything else failure (失败代码，0 表示成功)) — "0" '
            'is not of type "integer"; got "0"'
        ),
    ),
    Rule(
        "MSG-ENUM",
        Severity.ERROR,
        "sender",
        "parameter tables (备注)",
        "a field's value is not one the document defines",
        example=(
            "faceRecognition request: /mask (Mask: 0 no mask, 6 mask (口罩：0 无口罩，6 有口罩)) — 3 is not one of 0 "
            "or 6; got 3"
        ),
    ),
    Rule(
        "MSG-RANGE",
        Severity.ERROR,
        "sender",
        "parameter tables (max/min, 范围)",
        "a value or length is out of range",
        example=(
            "faceRecognition request: /face_yaw (Face yaw, -100..100, larger means more turned (人脸左右侧脸角度)) —"
            " 101 is greater than the maximum of 100; got 101"
        ),
    ),
    Rule(
        "MSG-FORMAT",
        Severity.ERROR,
        "sender",
        "parameter tables (备注)",
        "a string does not have the required form",
        example=(
            'taskRequest request: /device_mac (Wired MAC address of the device (设备有线 mac 地址)) — "not-a-mac" '
            'does not match "^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"; got "not-a-mac"'
        ),
    ),
    Rule(
        "MSG-NOT-ALLOWED",
        Severity.ERROR,
        "sender",
        "parameter tables (备注)",
        "a field is present where the document excludes it",
        example=(
            "deviceAlarm request: /image (Captured picture, only for the motor-vehicle alarm (type 12)) — "
            'False schema does not allow "/9j/4AAQ"; got "/9j/4AAQ"'
        ),
    ),
    Rule(
        "MSG-SCHEMA",
        Severity.ERROR,
        "sender",
        "parameter tables",
        "the message breaks a combined constraint of its schema",
        example=(
            'setScreenSave task: /image_2 (Screen-saver picture 2: http URL of a PNG picture, or "" to ) — '
            '"sc2.png" is not valid under any of the schemas listed in the \'anyOf\' keyword; got "sc2.png"'
        ),
    ),
    Rule(
        "MSG-UNKNOWN-FIELD",
        Severity.INFO,
        "sender",
        "parameter tables",
        "a field the document does not define (vendor extension)",
        example="taskResult request: field /sign_tby is not defined by the document (protocol V2.0); ignored",
    ),
    Rule(
        "TASK-UNKNOWN",
        Severity.ERROR,
        "server",
        "§2 服务器返回的任务",
        "the taskRequest answer names no task of this protocol version",
        example="taskRequest answer: 'rebootDevice' is not a task of the document (protocol V2.0)",
    ),
    Rule(
        "ENDPOINT-NOT-IN-VERSION",
        Severity.ERROR,
        "device",
        "更新说明 (revision table)",
        "an endpoint used that the declared protocol version does not have",
        example="/gpsReport exists from V1.2.3; this session judges protocol V1.2",
    ),
    Rule(
        "HTTP-METHOD",
        Severity.ERROR,
        "device",
        "§1 方法 URL (POST)",
        "device messages are POSTed",
        example="/deviceAlarm was requested with PUT; device messages are POSTed",
    ),
    Rule(
        "ANSWER-HTTP-STATUS",
        Severity.ERROR,
        "server",
        "errata #18",
        "the server answered with a non-2xx status",
        example="/taskRequest answered HTTP 500 to a valid request",
    ),
    Rule(
        "ANSWER-MISSING",
        Severity.ERROR,
        "server",
        "errata #18",
        "the server gave no answer (connection failed or timed out)",
        example="no answer to /taskRequest: connection refused",
    ),
    # --- content the schema can only annotate ---
    Rule(
        "IMG-BASE64",
        Severity.ERROR,
        "sender",
        "§4 image (Base64 编码)",
        "an image field is not valid base64",
        example=(
            'faceRecognition request: /image is not valid base64 (Only base64 data is allowed); starts "@@not base64@@"'
        ),
    ),
    Rule(
        "IMG-FORMAT",
        Severity.ERROR,
        "sender",
        "§4 image, §2.5 png",
        "an image is not of the stated format (JPEG/PNG)",
        example=(
            "faceRecognition request: /image decodes to 69 bytes that are not image/jpeg (starts 89 50 4e 47"
            " 0d 0a 1a 0a)"
        ),
    ),
    Rule(
        "USERINFO-SIZE",
        Severity.ERROR,
        "server",
        "§2.1 user_info (长度 256B)",
        "user_info longer than 256 bytes",
        example=(
            "addUser task: /user_list/0/user_info is 355 bytes as compact UTF-8 JSON; the document allows "
            "256 (长度 256B)"
        ),
    ),
    Rule(
        "REDACTED-PLACEHOLDER",
        Severity.ERROR,
        "sender",
        "facecert redact (docs/reports.md, privacy)",
        "a redacted capture holds an image placeholder that facecert did not write so (altered after redaction)",
        example=(
            "faceRecognition request: /image is a redaction placeholder that was altered: is not "
            "media;bytes=N;head=HEX;px=WxH|pixels=N|px=?;sha256=64 hex nor invalid-base64;chars=N;sha256=64 hex; "
            'starts "facecert-redacted:image/jpeg;bytes=12;sha256=xyz"'
        ),
    ),
    Rule(
        "SNAPTIME-MS",
        Severity.ERROR,
        "device",
        "§4 snap_time / snap_time_ms",
        "snap_time_ms disagrees with snap_time",
        example=(
            "faceRecognition request: snap_time_ms 1678847873000 is +5.000 s away from snap_time 1678847868;"
            " they must name the same second"
        ),
    ),
    # --- across messages of one conversation ---
    Rule(
        "RESULT-MISSING",
        Severity.ERROR,
        "device",
        "工作流程, §3",
        "a task got no taskResult",
        example=(
            "getDevStatus (request_id 100001, exchange #0) got no taskResult from ID12345678901234 after 2 "
            "further poll(s) and 25.0 s"
        ),
    ),
    Rule(
        "RESULT-DUPLICATE",
        Severity.ERROR,
        "device",
        "§3",
        "a task got more than one taskResult",
        example="second taskResult for getDevStatus request_id 100001 (result #2); each task gets exactly one",
    ),
    Rule(
        "RESULT-UNKNOWN-ID",
        Severity.ERROR,
        "device",
        "§3 request_id",
        "a taskResult for a request_id this device was never given",
        example="taskResult for request_id 100078, which was never given to ID12345678901234",
    ),
    Rule(
        "RESULT-FOR-IDLE",
        Severity.ERROR,
        "device",
        "§2.4 idleTime, errata #17",
        "a taskResult sent for idleTime, which has no request_id",
        example="taskResult (request_id 0) after an idleTime answer; idleTime has no request_id and gets no result",
    ),
    Rule(
        "RESULT-FOREIGN-ACCEPTED",
        Severity.ERROR,
        "server",
        "§3 request_id, field failures",
        "the server accepted a result for a task it gave another device",
        example=(
            "the server accepted OTHER0000000001's result for a task it gave ID12345678901234 (request_id "
            "100001); it must refuse it"
        ),
    ),
    Rule(
        "REQUEST-ID-DUPLICATE",
        Severity.ERROR,
        "server",
        "§2 request_id (唯一 id)",
        "the server reused a request_id",
        example=(
            "request_id 100001 was already used for getDevStatus to ID12345678901234 (exchange #0); ids must be unique"
        ),
    ),
    Rule(
        "CADENCE-IDLE",
        Severity.ERROR,
        "device",
        "工作流程 (等 20 秒)",
        "next taskRequest not ~20 s after idleTime",
        example=(
            "taskRequest came 10.000 s after the answer with idleTime (exchange #0); expected 20.000 s "
            "(accepted 15.000–25.050 s)"
        ),
    ),
    Rule(
        "CADENCE-TASK",
        Severity.ERROR,
        "device",
        "工作流程 (5 秒)",
        "next taskRequest not ~5 s after a task",
        example=(
            "taskRequest came 12.004 s after the answer with a task (exchange #0); expected 5.000 s "
            "(accepted 3.750–6.304 s)"
        ),
    ),
    Rule(
        "HARNESS-STALLED",
        Severity.WARNING,
        "harness",
        "facecert (docs/architecture.md, Cadence)",
        "facecert's own process could not run, or answer in time, while a poll was due: a poll it saw late was not "
        "held against the device",
        example=(
            "taskRequest came 1.612 s after the answer with idleTime (exchange #1), later than the 0.750–1.300 s "
            "accepted; facecert's own process could not run or answer for 0.598 s meanwhile, so it may have seen an "
            "on-time poll late: not counted against the device (CADENCE-IDLE not judged for this gap)"
        ),
    ),
    Rule(
        "ACK-ECHO",
        Severity.ERROR,
        "server",
        "§4 服务器返回, errata #19",
        "capture answer does not echo snap_time / frpic_name",
        example="faceRecognition answer snap_time is 1678847865; it must echo the capture's 1678847868",
    ),
    Rule(
        "ACK-CODE",
        Severity.ERROR,
        "server",
        "§4 服务器返回",
        "capture answer code is not 0 for a valid capture",
        example="faceRecognition answer code 1 for a capture with no errors; 0 means received",
    ),
    Rule(
        "GPS-CADENCE",
        Severity.ERROR,
        "device",
        "§1.2 (5 秒 / 20 米)",
        "GPS report sooner than 5 s without moving 20 m",
        example="gpsReport 1.004 s after the previous one and only 1.1 m away; a report needs > 5.000 s or > 20 m",
    ),
    Rule(
        "GPS-DISTANCE",
        Severity.ERROR,
        "device",
        "§1.2 distance",
        "reported distance disagrees with the positions",
        example="gpsReport distance 120 m but the positions are 33.4 m apart (haversine)",
    ),
    Rule(
        "DEVTIME-APPLIED",
        Severity.ERROR,
        "device",
        "§2.3 setDevTime, errata #21",
        "clock not moved by setDevTime",
        example=(
            "setDevTime (exchange #0) set the clock to 1600000000; this taskRequest should carry ~1600000005"
            " but carries 1700000005 (+100000000 s)"
        ),
    ),
    Rule(
        "FACECMD-CAPTURE",
        Severity.ERROR,
        "device",
        "§2.12 faceCmd, errata #23",
        "no capture uploaded after faceCmd",
        example=(
            "faceCmd (exchange #0) succeeded but ID12345678901234 uploaded no capture to /faceRecognition "
            "within 2 further poll(s)"
        ),
    ),
    Rule(
        "DOWNLOAD-FETCHED",
        Severity.ERROR,
        "device",
        "§2.1/§2.5/§2.6, errata #24",
        "task reported success without fetching its URL",
        example=(
            "upgrade (request_id 100001) reported success but http://192.168.1.20:8080/assets/test.img was "
            "never fetched"
        ),
    ),
    Rule(
        "POLL-STOPPED",
        Severity.ERROR,
        "device",
        "工作流程, errata #26",
        "no taskRequest for longer than the longest wait the device may make: it stopped polling",
        example=(
            "the device stopped polling: last taskRequest at 22:13:40.0 UTC (exchange #2), 60.0 s before its"
            " faceRecognition at 22:14:40.0 UTC (exchange #3); expected one within 25.0 s"
        ),
    ),
    Rule(
        "TASK-RESENT",
        Severity.ERROR,
        "server",
        "§3 code (失败代码), errata #29",
        "the server kept re-sending a task the device had failed (more than twice)",
        example=(
            "the server sent deleteUser to ID12345678901234 again (request_id 100004): 3 times since the "
            "device failed it with code -102 (request_id 100001, exchange #1); re-sent as request_ids "
            "[100002, 100003, 100004]. A failed task must not be re-sent forever: every later task waits "
            "behind it"
        ),
    ),
    Rule(
        "FRPIC-PATH-ACCEPTED",
        Severity.WARNING,
        "server",
        "§4 frpic_name, errata #28",
        "a capture whose frpic_name is a path was acknowledged as accepted: check the server by hand",
        example=(
            'capture frpic_name "../../x.php" is a path, not a file name, and the server acknowledged it as '
            "accepted (code 0): from outside nobody can tell whether it was neutralised. Check on the server"
            " by hand: where it writes capture images, that no file was created or overwritten outside that "
            "folder through this name, and that the capture was stored under a sanitised name"
        ),
    ),
]

# Checks the certification plans make in their steps (what a scenario expected and did not see).
# They are rules like the others, so every failure names one and every output can group by it.
# Party "harness": the scenario could not be carried out (its verdict is error, not fail).
_PLAN: list[Rule] = [
    Rule(
        "TASK-NOT-SENT",
        Severity.ERROR,
        "server",
        "§2 服务器返回的任务",
        "the platform was made to queue a task and did not send it",
        "plan",
        example="a addUser task did not happen within 7.2 s: the 7 polls since the trigger were answered 7× idleTime",
    ),
    Rule(
        "TASK-NOT-DONE",
        Severity.ERROR,
        "device",
        "§2 tasks, §3 code (0 = success)",
        "a task a conforming device carries out was reported with a non-zero code",
        "plan",
        example=(
            "a conforming device carries this task out (code 0); the device reported code 202: "
            "\"'getDevStatus' failed: command does not exist\""
        ),
    ),
    Rule(
        "TASK-NOT-REFUSED",
        Severity.ERROR,
        "device",
        "§2 tasks, §3 code (0 = success)",
        "a task a conforming device must refuse was reported with code 0",
        "plan",
        example="a conforming device refuses this task (a non-zero code); the device reported code 0",
    ),
    Rule(
        "FACEDB-COUNT",
        Severity.ERROR,
        "device",
        "§2.1/§2.2/§2.9, getDevStatus total_face",
        "the face count did not change as the task implies",
        "plan",
        example="getDevStatus total_face should grow by one: it was 0, now 0",
    ),
    Rule(
        "RESULT-FIELD-EMPTY",
        Severity.ERROR,
        "device",
        "§2.7 log_info, §2.8 getDevStatus",
        "a result field the task exists to return is empty",
        "plan",
        example="the taskResult's log_info is '': the task exists to return it",
    ),
    Rule(
        "CAPTURE-MISSING",
        Severity.ERROR,
        "device",
        "§4 抓拍记录",
        "no capture arrived when one was made",
        "plan",
        example="a capture did not happen within 8.0 s",
    ),
    Rule(
        "ALARM-MISSING",
        Severity.ERROR,
        "device",
        "§1.3 alarmReport",
        "no alarm arrived when one was raised",
        "plan",
        example="an alarm of type 0 did not happen within 2.0 s",
    ),
    Rule(
        "GPS-MISSING",
        Severity.ERROR,
        "device",
        "§1.2 gpsReport",
        "fewer GPS reports arrived than the 5 s rule implies",
        "plan",
        example="3 GPS reports did not happen within 3.5 s",
    ),
    Rule(
        "RESUME-REPLAY",
        Severity.ERROR,
        "device",
        "§2.10 setResumeTransfer (断网续传)",
        "captures made during an outage were not replayed once each, in order",
        "plan",
        example="3 replayed captures did not happen within 8.0 s",
    ),
    Rule(
        "PLATFORM-MOVED",
        Severity.ERROR,
        "device",
        "§2.11 setPlatformServer, errata #22",
        "the device did not poll the server it was told to use",
        "plan",
        example="a poll on the second server did not happen within 6.0 s",
    ),
    # a capability statement (--capabilities, facecert/certify/capabilities.py) checked against what the peer did
    Rule(
        "CAP-DECLARED-MISSING",
        Severity.ERROR,
        "sender",
        "capability statement (--capabilities)",
        "the peer's capability statement declares what a scenario needed, and the peer did not deliver it",
        "plan",
        example=(
            "the statement declares task=getDevStatus, and the device did not deliver it: TASK-NOT-DONE: a "
            "conforming device carries this task out (code 0); the device reported code 202: "
            "\"'getDevStatus' failed: command does not exist\""
        ),
    ),
    Rule(
        "CAP-UNDECLARED",
        Severity.WARNING,
        "sender",
        "capability statement (--capabilities)",
        "the peer did something its capability statement does not declare",
        "plan",
        example="the device sent a gpsReport, but its statement declares no GPS (gps: false)",
    ),
    Rule(
        "HARNESS-TRIGGER",
        Severity.ERROR,
        "harness",
        "trigger file",
        "the trigger file's call to the platform failed",
        "plan",
        example="the trigger file says nothing about addUser: add it (http call or manual)",
    ),
    Rule(
        "HARNESS-OPERATOR",
        Severity.ERROR,
        "harness",
        "operator",
        "the step needs a person at the console and none answered",
        "plan",
        example=(
            "needs an operator: present a face to the camera (stdin is not a terminal; a capture did not "
            "happen within 8.0 s)"
        ),
    ),
    Rule(
        "HARNESS-INTERRUPTED",
        Severity.ERROR,
        "harness",
        "facecert",
        "the certification was stopped (Ctrl-C, SIGTERM) before this scenario had run to its end",
        "plan",
        example="not run: the certification was stopped by Ctrl-C after 9 of 46 scenarios",
    ),
    Rule(
        "HARNESS-RECORDING",
        Severity.ERROR,
        "harness",
        "facecert",
        "facecert could not record what it heard or saw (its disk is full or failing): the record is incomplete",
        "plan",
        example=(
            "the reference server could not record 12 device requests since 02:14:07 (database or disk is full "
            "(/srv/run/session.db)): the record is incomplete, so this scenario has no verdict; free the space "
            "and run again"
        ),
    ),
    Rule(
        "HARNESS-ERROR",
        Severity.ERROR,
        "harness",
        "facecert",
        "the harness itself failed (a bug of facecert: please report it)",
        "plan",
        example="KeyError: 'request_id'",
    ),
]
_TABLE += _PLAN

RULES: dict[str, Rule] = {rule.id: rule for rule in _TABLE}


def get_rule(rule_id: str) -> Rule:
    return RULES[rule_id]
