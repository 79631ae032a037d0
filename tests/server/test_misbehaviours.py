"""The server as a *faulty* server under test: each misbehaviour makes the
engine report exactly its rule against the server, and the same traffic to a
well-behaved server reports nothing against it."""

from __future__ import annotations

from typing import Callable

import httpx
import pytest

from facecert.examples import example_for
from facecert.rules.registry import RULES

from mock_server import MockServer, ServerConfig
from mock_server.misbehaviours import MISBEHAVIOURS
from tests.server.helpers import SCALE, capture_body, errors, local_downloads, poll_body, result_body


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


def foreign_result(srv: MockServer) -> None:
    srv.enqueue("OWNER", example_for("server/tasks/getDevStatus"))
    task = poll(srv, "OWNER").json()
    httpx.post(srv.url + "/taskResult", json=result_body("THIEF", task))


SCENARIOS: dict[str, Callable[[MockServer], None]] = {
    "duplicate_request_id": two_devices_get_tasks,
    "capture_no_echo": capture,
    "capture_code_nonzero": capture,
    "idle_without_time_stamp": lambda srv: poll(srv, "IDLE"),
    "idle_empty_body": lambda srv: poll(srv, "IDLE"),
    "task_not_json": lambda srv: poll(srv, "IDLE"),
    "unknown_task": lambda srv: poll(srv, "IDLE"),
    "accept_foreign_result": foreign_result,
    "capture_5xx": capture,
    "oversized_user_info": add_user,
    "no_answer": lambda srv: poll(srv, "IDLE"),
}
# The client in foreign_result misbehaves on purpose (that is what the server must refuse).
EXPECTED_DEVICE_ERRORS = {"accept_foreign_result": {"RESULT-UNKNOWN-ID"}}


def test_every_server_rule_has_a_misbehaviour() -> None:
    server_rules = {rule.id for rule in RULES.values() if rule.party == "server"}
    assert server_rules <= {m.rule for m in MISBEHAVIOURS.values()}
    assert all(m.rule in RULES for m in MISBEHAVIOURS.values())
    assert set(SCENARIOS) == set(MISBEHAVIOURS)


@pytest.mark.parametrize("on", [True, False], ids=["misbehaving", "correct"])
@pytest.mark.parametrize("name", list(MISBEHAVIOURS))
def test_misbehaviour_breaks_exactly_its_rule(name: str, on: bool) -> None:
    with MockServer(ServerConfig(time_scale=SCALE)) as srv:
        srv.set_misbehaviour(name, on)
        SCENARIOS[name](srv)
        found = srv.findings()
        assert errors(found, "server") == ({MISBEHAVIOURS[name].rule} if on else set()), found
        assert errors(found, "device") == EXPECTED_DEVICE_ERRORS.get(name, set()), found


def test_misbehaviours_over_http(server: MockServer, client: httpx.Client) -> None:
    listed = client.get("/_admin/misbehaviours").json()
    assert {m["name"] for m in listed} == set(MISBEHAVIOURS) and not any(m["on"] for m in listed)
    switched = client.put("/_admin/misbehaviours/capture_5xx", json={"on": True})
    assert switched.json() == {"name": "capture_5xx", "on": True}
    assert client.post("/faceRecognition", json=capture_body("X")).status_code == 500
    assert client.put("/_admin/misbehaviours/capture_5xx", json={"on": False}).status_code == 200
    assert client.post("/faceRecognition", json=capture_body("X")).status_code == 200
    assert client.put("/_admin/misbehaviours/nope", json={"on": True}).status_code == 404
    assert client.put("/_admin/misbehaviours/capture_5xx", json={"on": "yes"}).status_code == 422
