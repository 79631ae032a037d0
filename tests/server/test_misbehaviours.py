"""The server as a *faulty* server under test: each misbehaviour makes the
engine report exactly its rule against the server, and the same traffic to a
well-behaved server reports nothing against it. A misbehaviour whose rule only
a certification step can check (origin "plan") is shown doing what it says
here and proven through the plan in tests/suites/test_plan_rules.py."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from facecert.core.defaults import TOLERANCE_MAX
from facecert.core.examples import example_for
from facecert.core.model import Severity
from facecert.core.rules.registry import RULES
from facecert.mock_server import MockServer, ServerConfig
from facecert.mock_server.misbehaviours import MISBEHAVIOURS
from tests.server.helpers import capture_body, errors, local_downloads, poll_body, result_body
from tests.support import SCALE


def poll(srv: MockServer, device: str) -> httpx.Response | None:
    try:
        return httpx.post(srv.url + "/taskRequest", json=poll_body(device))
    except httpx.RemoteProtocolError:
        return None  # no answer (no_answer)


def two_devices_get_tasks(srv: MockServer) -> None:
    srv.enqueue("D1", example_for("server/tasks/getDevStatus"))
    srv.enqueue("D2", example_for("server/tasks/deleteUser"))
    poll(srv, "D1")
    poll(srv, "D2")


def capture(srv: MockServer) -> None:
    httpx.post(srv.url + "/faceRecognition", json=capture_body("CAM"))


def add_user(srv: MockServer) -> None:
    task = example_for("server/tasks/addUser")
    local_downloads(task, srv.asset_url)
    srv.enqueue("USERS", task)
    poll(srv, "USERS")


def failing_task(srv: MockServer) -> None:
    """A device that cannot do its deleteUser (code -102), polling on at the protocol's pace for four results."""
    srv.enqueue("FAIL", example_for("server/tasks/deleteUser"))
    for _ in range(4):
        task = poll(srv, "FAIL").json()
        if "request_id" not in task:
            return
        # the next poll is due a task interval after the result is sent: kept by the clock, not counted from
        # when the post returns, so a slow answer on a loaded machine does not make this device late
        due = time.monotonic() + srv.platform.engine.timing["task_interval_s"] * SCALE
        httpx.post(srv.url + "/taskResult", json=result_body("FAIL", task, code=-102))
        time.sleep(max(0.0, due - time.monotonic()))


def path_capture(srv: MockServer) -> None:
    httpx.post(srv.url + "/faceRecognition", json={**capture_body("CAM"), "frpic_name": "../../x.php"})


def foreign_result(srv: MockServer) -> None:
    srv.enqueue("OWNER", example_for("server/tasks/getDevStatus"))
    task = poll(srv, "OWNER").json()
    httpx.post(srv.url + "/taskResult", json=result_body("THIEF", task))


SCENARIOS: dict[str, Callable[[MockServer], None]] = {
    "duplicate-request-id": two_devices_get_tasks,
    "capture-no-echo": capture,
    "capture-code-nonzero": capture,
    "idle-without-time-stamp": lambda srv: poll(srv, "IDLE"),
    "idle-empty-body": lambda srv: poll(srv, "IDLE"),
    "task-not-json": lambda srv: poll(srv, "IDLE"),
    "unknown-task": lambda srv: poll(srv, "IDLE"),
    "accept-foreign-result": foreign_result,
    "capture-5xx": capture,
    "oversized-user-info": add_user,
    "no-answer": lambda srv: poll(srv, "IDLE"),
    "require-vendor-field": lambda srv: poll(srv, "IDLE"),
    "resend-failed-task": failing_task,
    "accept-path-frpic": path_capture,
}
# The clients in foreign_result and path_capture misbehave on purpose (that is what the server must refuse).
EXPECTED_DEVICE_ERRORS = {"accept-foreign-result": {"RESULT-UNKNOWN-ID"}, "accept-path-frpic": {"MSG-FORMAT"}}
ENGINE_FOUND = [name for name, m in MISBEHAVIOURS.items() if RULES[m.rule].origin == "engine"]


def test_every_server_rule_has_a_misbehaviour() -> None:
    server_rules = {rule.id for rule in RULES.values() if rule.party == "server"}
    assert server_rules <= {m.rule for m in MISBEHAVIOURS.values()}
    assert all(m.rule in RULES for m in MISBEHAVIOURS.values())
    assert set(SCENARIOS) == set(ENGINE_FOUND)


@pytest.mark.parametrize("on", [True, False], ids=["misbehaving", "correct"])
@pytest.mark.parametrize("name", ENGINE_FOUND)
def test_misbehaviour_breaks_exactly_its_rule(name: str, on: bool) -> None:
    # The clients here are this test, judged only for what each scenario has them do wrong on purpose: the
    # widest cadence window (a gap up to twice the interval) keeps a test process the machine starved from
    # breaking CADENCE-TASK while it polls four times in resend-failed-task (0.419 s for 0.393 in a CI run)
    with MockServer(ServerConfig(time_scale=SCALE, tolerance=TOLERANCE_MAX)) as srv:
        srv.set_misbehaviour(name, on)
        SCENARIOS[name](srv)
        found = srv.findings()
        rule = RULES[MISBEHAVIOURS[name].rule]
        assert errors(found, "server") == ({rule.id} if on and rule.severity is Severity.ERROR else set()), found
        assert errors(found, "device") == EXPECTED_DEVICE_ERRORS.get(name, set()), found
        if rule.severity is not Severity.ERROR:  # a warning: reported when misbehaving, never when correct
            assert (rule.id in {f["rule"] for f in found if f["party"] == "server"}) == on, found


def test_a_poll_with_the_vendor_extras_is_answered_by_the_server_that_needs_them() -> None:
    with MockServer(ServerConfig(time_scale=SCALE)) as srv:
        srv.set_misbehaviour("require_vendor_field")
        extras = {"device_ip": "192.168.1.9", "sign_tby": "0" * 32}
        assert set(extras) == set(srv.platform.contract.vendor_extras["taskRequest"])
        assert httpx.post(srv.url + "/taskRequest", json={**poll_body("FIELD"), **extras}).status_code == 200
        assert httpx.post(srv.url + "/taskRequest", json=poll_body("SPEC")).status_code == 500
        assert errors(srv.findings("FIELD")) == set() and errors(srv.findings("SPEC")) == {"ANSWER-HTTP-STATUS"}


def test_a_failed_task_is_resent_on_every_poll_under_new_request_ids() -> None:
    with MockServer(ServerConfig(time_scale=SCALE)) as srv:
        srv.set_misbehaviour("resend_failed_task")
        failing_task(srv)
        sent = [t for t in srv.tasks("FAIL") if t["state"] != "queued"]
        assert len(sent) == 4 and len({t["request_id"] for t in sent}) == 4
        assert {t["request_type"] for t in sent} == {"deleteUser"} and srv.queue("FAIL")


def test_a_path_frpic_name_is_refused_and_never_names_a_file(tmp_path) -> None:
    """The correct server refuses it (4xx, never 5xx); misbehaving, it only stores the row."""
    with MockServer(ServerConfig(time_scale=SCALE, db=tmp_path / "s.db", assets=tmp_path / "assets")) as srv:
        for name in ("../../x.php", "/etc/passwd", "..", "..\u2215..", "a\u0000b"):
            answer = httpx.post(srv.url + "/faceRecognition", json={**capture_body("CAM"), "frpic_name": name})
            assert 400 <= answer.status_code < 500, (name, answer.status_code)
        srv.set_misbehaviour("accept_path_frpic")
        answer = httpx.post(srv.url + "/faceRecognition", json={**capture_body("CAM"), "frpic_name": "../../x.php"})
        assert answer.status_code == 200 and answer.json()["code"] == 0
    written = {p.name for p in tmp_path.rglob("*")}
    assert "x.php" not in written and "passwd" not in written, written


@pytest.mark.parametrize("on", [True, False], ids=["misbehaving", "correct"])
def test_ignore_queued_tasks_accepts_and_never_sends(on: bool) -> None:
    with MockServer(ServerConfig(time_scale=SCALE)) as srv:
        srv.set_misbehaviour("ignore_queued_tasks", on)
        rid = srv.enqueue("QUEUE", example_for("server/tasks/getDevStatus"))
        answers = [poll(srv, "QUEUE").json()["request_type"] for _ in range(2)]
        idle = srv.platform.contract.idle_task
        assert answers == ([idle, idle] if on else ["getDevStatus", idle]), answers
        assert rid is not None and errors(srv.findings(), "server") == set()


def test_misbehaviours_over_http(server: MockServer, client: httpx.Client) -> None:
    listed = client.get("/_admin/misbehaviours").json()
    assert {m["name"] for m in listed} == set(MISBEHAVIOURS) and not any(m["on"] for m in listed)
    switched = client.put("/_admin/misbehaviours/capture_5xx", json={"on": True})
    assert switched.json() == {"name": "capture-5xx", "on": True}  # the old underscore spelling is read
    assert client.post("/faceRecognition", json=capture_body("X")).status_code == 500
    assert client.put("/_admin/misbehaviours/capture_5xx", json={"on": False}).status_code == 200
    assert client.post("/faceRecognition", json=capture_body("X")).status_code == 200
    assert client.put("/_admin/misbehaviours/nope", json={"on": True}).status_code == 404
    assert client.put("/_admin/misbehaviours/capture_5xx", json={"on": "yes"}).status_code == 422
