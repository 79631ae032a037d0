"""A mock server meant to run for days keeps in memory only what its next answers need: every finding is
in the session database (and its listeners are shown it), none in the engine's list, and what a finding
quotes of a device's value is bounded there too. Before, the engine kept every finding (~650 bytes each,
one a poll for a device off its cadence) and each quoted the whole value (51 KB for a 50,000-character
time_stamp). Without --db the record itself is in memory, and the server says so as it starts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from facecert.core.model import QUOTE_BUDGET
from facecert.mock_server import MockServer
from tests.server.helpers import poll_body

POLLS = 40
FACECERT = Path(sys.executable).parent / "facecert"


def test_the_server_keeps_its_findings_in_the_database_not_in_memory(server: MockServer) -> None:
    body = poll_body("LONGRUN00000001")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(POLLS):  # back to back: every poll after the first is off its idle cadence
            client.post("/taskRequest", json=body).raise_for_status()
    stored = [f for f in server.findings("LONGRUN00000001") if f["rule"] == "CADENCE-IDLE"]
    assert len(stored) == POLLS - 1
    assert server.engine.findings == []


def test_a_huge_value_is_stored_quoted_short(server: MockServer) -> None:
    body = {**poll_body("LONGRUN00000002"), "time_stamp": "7" * 50_000}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/taskRequest", json=body).status_code == 200
    found = [f for f in server.findings("LONGRUN00000002") if f["rule"] == "MSG-TYPE"]
    assert len(found) == 1 and found[0]["actual"].endswith("… (50000 chars)")
    assert len(found[0]["actual"]) <= QUOTE_BUDGET + 40
    with sqlite3.connect(server.config.db) as db:
        rows = db.execute("SELECT data FROM findings WHERE device_id = ?", ("LONGRUN00000002",)).fetchall()
    assert rows and max(len(row[0]) for row in rows) < 2_000
    assert json.loads(rows[0][0])["rule"]


def _start_lines(tmp_path: Path, *args: str) -> str:
    """What ``facecert serve ARGS`` says as it starts, up to its "Ctrl-C stops" line (then it is stopped)."""
    argv = [str(FACECERT), "serve", "--host", "127.0.0.1", "--port", "0", *args]
    env = {**os.environ, "COLUMNS": "200"}
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # it prints that line once it listens, or ends (EOF)
                lines.append(line)
                if "Ctrl-C stops" in line:
                    break
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = "".join(lines)
    assert "Ctrl-C stops" in out, out
    return out


def test_a_server_without_a_database_says_its_memory_grows(tmp_path: Path) -> None:
    assert "kept in memory and grows with every exchange" in _start_lines(tmp_path)
    assert "grows with every exchange" not in _start_lines(tmp_path, "--db", str(tmp_path / "session.db"))
