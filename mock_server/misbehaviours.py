"""Ways the mock server can play a *faulty* server under test.

Each misbehaviour breaks exactly one server-party rule of
``facecert/core/rules/registry.py``, so a client-side harness (or the engine in
this server) can be shown to catch it. The table is data: the admin API,
the docs and the tests enumerate it. Names are hyphenated like the device's
fault knobs; :func:`misbehaviour_name` reads the old underscore spellings too.
"""

from __future__ import annotations

from dataclasses import dataclass

from facecert.core.knobs import knob_name


@dataclass(frozen=True)
class Misbehaviour:
    name: str
    rule: str
    description: str


_TABLE = [
    Misbehaviour(
        "duplicate-request-id", "REQUEST-ID-DUPLICATE", "every task after the first reuses the previous request_id"
    ),
    Misbehaviour(
        "capture-no-echo", "ACK-ECHO", "capture answers carry a snap_time and frpic_name other than the capture's"
    ),
    Misbehaviour("capture-code-nonzero", "ACK-CODE", "valid captures are answered with code 1"),
    Misbehaviour("idle-without-time-stamp", "MSG-REQUIRED", "idleTime answers lack time_stamp"),
    Misbehaviour("idle-empty-body", "MSG-EMPTY-BODY", "an empty 200 instead of idleTime when nothing is queued"),
    Misbehaviour("task-not-json", "MSG-NOT-JSON", "taskRequest answers are not JSON"),
    Misbehaviour("unknown-task", "TASK-UNKNOWN", "idleTime answers name a request_type the document does not define"),
    Misbehaviour(
        "accept-foreign-result",
        "RESULT-FOREIGN-ACCEPTED",
        "a taskResult for a task given to another device is accepted (code 0)",
    ),
    Misbehaviour("capture-5xx", "ANSWER-HTTP-STATUS", "captures are answered with HTTP 500"),
    Misbehaviour(
        "oversized-user-info",
        "USERINFO-SIZE",
        "addUser/updateUser user_info is padded beyond its serialised size limit",
    ),
    Misbehaviour("no-answer", "ANSWER-MISSING", "taskRequest connections are closed without an answer"),
    Misbehaviour(
        "require-vendor-field",
        "ANSWER-HTTP-STATUS",
        "taskRequests without the vendor extras of the catalogue (device_ip, sign_tby) are answered "
        "HTTP 500, as one field server does",
    ),
    Misbehaviour(
        "resend-failed-task",
        "TASK-RESENT",
        "a task whose result had code != 0 is queued again with a new request_id, forever",
    ),
    Misbehaviour(
        "accept-path-frpic",
        "FRPIC-PATH-ACCEPTED",
        "captures whose frpic_name is a path are acknowledged with code 0 instead of refused (stored in "
        "the database like any capture: no file is written)",
    ),
    Misbehaviour(
        "ignore-queued-tasks",
        "TASK-NOT-SENT",
        "the control API accepts queued tasks, but every poll is answered idleTime",
    ),
]

MISBEHAVIOURS: dict[str, Misbehaviour] = {m.name: m for m in _TABLE}


def misbehaviour_name(name: str) -> str:
    """The table's name for ``name`` (old underscore spellings accepted), or ValueError
    naming the known ones."""
    canonical = knob_name(name)
    if canonical not in MISBEHAVIOURS:
        raise ValueError(f"unknown misbehaviour {str(name)[:40]!r}; one of {', '.join(MISBEHAVIOURS)}")
    return canonical
