"""The control API: every call, the token, the OpenAPI document, HAR export."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from facecert.core import redact
from facecert.core.engine import EngineConfig
from facecert.core.examples import example_for
from facecert.mock_server import MockServer, ServerConfig
from facecert.mock_server.openapi import admin_openapi
from facecert.validate import judge_files
from tests.server.helpers import capture_body, poll_body, report_body, result_body
from tests.support import SCALE, facecert

ROOT = Path(__file__).resolve().parents[2]


def mock_server_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m mock_server`` runs the same commands ``facecert`` registers."""
    return subprocess.run(
        [sys.executable, "-m", "facecert.mock_server", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_openapi_is_valid_and_covers_every_route(server: MockServer, client: httpx.Client) -> None:
    document = admin_openapi()
    validate(document)
    assert client.get("/_admin/openapi.json").json() == document
    served = {
        route.path.removeprefix(server.platform.prefix)
        for route in server.app.routes
        if route.path.startswith(f"{server.platform.prefix}/_admin")
    }
    documented = {path for path in document["paths"]}
    assert served == documented


def test_every_read_call(server: MockServer, client: httpx.Client) -> None:
    rid = server.enqueue("A", example_for("server/tasks/getDevStatus"))
    task = client.post("/taskRequest", json=poll_body("A")).json()
    client.post("/taskResult", json=result_body("A", task))
    client.post("/faceRecognition", json=capture_body("A"))
    client.post("/deviceAlarm", json=report_body("deviceAlarm", "A"))
    client.post("/gpsReport", json=report_body("gpsReport", "A"))
    client.get("/assets/face.jpg")
    devices = client.get("/_admin/devices").json()
    assert devices[0]["device_id"] == "A" and devices[0]["polls"] == 1 and devices[0]["first_seen"]
    assert client.get("/_admin/tasks").json()[0]["request_id"] == rid
    assert client.get("/_admin/results").json()[0]["code"] == 0
    assert len(client.get("/_admin/captures").json()) == 1
    assert len(client.get("/_admin/alarms").json()) == 1 and len(client.get("/_admin/gps").json()) == 1
    assert client.get("/_admin/downloads").json()[0]["completed"] == 1
    exchanges = client.get("/_admin/exchanges", params={"device_id": "A"}).json()
    assert [e["endpoint"] or e["path"] for e in exchanges] == [
        "taskRequest",
        "taskResult",
        "faceRecognition",
        "deviceAlarm",
        "gpsReport",
        "/assets/face.jpg",
    ]
    assert client.get("/_admin/downloads").json()[0]["device_id"] == "A"  # the only device seen from that address
    assert exchanges[0]["response_json"]["request_id"] == rid
    assert len(client.get("/_admin/exchanges", params={"limit": "2"}).json()) == 2
    assert isinstance(client.get("/_admin/findings", params={"party": "server"}).json(), list)
    assert {a["name"] for a in client.get("/_admin/assets").json()} >= {"face.jpg", "screensaver.png", "firmware.bin"}
    overview = client.get("/_admin/overview").json()
    assert overview["devices"] and overview["exchanges"] and overview["captures"]
    assert client.get("/_admin/devices/A/queue").json() == []
    assert server.wait_for_result(rid, 1)["request_id"] == str(rid)


@pytest.fixture
def one_salt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One redaction salt for this process and the export it starts, so both HARs hash alike."""
    redact.reset()  # forgets the salt and its environment variables
    monkeypatch.setenv(redact.SALT_ENV, "ab" * 16)
    yield
    redact.reset()


def test_har_export_over_http_and_cli_is_accepted_by_validate(
    server: MockServer, client: httpx.Client, tmp_path: Path, one_salt: None
) -> None:
    server.enqueue("H", example_for("server/tasks/getDevStatus"))
    task = client.post("/taskRequest", json=poll_body("H")).json()
    client.post("/taskResult", json=result_body("H", task))
    client.post("/faceRecognition", json=capture_body("H"))
    har = client.get("/_admin/export.har").json()
    assert len(har["log"]["entries"]) == 3
    over_http = tmp_path / "http.har"
    over_http.write_text(json.dumps(har))
    exported = tmp_path / "cli.har"
    made = mock_server_cli("export", "--har", "--db", str(server.config.db), "-o", str(exported))
    assert made.returncode == 0, made.stdout + made.stderr
    assert json.loads(exported.read_text())["log"]["entries"] == har["log"]["entries"]
    for path in (over_http, exported):
        _, found, count = judge_files([path], EngineConfig(time_scale=SCALE))
        assert count == 3
        assert not [f for f in found if f.party == "server" and f.severity.value == "error"], found
    missing = mock_server_cli("export", "--db", str(tmp_path / "none.db"), "-o", str(tmp_path / "x.har"))
    assert missing.returncode == 2 and "Traceback" not in missing.stdout + missing.stderr


def test_admin_token_when_required(tmp_path: Path) -> None:
    with MockServer(ServerConfig(time_scale=SCALE, admin_token="s3cret")) as srv:
        assert httpx.get(srv.url + "/_admin/devices").status_code == 401
        assert httpx.get(srv.url + "/_admin/devices", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(srv.url + "/_admin/devices", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(srv.url + "/_admin/devices", headers={"x-admin-token": "s3cret"}).status_code == 200
        assert httpx.get(srv.url + "/_admin/devices?token=s3cret").status_code == 200
        assert httpx.get(srv.url + "/").status_code == 401
        assert httpx.get(srv.url + "/?token=s3cret").status_code == 200
        # the device endpoints never need it
        assert httpx.post(srv.url + "/taskRequest", json=poll_body("T")).status_code == 200


def test_serve_generates_a_token_when_bound_beyond_localhost() -> None:
    from facecert.mock_server.cli import admin_token_for

    assert admin_token_for("127.0.0.1", None) == (None, False)
    assert admin_token_for("0.0.0.0", "mine") == ("mine", False)
    token, generated = admin_token_for("0.0.0.0", None)
    assert generated and token and len(token) >= 20
    assert admin_token_for("192.168.1.5", None)[0] != token


def test_console_line_per_exchange_highlights_findings() -> None:
    from rich.console import Console

    from facecert.mock_server.console_feed import exchange_line

    console = Console(record=True, width=200, color_system="truecolor")
    finding = {"severity": "error", "rule": "MSG-REQUIRED", "message": "[x] missing"}
    console.print(
        exchange_line(
            {"kind": "exchange", "endpoint": "taskRequest", "device_id": "D1", "status": 200, "findings": [finding]}
        )
    )
    console.print(
        exchange_line(
            {"kind": "exchange", "endpoint": "taskRequest", "device_id": "D2", "status": None, "findings": []}
        )
    )
    text = console.export_text(clear=False)
    assert "D1" in text and "MSG-REQUIRED" in text and "[x] missing" in text and "no answer" in text
    assert "\x1b[1;31m" in console.export_text(styles=True)  # errors in bold red


def test_commands_register_on_the_facecert_app() -> None:
    import typer
    from typer.testing import CliRunner

    from facecert.cli import app as facecert_app
    from facecert.mock_server.cli import register
    from facecert.mock_server.openapi import admin_openapi

    printed = CliRunner().invoke(facecert_app, ["openapi", "--admin"])
    assert printed.exit_code == 0 and json.loads(printed.output) == admin_openapi()  # `facecert openapi --admin`

    app = typer.Typer()
    register(app)
    for command in ("serve", "export"):
        shown = CliRunner().invoke(app, [command, "--help"])
        assert shown.exit_code == 0 and "--db" in shown.output


def test_serve_refuses_unusable_options_without_a_traceback(tmp_path: Path) -> None:
    not_a_db = tmp_path / "x.db"
    not_a_db.write_text("garbage")
    for args in (
        ["--db", str(tmp_path / "missing" / "x.db")],
        ["--db", str(not_a_db)],
        ["--firmware", str(tmp_path / "none.bin")],
        ["--profile", "lenient"],
    ):
        made = facecert("serve", "--port", "0", *args)  # forked: `python -m facecert.mock_server` is run above
        assert made.returncode == 2 and "Traceback" not in made.stdout + made.stderr, made.stdout + made.stderr


def test_a_control_body_of_non_json_whitespace_is_refused_not_taken_as_empty() -> None:
    """Schemathesis found it: a form feed stripped as whitespace made `{"on": true}` of random bytes."""
    from facecert.mock_server.http_admin import Rejected, parse_json_body

    assert parse_json_body(b"") == {} and parse_json_body(b" \r\n\t") == {}
    for raw in (b"\x0c", b"\x0b ", b"\x1c"):
        with pytest.raises(Rejected, match="not JSON"):
            parse_json_body(raw)
