"""Ways the mock server can play a *faulty* server under test.

Each misbehaviour breaks exactly one server-party rule of
``facecert/core/rules/registry.py``, so a client-side harness (or the engine in
this server) can be shown to catch it. The table is data: the admin API,
the docs and the tests enumerate it.

``scenario`` names what the conversation must contain for the misbehaviour to
show, as a device fault knob's does: ``poll`` (any polling), ``task`` (tasks
queued by the platform and their results), ``queued-task`` (any one task queued
for a device, its result aside), ``capture`` (captures, alarms and GPS reports)
and ``hostile`` (a device that sends what a server must refuse: another
device's result, a capture named by a path). The mutation matrix runs
only the server plan's flows that contain it (facecert/certify/matrix.py). Names are hyphenated like the device's
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
    scenario: str


_TABLE = [
    Misbehaviour(
        "duplicate-request-id",
        "REQUEST-ID-DUPLICATE",
        "every task after the first reuses the previous request_id",
        scenario="task",
    ),
    Misbehaviour(
        "capture-no-echo",
        "ACK-ECHO",
        "capture answers carry a snap_time and frpic_name other than the capture's",
        scenario="capture",
    ),
    Misbehaviour("capture-code-nonzero", "ACK-CODE", "valid captures are answered with code 1", scenario="capture"),
    Misbehaviour("idle-without-time-stamp", "MSG-REQUIRED", "idleTime answers lack time_stamp", scenario="poll"),
    Misbehaviour(
        "idle-empty-body",
        "MSG-EMPTY-BODY",
        "an empty 200 instead of idleTime when nothing is queued",
        scenario="poll",
    ),
    Misbehaviour("task-not-json", "MSG-NOT-JSON", "taskRequest answers are not JSON", scenario="poll"),
    Misbehaviour(
        "unknown-task",
        "TASK-UNKNOWN",
        "idleTime answers name a request_type the document does not define",
        scenario="poll",
    ),
    Misbehaviour(
        "accept-foreign-result",
        "RESULT-FOREIGN-ACCEPTED",
        "a taskResult for a task given to another device is accepted (code 0)",
        scenario="hostile",
    ),
    Misbehaviour("capture-5xx", "ANSWER-HTTP-STATUS", "captures are answered with HTTP 500", scenario="capture"),
    Misbehaviour(
        "oversized-user-info",
        "USERINFO-SIZE",
        "addUser/updateUser user_info is padded beyond its serialised size limit",
        scenario="task",
    ),
    Misbehaviour(
        "no-answer", "ANSWER-MISSING", "taskRequest connections are closed without an answer", scenario="poll"
    ),
    Misbehaviour(
        "require-vendor-field",
        "ANSWER-HTTP-STATUS",
        "taskRequests without the vendor extras of the catalogue (device_ip, sign_tby) are answered "
        "HTTP 500, as one field server does",
        scenario="poll",
    ),
    Misbehaviour(
        "resend-failed-task",
        "TASK-RESENT",
        "a task whose result had code != 0 is queued again with a new request_id, forever",
        scenario="task",
    ),
    Misbehaviour(
        "accept-path-frpic",
        "FRPIC-PATH-ACCEPTED",
        "captures whose frpic_name is a path are acknowledged with code 0 instead of refused (stored in "
        "the database like any capture: no file is written)",
        scenario="hostile",
    ),
    Misbehaviour(
        "ignore-queued-tasks",
        "TASK-NOT-SENT",
        "the control API accepts queued tasks, but every poll is answered idleTime",
        scenario="queued-task",
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
