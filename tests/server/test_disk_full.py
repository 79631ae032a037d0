"""A disk that fills up under the mock server: each request it cannot record is answered 503 with a JSON
body saying so (never a 500 and a traceback a request, never an answer as if it were kept); the console
hears it once when it starts and once when it ends; what was kept before and after stays whole; the
certification makes every scenario after it an error (HARNESS-RECORDING: tests/certify/test_disk_full.py).

SQLite's own limit (``PRAGMA max_page_count``) fills the database here as a full disk does: the same
SQLITE_FULL from the same write, on any machine. The tests marked ``real_disk`` fill a real filesystem (a
small tmpfs, mounted where this runs as root; skipped elsewhere, saying why). Before, each such request
was a bare "500 Internal Server Error" and two tracebacks on the console (2,330 lines for 43 requests)."""

from __future__ import annotations

import errno
import itertools
import json
import logging
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from facecert.mock_server import MockServer
from facecert.mock_server.store import Store
from facecert.recording import RecordingFailed, disk_failure
from tests.server.helpers import capture_body, poll_body
from tests.support import FACECERT, SCALE, fill_disk, small_tmpfs

DEVICE = "ID00000000DISK01"


def fill(server: MockServer) -> None:
    """The database held at its size and every table it writes a request to filled to the last byte of
    its pages (rows of our own, no device's): any write fails as on a full disk."""
    store = server.platform.store
    with store.lock:
        conn = store.conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 4}")
        for table, column in (("exchanges", "request_body"), ("findings", "data"), ("devices", "data")):
            size = 8192
            while size:
                try:
                    conn.execute(f"INSERT INTO {table} ({column}) VALUES (?)", ["x" * size])
                except sqlite3.OperationalError:
                    size //= 2


def free(server: MockServer) -> None:
    store = server.platform.store
    with store.lock:
        store.conn.execute("PRAGMA max_page_count = 1073741823")


def test_requests_the_store_cannot_keep_are_503_and_said_once(
    server: MockServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    assert client.post("/taskRequest", json=poll_body(DEVICE)).status_code == 200
    fill(server)
    with caplog.at_level(logging.WARNING, logger="facecert.mock_server.platform"):
        refused = [client.post("/taskRequest", json=poll_body(DEVICE)) for _ in range(30)]
        refused.append(client.post("/faceRecognition", json=capture_body(DEVICE)))
        refused.append(client.get("/no/such/endpoint"))  # stored as other traffic: that write fails too
        big = capture_body(DEVICE, 1)
        big["frpic"] = "A" * (2 * 1024 * 1024)  # its file is written (the folder has room), its row is not
        refused.append(client.post("/faceRecognition", json=big))
        free(server)
        after = client.post("/taskRequest", json=poll_body(DEVICE))
    assert {answer.status_code for answer in refused} == {503}
    assert all(answer.headers["content-type"] == "application/json" for answer in refused)
    assert "database or disk is full" in refused[0].json()["log"] and refused[0].json()["code"] == 503
    assert after.status_code == 200 and after.json()["request_type"] == "idleTime"
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2, said  # once as it begins, once as it ends: not a line (or a traceback) a request
    assert said[0].startswith("facecert cannot record: database or disk is full") and str(server.config.db) in said[0]
    assert said[1] == "facecert records again: 33 device requests were answered 503 meanwhile"
    state = server.platform.recording.state()
    assert (state.refused, state.outages, state.failing_since) == (33, 1, None) and not state.complete
    bodies = Path(f"{server.config.db}.bodies")
    assert not bodies.exists() or not list(bodies.iterdir()), "the file of a body whose row was taken back"
    # what was kept before and after is whole; nothing of the refused requests is
    stored = server.exchanges(DEVICE)
    assert [e["status"] for e in stored] == [200, 200]
    db = sqlite3.connect(server.config.db)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM exchanges WHERE status = 503").fetchone() == (0,)


def test_a_correct_run_says_nothing_of_it(server: MockServer, client: httpx.Client) -> None:
    for _ in range(3):
        assert client.post("/taskRequest", json=poll_body(DEVICE)).status_code == 200
    assert server.platform.recording.state().complete


def test_only_the_disk_passes_for_the_disk(tmp_path: Path) -> None:
    """SQL that SQLite refuses for what it says is an OperationalError as SQLITE_FULL is: it must stay a bug
    of ours (a 500 naming it), not be told to the user as a full disk."""
    store = Store(tmp_path / "s.db")
    try:
        with pytest.raises(sqlite3.OperationalError) as bug:
            with store.tx() as conn:
                conn.execute("INSERT INTO exchanges (no_such_column) VALUES (1)")
        assert not disk_failure(bug.value) and not isinstance(bug.value, RecordingFailed)
        with store.lock:
            store.conn.execute("PRAGMA max_page_count = 1")
        with pytest.raises(RecordingFailed) as full:
            with store.tx() as conn:
                conn.execute("INSERT INTO findings (data) VALUES (?)", ["x" * 100_000])
        assert full.value.reason == "database or disk is full" and not store.conn.in_transaction
        assert disk_failure(OSError(28, "No space left on device")) and not disk_failure(PermissionError(13, "no"))
    finally:
        store.close()


# ---- a real filesystem that fills up ------------------------------------------------------------------
@pytest.mark.slow
def test_facecert_serve_on_a_disk_that_fills_up(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        _serve_on_a_disk_that_fills_up(disk, tmp_path / "port")


def _serve_on_a_disk_that_fills_up(small_disk: Path, port_file: Path) -> None:
    proc = subprocess.Popen(
        [str(FACECERT), "serve", "--port", "0", "--port-file", str(port_file), "--db", str(small_disk / "s.db")]
        + ["--time-scale", str(SCALE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{_port(port_file, proc)}"
        with httpx.Client(base_url=url, timeout=20) as client:
            assert client.post("/taskRequest", json=poll_body(DEVICE)).status_code == 200
            filler = fill_disk(small_disk)
            # a poll's few rows may still fit: SQLite writes its WAL file again in place after a checkpoint
            polls = [client.post("/taskRequest", json=poll_body(DEVICE)).status_code for _ in range(10)]
            row, spilled = capture_body(DEVICE), capture_body(DEVICE, 1)
            row["frpic"] = "A" * (900 * 1024)  # kept in its row: the WAL must grow by as much, and cannot
            spilled["frpic"] = "A" * (2 * 1024 * 1024)  # above SPILL_BYTES: a file of its own, which cannot be written
            refused = [client.post("/faceRecognition", json=body) for body in (row, spilled)]
            filler.unlink()
            again = client.post("/taskRequest", json=poll_body(DEVICE)).status_code
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert set(polls) <= {200, 503} and again == 200, (polls, out)
    assert [answer.status_code for answer in refused] == [503, 503], out
    assert (
        "database or disk is full" in refused[0].json()["log"] and "No space left on device" in refused[1].json()["log"]
    )
    assert "Traceback" not in out and "Internal Server Error" not in out, out
    answered = [200, *polls, 503, 503, again]  # a spell: refusals between two kept requests
    spells = sum(1 for before, now in itertools.pairwise(answered) if (before, now) == (200, 503))
    last = len(answered) - 1 - answered[::-1].index(200, 1)  # the last kept request before `again`
    assert out.count("facecert cannot record:") == spells, out  # once a spell, not once a request
    assert f"facecert records again: {len(answered) - 2 - last} device requests" in out, out
    refusals = answered.count(503)
    assert f"the record is incomplete: {refusals} device request(s) were answered 503" in " ".join(out.split()), out
    bodies = small_disk / "s.db.bodies"
    assert not bodies.exists() or not list(bodies.iterdir()), "a body's file the disk cut short is not left behind"
    assert proc.returncode == 0


def _port(port_file: Path, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.05)  # the server writes the file once it listens: nothing to wait on but the file
    proc.kill()
    raise AssertionError(f"facecert serve did not start: {proc.communicate()[0]}")


def test_a_commit_the_disk_refuses_leaves_the_device_row_to_the_next_exchange(
    server: MockServer, client: httpx.Client
) -> None:
    # a device's row is written with its exchanges only when it changes; one whose COMMIT failed (the rows
    # written, the disk refusing at the end: SQLite's page limit cannot be made to fail there) is not stored
    store, device = server.platform.store, "ID00000000DISK02"
    real = store.conn

    class CommitRefused:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "COMMIT":
                raise OSError(errno.ENOSPC, "No space left on device")
            return real.execute(sql, *args)

    assert client.post("/taskRequest", json=poll_body(device)).status_code == 200  # new: its row, no versions yet
    store.conn = CommitRefused()  # type: ignore[assignment]
    try:  # the poll whose row would say its versions
        assert client.post("/taskRequest", json=poll_body(device)).status_code == 503
    finally:
        store.conn = real
    assert client.post("/taskRequest", json=poll_body(device)).status_code == 200
    (row,) = store.rows("SELECT data FROM devices WHERE device_id = ?", (device,))
    (seen,) = (d for d in server.devices() if d["device_id"] == device)
    assert json.loads(row["data"])["versions"] == seen["versions"] != {}
