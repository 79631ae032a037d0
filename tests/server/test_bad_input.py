"""Bad input never crashes the server: 4xx with a JSON error body, a finding,
the raw bytes stored, and the next request is served."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.mock_server import MockServer, ServerConfig
from tests.server.helpers import capture_body, poll_body
from tests.support import SCALE

DEEP = b"[" * 100_000 + b"]" * 100_000
BAD = {
    "not-json": (b"{device_id: 1", "MSG-NOT-JSON"),
    "truncated": (json.dumps(capture_body("T"))[:200].encode(), "MSG-NOT-JSON"),
    "non-utf8": (b'{"device_id": "\xff\xfe"}', "MSG-NOT-JSON"),
    "deep-nesting": (DEEP, "MSG-TOO-DEEP"),
    "not-an-object": (b"[1, 2, 3]", "MSG-NOT-OBJECT"),
    "empty": (b"", "MSG-EMPTY-BODY"),
    "wrong-types": (json.dumps({**capture_body("T"), "snap_time": "yesterday"}).encode(), "MSG-TYPE"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_capture_is_refused_clearly(server: MockServer, client: httpx.Client, case: str) -> None:
    raw, rule = BAD[case]
    answer = client.post("/faceRecognition", content=raw, headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500
    body = answer.json()
    assert body["code"] != 0 and body["log"] and rule in {f["rule"] for f in body["findings"]}
    stored = sqlite3.connect(server.config.db).execute("SELECT request_body FROM exchanges").fetchall()
    assert stored == [(raw,)]
    assert rule in {f["rule"] for f in server.findings()}
    assert not [f for f in server.findings(party="server")], "a 4xx to a faulty request is correct"
    assert client.post("/taskRequest", json=poll_body("AFTER")).status_code == 200


def test_schema_errors_in_a_poll_still_get_the_queue(server: MockServer, client: httpx.Client) -> None:
    rid = server.enqueue("SLOPPY", example_for("server/tasks/getDevStatus"))
    body = {**poll_body("SLOPPY"), "time_stamp": "now"}
    del body["device_mac"]
    answer = client.post("/taskRequest", json=body)
    assert answer.status_code == 200 and answer.json()["request_id"] == rid
    assert {"MSG-TYPE", "MSG-REQUIRED"} <= {f["rule"] for f in server.findings("SLOPPY")}


def test_wrong_content_type_is_judged_by_the_body(server: MockServer, client: httpx.Client) -> None:
    answer = client.post("/taskRequest", content=json.dumps(poll_body("CT")), headers={"content-type": "text/plain"})
    assert answer.status_code == 200 and answer.json()["request_type"] == "idleTime"


def test_get_on_a_device_endpoint_is_a_finding_not_a_crash(server: MockServer, client: httpx.Client) -> None:
    answer = client.get("/taskRequest")
    assert answer.status_code == 400 and "HTTP-METHOD" in {f["rule"] for f in answer.json()["findings"]}


def test_oversized_body_gets_413_and_the_server_keeps_serving(tmp_path) -> None:
    limit = 64 * 1024
    with MockServer(ServerConfig(time_scale=SCALE, max_body=limit, db=tmp_path / "s.db")) as srv:
        big = b'{"device_id": "' + b"x" * (limit * 2) + b'"}'
        answer = httpx.post(srv.url + "/faceRecognition", content=big)
        assert answer.status_code == 413 and "MSG-TOO-LARGE" in {f["rule"] for f in answer.json()["findings"]}
        kept = sqlite3.connect(srv.config.db).execute("SELECT length(request_body) FROM exchanges").fetchone()[0]
        assert limit < kept <= limit + 128 * 1024
        assert httpx.post(srv.url + "/taskRequest", json=poll_body("OK")).status_code == 200


def test_default_limit_is_20_mib(server: MockServer) -> None:
    assert server.config.max_body == 20 * 1024 * 1024


def test_twenty_mib_body_is_refused(server: MockServer, client: httpx.Client) -> None:
    answer = client.post("/faceRecognition", content=b"{" + b" " * (20 * 1024 * 1024 + 10) + b"}")
    assert answer.status_code == 413
    assert client.post("/taskRequest", json=poll_body("OK")).status_code == 200


def test_unknown_path_is_a_json_404(client: httpx.Client) -> None:
    answer = client.post("/nothingHere", content=b"x")
    assert answer.status_code == 404 and answer.json()["code"] == 404


def test_deep_but_parseable_object_is_judged_not_crashed(server: MockServer, client: httpx.Client) -> None:
    deep: dict = {}
    node = deep
    for _ in range(900):
        node["x"] = {}
        node = node["x"]
    answer = client.post("/gpsReport", json={**poll_body("DEEP"), "extra": deep})
    assert answer.status_code == 400 and "MSG-TOO-DEEP" in {f["rule"] for f in answer.json()["findings"]}
    refused = client.post(
        "/_admin/devices/DEEP/tasks", json={"task": {**example_for("server/tasks/getDevStatus"), "extra": deep}}
    )
    assert refused.status_code == 422
    assert client.post("/taskRequest", json=poll_body("DEEP")).status_code == 200


JSON = {"content-type": "application/json"}


def test_admin_bad_bodies_are_422_not_500(client: httpx.Client) -> None:
    for raw in (
        b"[" * 100_000,
        b"\xff\xfe",
        b'{"task": ',
        b"[]",
        b'"text"',
        b'{"task": NaN}',
        b'{"task": 1e400}',
        b'{"task": "\\udfff"}',
    ):
        answer = client.post("/_admin/devices/X/tasks", content=raw, headers=JSON)
        assert answer.status_code == 422 and answer.json()["error"], raw[:10]
    assert client.post("/_admin/faults", content=b"{{", headers=JSON).status_code == 422
    assert client.put("/_admin/misbehaviours/no_answer", content=b"nope", headers=JSON).status_code == 422
