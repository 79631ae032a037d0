"""Which of the harness device's polls can carry a task queued at a trigger: those answered after it. A poll
already on its way when the platform queued the task carries it if the server decided it after (seen on a
busy machine, 2026-12-03: the faceCmd came on a poll sent 10 ms before its trigger; counted by send time,
the scenario said TASK-NOT-SENT of a server that had sent it)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from facecert.certify.operator import Operator
from facecert.certify.server_session import ServerRunConfig, ServerSession
from facecert.core.model import Exchange
from facecert.steps.server_steps import _poll_answers

TRIGGER = 100.0


def poll(started: float, ended: float | None, answer: dict | None) -> Exchange:
    body = None if answer is None else json.dumps(answer).encode()
    return Exchange("POST", "/taskRequest", b"{}", 200 if answer else None, body, started=started, ended=ended)


def session(tmp_path: Path, exchanges: list[Exchange]) -> ServerSession:
    cert = ServerSession(ServerRunConfig(url="http://127.0.0.1:9", report=tmp_path), Operator())
    cert.device = SimpleNamespace(exchanges=exchanges)
    return cert


def test_a_poll_in_flight_at_the_trigger_carries_its_task(tmp_path: Path) -> None:
    before = poll(98.0, 98.01, {"request_type": "idleTime"})
    in_flight = poll(TRIGGER - 0.01, TRIGGER + 0.2, {"request_type": "faceCmd", "request_id": 12})
    after = poll(TRIGGER + 1, TRIGGER + 1.01, {"request_type": "idleTime"})
    cert = session(tmp_path, [before, in_flight, after])
    try:
        assert cert.answered_polls(TRIGGER) == [in_flight, after]
        assert _poll_answers(cert, TRIGGER, "faceCmd") == [{"request_type": "faceCmd", "request_id": 12}]
        assert "2 polls since the trigger" in cert.explain_polls(TRIGGER, "faceCmd")[1]
    finally:
        cert.client.close()


def test_a_poll_answered_before_the_trigger_does_not_count(tmp_path: Path) -> None:
    """The same task answered before the trigger (an earlier scenario's) is not this trigger's."""
    earlier = poll(TRIGGER - 1, TRIGGER - 0.5, {"request_type": "faceCmd", "request_id": 3})
    unanswered = poll(TRIGGER + 0.5, None, None)  # no answer: counted from when it was sent
    cert = session(tmp_path, [earlier, unanswered])
    try:
        assert cert.answered_polls(TRIGGER) == [unanswered]
        assert _poll_answers(cert, TRIGGER, "faceCmd") == []
    finally:
        cert.client.close()
