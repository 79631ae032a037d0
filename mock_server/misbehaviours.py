"""Ways the mock server can play a *faulty* server under test.

Each misbehaviour breaks exactly one server-party rule of
``facecert/rules/registry.py``, so a client-side harness (or the engine in
this server) can be shown to catch it. The table is data: the admin API,
the docs and the tests enumerate it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Misbehaviour:
    name: str
    rule: str
    description: str


_TABLE = [
    Misbehaviour("duplicate_request_id", "REQUEST-ID-DUPLICATE",
                 "every task after the first reuses the previous request_id"),
    Misbehaviour("capture_no_echo", "ACK-ECHO",
                 "capture answers carry a snap_time and frpic_name other than the capture's"),
    Misbehaviour("capture_code_nonzero", "ACK-CODE", "valid captures are answered with code 1"),
    Misbehaviour("idle_without_time_stamp", "MSG-REQUIRED", "idleTime answers lack time_stamp"),
    Misbehaviour("idle_empty_body", "MSG-EMPTY-BODY", "an empty 200 instead of idleTime when nothing is queued"),
    Misbehaviour("task_not_json", "MSG-NOT-JSON", "taskRequest answers are not JSON"),
    Misbehaviour("unknown_task", "TASK-UNKNOWN", "idleTime answers name a request_type the document does not define"),
    Misbehaviour("accept_foreign_result", "RESULT-FOREIGN-ACCEPTED",
                 "a taskResult for a task given to another device is accepted (code 0)"),
    Misbehaviour("capture_5xx", "ANSWER-HTTP-STATUS", "captures are answered with HTTP 500"),
    Misbehaviour("oversized_user_info", "USERINFO-SIZE",
                 "addUser/updateUser user_info is padded beyond its serialised size limit"),
    Misbehaviour("no_answer", "ANSWER-MISSING", "taskRequest connections are closed without an answer"),
    Misbehaviour("require_vendor_field", "ANSWER-HTTP-STATUS",
                 "taskRequests without the vendor extras of the catalogue (device_ip, sign_tby) are answered "
                 "HTTP 500, as one field server does"),
    Misbehaviour("resend_failed_task", "TASK-RESENT",
                 "a task whose result had code != 0 is queued again with a new request_id, forever"),
    Misbehaviour("accept_path_frpic", "FRPIC-PATH-ACCEPTED",
                 "captures whose frpic_name is a path are acknowledged with code 0 instead of refused (stored in "
                 "the database like any capture: no file is written)"),
    Misbehaviour("ignore_queued_tasks", "TASK-NOT-SENT",
                 "the control API accepts queued tasks, but every poll is answered idleTime"),
]

MISBEHAVIOURS: dict[str, Misbehaviour] = {m.name: m for m in _TABLE}
