"""Fault modes: outage (drop / 503, per device or global, windowed), slow,
5xx, malformed; the queue survives them."""

from __future__ import annotations

import time

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.mock_server import MockServer
from tests.server.helpers import capture_body, errors, poll_body


def test_outage_drop_closes_without_answer_and_keeps_the_task(server: MockServer, client: httpx.Client) -> None:
    rid = server.enqueue("DEV", example_for("server/tasks/getDevStatus"))
    server.set_fault("outage", mode="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/taskRequest", json=poll_body("DEV"))
    assert server.exchanges("DEV")[-1]["status"] is None
    assert "ANSWER-MISSING" in errors(server.findings("DEV"), "server")
    server.clear_faults()
    assert client.post("/taskRequest", json=poll_body("DEV")).json()["request_id"] == rid


def test_outage_503_for_one_device_only(server: MockServer, client: httpx.Client) -> None:
    made = client.post("/_admin/faults", json={"kind": "outage", "mode": "503", "device_id": "DOWN"})
    assert made.status_code == 201 and made.json()["device_id"] == "DOWN"
    assert client.post("/taskRequest", json=poll_body("DOWN")).status_code == 503
    assert client.post("/taskRequest", json=poll_body("UP")).status_code == 200
    assert client.post("/faceRecognition", json=capture_body("DOWN")).status_code == 503
    assert client.get("/_admin/faults").json()["active"][0]["kind"] == "outage"
    client.post("/_admin/faults", json={"kind": "error", "device_id": "OTHER"})
    client.delete("/_admin/faults", params={"device_id": "OTHER"})
    assert [f["device_id"] for f in client.get("/_admin/faults").json()["active"]] == ["DOWN"]
    assert client.delete("/_admin/faults").json() == {"active": []}
    assert client.post("/taskRequest", json=poll_body("DOWN")).status_code == 200


def test_outage_window_ends_by_itself(server: MockServer) -> None:
    server.set_fault("outage", mode="503", duration=60)
    now = time.time()
    assert server.platform.fault_for("ANY", "taskRequest", now) is not None
    assert server.platform.fault_for("ANY", "taskRequest", now + 61) is None


def test_slow_answers(server: MockServer, client: httpx.Client) -> None:
    server.set_fault("slow", delay=0.3, endpoints=["faceRecognition"])
    start = time.perf_counter()
    assert client.post("/faceRecognition", json=capture_body("S")).json()["code"] == 0
    assert time.perf_counter() - start >= 0.3
    start = time.perf_counter()
    client.post("/taskRequest", json=poll_body("S"))
    assert time.perf_counter() - start < 0.3


def test_5xx(server: MockServer, client: httpx.Client) -> None:
    server.set_fault("error", status=502)
    answer = client.post("/gpsReport", json={"device_id": "G"})
    assert answer.status_code == 502 and answer.json()["code"] == 502
    assert "ANSWER-HTTP-STATUS" in errors(server.findings(), "server")


def test_malformed_answers(server: MockServer, client: httpx.Client) -> None:
    server.set_fault("malformed", device_id="M")
    answer = client.post("/taskRequest", json=poll_body("M"))
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    assert "MSG-NOT-JSON" in errors(server.findings("M"), "server")


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "earthquake"},
        {"kind": "slow", "delay": -1},
        {"kind": "error", "status": 404},
        {"kind": "outage", "mode": "boom"},
        {"kind": "slow", "colour": "red"},
        {"kind": "outage", "endpoints": ["nowhere"]},
        {"kind": "outage", "duration": 0},
        {"device_id": "x"},
    ],
)
def test_bad_fault_requests_are_422(client: httpx.Client, bad: dict) -> None:
    answer = client.post("/_admin/faults", json=bad)
    assert answer.status_code == 422 and answer.json()["error"]


def test_outage_refuse_closes_the_port_then_reopens(server: MockServer) -> None:
    server.set_fault("outage", mode="refuse", duration=0.3)
    server.platform.wait_for(lambda: not server.platform.listening, 5, "the port closing")
    with pytest.raises(httpx.ConnectError):
        httpx.post(server.url + "/taskRequest", json=poll_body("R"))
    server.platform.wait_for(lambda: server.platform.listening, 5, "the port reopening")
    server.clear_faults()
    assert httpx.post(server.url + "/taskRequest", json=poll_body("R")).status_code == 200


def test_outage_refuse_needs_a_duration_and_no_device(server: MockServer) -> None:
    from facecert.mock_server.faults import FaultError

    for params in ({"mode": "refuse"}, {"mode": "refuse", "duration": 1, "device_id": "X"}):
        with pytest.raises(FaultError):
            server.set_fault("outage", **params)
