"""Hostile values on a real server: lone surrogates, integers beyond 64 bits,
1e400, nonsense parameters, a decompression-bomb JPEG. Never a 5xx, always
stored, strict JSON out, and the server answers normally afterwards."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
import pytest

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.mock_server import MockServer
from tests.server.helpers import (
    capture_body,
    jpeg_claiming,
    poll_body,
    report_body,
    result_body,
    strict_json,
    with_capture_image,
)

ENDPOINTS = list(get_contract().all_endpoints)
READS = [
    "/_admin/devices",
    "/_admin/overview",
    "/_admin/exchanges",
    "/_admin/results",
    "/_admin/captures",
    "/_admin/findings",
    "/_admin/tasks",
    "/_admin/alarms",
    "/_admin/gps",
    "/_admin/export.har",
]


def body_for(endpoint: str, device_id: str) -> dict[str, Any]:
    if endpoint == "taskRequest":
        return poll_body(device_id)
    if endpoint == "taskResult":
        return result_body(device_id, {"request_type": "getDevStatus", "request_id": 1})
    if endpoint == "faceRecognition":
        return capture_body(device_id)
    return report_body(endpoint, device_id)


def with_raw(body: dict[str, Any], name: str, token: str) -> bytes:
    """The body as JSON text with one member's value replaced by a raw token (JSON cannot build these)."""
    marker = "\u2603MARK\u2603"
    return (
        json.dumps({**body, name: marker}, ensure_ascii=False)
        .replace(json.dumps(marker, ensure_ascii=False), token)
        .encode("utf-8")
    )


def stored_bodies(server: MockServer) -> list[bytes]:
    return [row[0] for row in sqlite3.connect(server.config.db).execute("SELECT request_body FROM exchanges")]


def assert_reads_are_strict(client: httpx.Client) -> None:
    for path in READS:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        strict_json(answer.content)
    assert client.get("/").status_code == 200


def assert_no_5xx(answer: httpx.Response) -> None:
    assert answer.status_code < 500, answer.text[:300]
    strict_json(answer.content)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("field", ["device_id", "time_stamp"])
def test_lone_surrogate_is_refused_stored_and_harmless(
    server: MockServer, client: httpx.Client, endpoint: str, field: str
) -> None:
    raw = with_raw(body_for(endpoint, "SURROGATE"), field, '"x\\udfffy"')
    answer = client.post(f"/{endpoint}", content=raw)
    assert_no_5xx(answer)
    assert 400 <= answer.status_code < 500 or answer.json().get("findings") or server.findings()
    assert raw in stored_bodies(server)
    assert server.findings(), "a lone surrogate is a finding"
    assert_reads_are_strict(client)
    assert client.post("/taskRequest", json=poll_body("AFTER")).status_code == 200


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("token", ["1180591620717411303424", "-99999999999999999999999", "1e400", "-1e400"])
def test_huge_numbers_everywhere_are_stored_and_readable(
    server: MockServer, client: httpx.Client, endpoint: str, token: str
) -> None:
    body = body_for(endpoint, "HUGE")
    numbers = [k for k, v in body.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for name in numbers:
        raw = with_raw(body, name, token)
        assert_no_5xx(client.post(f"/{endpoint}", content=raw))
        assert raw in stored_bodies(server)
    assert_reads_are_strict(client)


def test_result_code_and_snap_time_beyond_64_bits_reach_sqlite_as_text(
    server: MockServer, client: httpx.Client
) -> None:
    rid = server.enqueue("BIG", example_for("server/tasks/getDevStatus"))
    task = client.post("/taskRequest", json=poll_body("BIG")).json()
    assert task["request_id"] == rid
    assert_no_5xx(client.post("/taskResult", content=with_raw(result_body("BIG", task), "code", str(2**70))))
    assert_no_5xx(client.post("/faceRecognition", content=with_raw(capture_body("BIG"), "snap_time", str(2**64))))
    db = sqlite3.connect(server.config.db)
    assert db.execute("SELECT code, typeof(code) FROM results").fetchone() == (str(2**70), "text")
    assert db.execute("SELECT snap_time FROM captures").fetchone() in ((None,), (str(2**64),))
    assert client.get("/_admin/results").json()[0]["code"] == str(2**70)
    assert_reads_are_strict(client)


def test_infinity_never_reaches_an_answer_or_a_read(server: MockServer, client: httpx.Client) -> None:
    answer = client.post("/gpsReport", content=with_raw(report_body("gpsReport", "INF"), "latitude", "1e400"))
    assert answer.status_code == 400
    findings = strict_json(answer.content)["findings"]  # strict: a bare Infinity token would raise
    assert all(not isinstance(f["actual"], float) for f in findings)
    assert_reads_are_strict(client)


def test_gps_1e400_does_not_break_the_next_valid_report(server: MockServer, client: httpx.Client) -> None:
    bad = with_raw(report_body("gpsReport", "GPS"), "latitude", "1e400")
    assert client.post("/gpsReport", content=bad).status_code == 400
    good = client.post("/gpsReport", json=report_body("gpsReport", "GPS"))
    assert good.status_code == 200 and good.json()["code"] == 0
    later = report_body("gpsReport", "GPS")
    later["latitude"] += 0.01
    assert client.post("/gpsReport", json=later).status_code == 200


@pytest.mark.parametrize(
    "query", ["limit=1e20", "limit=99999999999999999999", "limit=-5", "limit=0", "limit=abc", "limit=\u0661\u0662"]
)
@pytest.mark.parametrize("path", ["/_admin/exchanges", "/_admin/findings", "/_admin/captures", "/_admin/downloads"])
def test_nonsense_query_parameters_are_422(client: httpx.Client, path: str, query: str) -> None:
    answer = client.get(f"{path}?{query}")
    assert answer.status_code == 422 and strict_json(answer.content)["error"]


@pytest.mark.parametrize("capture_id", ["1e30", "99999999999999999999", "-1", "0", "abc", "9223372036854775808"])
def test_nonsense_capture_ids_are_404(client: httpx.Client, capture_id: str) -> None:
    answer = client.get(f"/_admin/captures/{capture_id}/image")
    assert answer.status_code == 404 and strict_json(answer.content)["error"]


@pytest.mark.parametrize("duration", ["1e400", "-1e400", "1e300", "0", "-1", "true", '"10"', "NaN", "Infinity"])
def test_fault_with_absurd_duration_is_refused_and_not_installed(
    server: MockServer, client: httpx.Client, duration: str
) -> None:
    raw = f'{{"kind": "outage", "mode": "503", "duration": {duration}}}'.encode()
    answer = client.post("/_admin/faults", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert client.get("/_admin/faults").json()["active"] == []
    assert client.post("/taskRequest", json=poll_body("NOFAULT")).status_code == 200


def test_python_api_refuses_infinite_duration_too(server: MockServer) -> None:
    with pytest.raises(ValueError):
        server.set_fault("outage", mode="503", duration=float("inf"))
    with pytest.raises(ValueError):
        server.set_fault("slow", delay=float("nan"))
    assert server.platform.faults == []


def test_decompression_bomb_jpeg_is_a_finding_and_its_thumbnail_a_clean_422(
    server: MockServer, client: httpx.Client
) -> None:
    body = with_capture_image(capture_body("BOMB"), jpeg_claiming(65500, 65500))
    answer = client.post("/faceRecognition", json=body)
    assert_no_5xx(answer)
    rules = {f["rule"] for f in server.findings("BOMB")}
    assert "IMG-FORMAT" in rules, rules
    capture = server.captures("BOMB")[-1]
    for _ in range(3):  # the live page asks on every refresh
        thumb = client.get(f"/_admin/captures/{capture['id']}/image", params={"size": 96})
        assert thumb.status_code == 422 and "pixels" in strict_json(thumb.content)["error"]
    assert_reads_are_strict(client)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's notice; the image is refused
def test_an_image_beyond_the_decode_bound_gets_no_thumbnail_but_a_clean_422(
    server: MockServer, client: httpx.Client
) -> None:
    body = with_capture_image(capture_body("WIDE"), jpeg_claiming(12000, 9000))  # Pillow warns, we refuse
    client.post("/faceRecognition", json=body)
    capture = server.captures("WIDE")[-1]
    thumb = client.get(f"/_admin/captures/{capture['id']}/image", params={"size": 96})
    assert thumb.status_code == 422
    good = client.post("/faceRecognition", json=capture_body("WIDE", 2))
    assert good.status_code == 200
    fine = client.get(f"/_admin/captures/{server.captures('WIDE')[-1]['id']}/image", params={"size": 96})
    assert fine.status_code == 200 and fine.content[:3] == b"\xff\xd8\xff"
