"""The control API and the live page refuse what a hostile web page can make
the operator's browser send: other Host names (DNS rebinding), cross-site
requests (Origin, Sec-Fetch-Site) and writes without a JSON content type.
Refusals are stored; devices are not affected. One test drives a real
Chromium from another origin."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.mock_server import MockServer, ServerConfig
from tests.server.helpers import poll_body
from tests.server.test_page import ARGS
from tests.support import SCALE

FAULT = {"kind": "outage", "mode": "503"}


def refused_rows(server: MockServer, status: int) -> list[dict]:
    return [e for e in server.exchanges() if e["status"] == status and e["path"].startswith("/_admin")]


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "127.0.0.1.nip.io:{port}",
        "127.0.0.1:1",
        "localhost",
        "[::1]:1",
        "",
        "a b",
        "127.0.0.1:{port}@evil.example",
    ],
)
def test_foreign_host_is_refused(server: MockServer, client: httpx.Client, host: str) -> None:
    headers = {"host": host.format(port=server.port)}
    assert client.get("/_admin/devices", headers=headers).status_code == 403
    assert client.get("/", headers=headers).status_code == 403
    made = client.post("/_admin/faults", json=FAULT, headers=headers)
    assert made.status_code == 403 and server.platform.faults == []
    assert refused_rows(server, 403)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST.:{port}"])
def test_own_names_are_accepted(server: MockServer, client: httpx.Client, host: str) -> None:
    headers = {"host": host.format(port=server.port)}
    assert client.get("/_admin/devices", headers=headers).status_code == 200
    assert client.get("/", headers=headers).status_code == 200


def test_a_configured_public_name_is_accepted(tmp_path: Path) -> None:
    config = ServerConfig(time_scale=SCALE, public_names=("bench.lan", "proxy.lan:8443"))
    with MockServer(config) as srv:
        for host, status in (
            ("bench.lan", 200),
            (f"bench.lan:{srv.port}", 200),
            ("proxy.lan:8443", 200),
            ("proxy.lan:9", 403),
            ("other.lan", 403),
        ):
            assert httpx.get(srv.url + "/_admin/devices", headers={"host": host}).status_code == status, host


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:1"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://127.0.0.1:{port}"},
        {"origin": "http://localhost:{port}"},
    ],
)
def test_cross_site_requests_are_refused(server: MockServer, client: httpx.Client, headers: dict[str, str]) -> None:
    headers = {k: v.format(port=server.port) for k, v in headers.items()}
    assert client.get("/_admin/overview", headers=headers).status_code == 403
    task = {"task": example_for("server/tasks/getDevStatus")}
    assert client.post("/_admin/devices/D/tasks", json=task, headers=headers).status_code == 403
    assert server.queue("D") == []


def test_same_origin_browser_requests_pass(server: MockServer, client: httpx.Client) -> None:
    own = {"origin": f"http://127.0.0.1:{server.port}", "sec-fetch-site": "same-origin"}
    assert client.get("/_admin/overview", headers=own).status_code == 200
    assert client.post("/_admin/faults", json=FAULT, headers=own).status_code == 201
    assert client.get("/", headers={"sec-fetch-site": "none"}).status_code == 200  # typed in the address bar


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"],
)
def test_writes_need_a_json_content_type(server: MockServer, client: httpx.Client, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"kind": "outage", "mode": "503"}'
    assert client.post("/_admin/faults", content=body, headers=headers).status_code == 415
    assert client.put("/_admin/misbehaviours/no_answer", content=b'{"on": true}', headers=headers).status_code == 415
    assert server.platform.faults == [] and not server.platform.misbehaving
    assert refused_rows(server, 415)
    assert (
        client.post(
            "/_admin/faults", content=body, headers={"content-type": "application/json; charset=utf-8"}
        ).status_code
        == 201
    )


def test_device_endpoints_stay_open(server: MockServer, client: httpx.Client) -> None:
    odd = {"host": "device.example", "origin": "http://evil.example", "content-type": "text/plain"}
    assert client.post("/taskRequest", json=poll_body("OPEN"), headers=odd).status_code == 200
    assert client.get("/assets/face.jpg", headers=odd).status_code == 200


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:  # the http.server API names it
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def attacker(server: MockServer) -> Iterator[str]:
    """A web page on another origin that tries the control API like a real attack would."""
    task = {"task": {**example_for("server/tasks/setPlatformServer")}}
    target = server.url + "/_admin"
    _AttackerPage.html = f"""<!doctype html><title>cute cats</title><script>
const send = (path, method, body, type) => fetch("{target}" + path, {{method, mode: "no-cors", body,
  headers: type ? {{"content-type": type}} : {{}}}}).catch(() => null);
Promise.all([
  send("/faults", "POST", JSON.stringify({{kind: "outage", mode: "503"}}), "text/plain"),
  send("/faults", "POST", JSON.stringify({{kind: "outage", mode: "503"}}), "application/json"),
  send("/devices/VICTIM/tasks", "POST", {repr(__import__("json").dumps(task))}, "text/plain"),
  send("/misbehaviours/no_answer", "PUT", '{{"on": true}}', "application/json"),
]).then(() => {{ document.title = "sent"; }});
</script>""".encode()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_a_web_page_on_another_origin_cannot_drive_the_server(server: MockServer, attacker: str, chromium: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(attacker)
            page.wait_for_function("document.title === 'sent'", timeout=10_000)
        finally:
            browser.close()
    assert server.platform.faults == [] and not server.platform.misbehaving
    assert server.queue("VICTIM") == []
    attempts = [e for e in server.exchanges() if e["path"].startswith("/_admin") and e["status"] == 403]
    assert len(attempts) >= 3, [(e["method"], e["path"], e["status"]) for e in server.exchanges()]
