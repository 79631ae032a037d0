"""Uploads, idleTime, the prefix, and the waiting helpers."""

from __future__ import annotations

import threading
import time

import httpx

from facecert.core.contract import get_contract
from facecert.mock_server import MockServer, ServerConfig
from tests.server.helpers import capture_body, errors, poll_body, report_body
from tests.support import SCALE


def test_idle_answer_carries_server_time(server: MockServer, client: httpx.Client) -> None:
    before = int(time.time())
    answer = client.post("/taskRequest", json=poll_body("IDLE")).json()
    assert answer["request_type"] == "idleTime" and before <= answer["time_stamp"] <= time.time() + 1
    device = server.devices()[0]
    assert device["device_id"] == "IDLE" and device["polls"] == 1 and device["versions"]["software_version"]
    assert errors(server.findings()) == set()


def test_capture_answer_echoes_and_is_stored_with_thumbnail(server: MockServer, client: httpx.Client) -> None:
    body = capture_body("CAM", 7)
    answer = client.post("/faceRecognition", json=body).json()
    assert answer["code"] == 0
    assert (answer["snap_time"], answer["frpic_name"]) == (body["snap_time"], body["frpic_name"])
    capture = server.wait_for_capture("CAM", timeout=1)
    assert capture["frpic_name"] == body["frpic_name"] and capture["has_image"]
    image = client.get(f"/_admin/captures/{capture['id']}/image", params={"size": 32})
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
    assert client.get(f"/_admin/captures/{capture['id']}/image").content[:3] == b"\xff\xd8\xff"
    assert client.get("/_admin/captures/999/image").status_code == 404
    assert client.get("/_admin/captures/abc/image").status_code == 404
    assert errors(server.findings()) == set()


def test_alarm_and_gps_are_acknowledged_and_stored(server: MockServer, client: httpx.Client) -> None:
    for endpoint in ("deviceAlarm", "gpsReport"):
        answer = client.post(get_contract().all_endpoints[endpoint].path, json=report_body(endpoint, "CAR"))
        assert answer.status_code == 200 and answer.json()["code"] == 0 and answer.json()["log"]
    assert len(server.alarms()) == 1 and len(server.gps()) == 1
    assert client.get("/_admin/alarms").json()[0]["body"]["alarm_type"] is not None
    assert len(client.get("/_admin/gps", params={"device_id": "CAR"}).json()) == 1
    assert errors(server.findings()) == set()


def test_prefix_serves_only_under_it(tmp_path) -> None:
    with MockServer(ServerConfig(prefix="test/", time_scale=SCALE)) as srv:
        assert srv.url.endswith("/test") and srv.base + "/test" == srv.url
        assert httpx.post(srv.url + "/taskRequest", json=poll_body("P")).json()["request_type"] == "idleTime"
        assert httpx.post(srv.base + "/taskRequest", json=poll_body("P")).status_code == 404
        assert httpx.get(srv.url + "/_admin/devices").json()[0]["device_id"] == "P"
        assert srv.asset_url("face.jpg") == srv.url + "/assets/face.jpg"
        assert httpx.get(srv.asset_url("face.jpg")).status_code == 200


def test_wait_for_poll_wakes_on_the_poll(server: MockServer) -> None:
    start = time.time()
    threading.Timer(0.05, lambda: httpx.post(server.url + "/taskRequest", json=poll_body("LATE"))).start()
    device = server.wait_for_poll("LATE", timeout=5, after=start)
    assert device["polls"] == 1
    try:
        server.wait_for_poll("NEVER", timeout=0.05)
    except TimeoutError as exc:
        assert "NEVER" in str(exc)
    else:
        raise AssertionError("no TimeoutError")


def test_cadence_is_measured(server: MockServer, client: httpx.Client) -> None:
    for _ in range(3):
        client.post("/taskRequest", json=poll_body("RHYTHM"))
    assert server.devices()[0]["cadence_s"] is not None
