"""A mock server meant to run for days keeps in memory only what its next answers need: every finding is
in the session database (and its listeners are shown it), none in the engine's list, and what a finding
quotes of a device's value is bounded there too. Before, the engine kept every finding (~650 bytes each,
one a poll for a device off its cadence) and each quoted the whole value (51 KB for a 50,000-character
time_stamp)."""

from __future__ import annotations

import json
import sqlite3

import httpx

from facecert.core.model import QUOTE_BUDGET
from facecert.mock_server import MockServer
from tests.server.helpers import poll_body

POLLS = 40


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
