"""Nothing lost: a client that leaves before its answer is stored as
unanswered and its task stays queued; a restart on the same --db (a clean
stop, or kill -9) keeps queued and awaited tasks, and a result for a task
sent before the restart is accepted; router-level refusals are stored."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from facecert.core.examples import example_for
from facecert.mock_server import MockServer, ServerConfig
from tests.server.helpers import errors, poll_body, result_body
from tests.server.test_kill import _wait_for_line
from tests.support import SCALE

ROOT = Path(__file__).resolve().parents[2]


def post_then_leave(srv: MockServer, path: str, body: bytes, send: int | None = None, wait: float = 0.1) -> None:
    """POST ``body`` (only ``send`` bytes of it when given), then close the socket before any answer."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        head = (
            f"POST {srv.platform.prefix}{path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head + body[:send])
        time.sleep(wait)  # the request is in; the answer is not (slow fault, or the body never completes)


def unanswered(srv: MockServer, device_id: str) -> list[dict]:
    return [e for e in srv.exchanges() if e["status"] is None and e["device_id"] == device_id]


def test_client_gone_before_the_answer_is_stored_unanswered_and_keeps_its_task(
    server: MockServer, client: httpx.Client
) -> None:
    rid = server.enqueue("LEAVER", example_for("server/tasks/getDevStatus"))
    server.set_fault("slow", device_id="LEAVER", delay=1.0)
    started = time.monotonic()
    post_then_leave(server, "/taskRequest", json.dumps(poll_body("LEAVER")).encode())
    gone = server.platform.wait_for(lambda: unanswered(server, "LEAVER"), 5, "the unanswered poll")
    assert time.monotonic() - started < 0.9, "the slow fault's wait ends when the client leaves"
    assert "disconnected" in gone[0]["error"]
    assert server.queue("LEAVER")[0]["state"] == "queued"
    assert server.tasks("LEAVER")[0]["state"] == "queued"
    assert not errors(server.findings("LEAVER"), "server"), "a client leaving is not the server's fault"
    server.clear_faults()
    assert client.post("/taskRequest", json=poll_body("LEAVER")).json()["request_id"] == rid


def test_body_cut_short_is_stored_unanswered_and_changes_nothing(server: MockServer, client: httpx.Client) -> None:
    rid = server.enqueue("CUT", example_for("server/tasks/getDevStatus"))
    body = json.dumps(poll_body("CUT")).encode()
    post_then_leave(server, "/taskRequest", body, send=len(body) // 2)
    stored = server.platform.wait_for(
        lambda: [e for e in server.exchanges() if e["status"] is None], 5, "the cut-short request"
    )
    assert stored[0]["request_bytes"] == len(body) // 2
    assert server.queue("CUT")[0]["state"] == "queued"
    assert client.post("/taskRequest", json=poll_body("CUT")).json()["request_id"] == rid


def test_router_refusals_and_odd_methods_are_stored(server: MockServer, client: httpx.Client) -> None:
    assert client.request("BREW", "/coffee", content=b"{}").status_code == 404
    refused = client.delete("/_admin/devices")
    assert refused.status_code == 405 and refused.json()["code"] == 405 and "GET" in refused.headers["allow"]
    odd = client.request("PROPFIND", "/taskRequest", json=poll_body("ODD"))  # judged like a GET, still served
    assert odd.status_code == 200 and "HTTP-METHOD" in errors(server.findings("ODD"))
    empty = client.request("BREW", "/taskRequest")
    assert empty.status_code == 400 and "HTTP-METHOD" in {f["rule"] for f in empty.json()["findings"]}
    rows = {(e["method"], e["path"], e["status"]) for e in server.exchanges()}
    assert {
        ("BREW", "/coffee", 404),
        ("DELETE", "/_admin/devices", 405),
        ("PROPFIND", "/taskRequest", 200),
        ("BREW", "/taskRequest", 400),
    } <= rows


def test_restart_on_the_same_db_keeps_queued_and_awaited_tasks(tmp_path: Path) -> None:
    db = tmp_path / "session.db"
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as first:
        sent = first.enqueue("DEV", example_for("server/tasks/getDevStatus"))
        waiting = first.enqueue("DEV", example_for("server/tasks/getDevStatus"))
        task = httpx.post(first.url + "/taskRequest", json=poll_body("DEV")).json()
        assert task["request_id"] == sent
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as second:
        assert [(q["state"], q["request_id"]) for q in second.queue("DEV")] == [("queued", waiting), ("awaiting", sent)]
        assert second.devices()[0]["device_id"] == "DEV" and second.devices()[0]["polls"] == 1
        answer = httpx.post(second.url + "/taskResult", json=result_body("DEV", task))
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
        assert second.wait_for_result(sent, 1)["accepted"] == 1
        assert {t["request_id"]: t["state"] for t in second.tasks("DEV")}[sent] == "done"
        assert not errors(second.findings("DEV")), second.findings("DEV")
        again = httpx.post(second.url + "/taskRequest", json=poll_body("DEV")).json()
        assert again["request_id"] == waiting
        assert second.enqueue("DEV", example_for("server/tasks/getDevStatus")) > waiting
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as third:  # a done task stays done
        duplicate = httpx.post(third.url + "/taskResult", json=result_body("DEV", task)).json()
        assert duplicate["code"] == 0 and "duplicate" in duplicate["log"]


def test_kill_minus_nine_keeps_the_queue(tmp_path: Path) -> None:
    db = tmp_path / "session.db"
    task = example_for("server/tasks/getDevStatus")

    def serve() -> tuple[subprocess.Popen[str], str]:
        port_file = tmp_path / "port"
        port_file.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "facecert.mock_server",
                "serve",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--db",
                str(db),
                "--time-scale",
                str(SCALE),
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200"},
        )
        _wait_for_line(proc, "listening", timeout=30)
        return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"

    proc, url = serve()
    try:
        made = httpx.post(url + "/_admin/devices/K9/tasks", json={"task": task})
        assert made.status_code == 201
        rid = made.json()["request_id"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc, url = serve()
        assert httpx.post(url + "/taskRequest", json=poll_body("K9")).json()["request_id"] == rid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_device_row_is_written_when_it_changes_and_a_restart_counts_the_rest(tmp_path: Path) -> None:
    # every poll of one connection would rewrite the row (a WAL page a commit); it is written when the
    # device is new and when its peer or versions change, and a restart counts polls and last-seen itself
    db = tmp_path / "session.db"
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as first:
        with httpx.Client(base_url=first.url) as device:  # one connection: one peer
            for _ in range(5):
                assert device.post("/taskRequest", json=poll_body("DEV")).status_code == 200
        with httpx.Client(base_url=first.url) as device:  # a new connection: the peer changes
            assert device.post("/taskRequest", json=poll_body("DEV")).status_code == 200
            newer = {**poll_body("DEV"), "software_version": "9.9.9"}
            for _ in range(4):  # the versions change on the first; the row says so from the second
                assert device.post("/taskRequest", json=newer).status_code == 200
        seen = first.devices()[0]
    with sqlite3.connect(db) as conn:
        first_seen, polls, data = conn.execute("SELECT first_seen, polls, data FROM devices").fetchone()
    assert polls == 7, "the row as it was written last: by the poll after the versions changed"
    assert json.loads(data)["versions"]["software_version"] == "9.9.9"
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as second:
        again = second.devices()[0]
    assert (again["polls"], again["first_seen"]) == (seen["polls"], first_seen) == (10, seen["first_seen"])
    assert again["last_seen"] == seen["last_seen"] and again["peer"] == seen["peer"]
    assert again["versions"] == seen["versions"]
