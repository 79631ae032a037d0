"""A restart on a long session's database reads what the server needs of its history, not all of it: each
device's poll count and its latest polls (its cadence), as SQLite gives them. Reading every poll into one
list took 469 MB to start again on a million polls."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

from facecert.core.contract import get_contract
from facecert.core.engine import Engine
from facecert.mock_server.restore import restore
from facecert.mock_server.state import CLIENT_GONE, POLL_STARTS_KEPT, ServerState
from facecert.mock_server.store import Store

DEVICES, POLLS = 4, 40_000  # 160,000 polls in the database


def _session(db: Path) -> None:
    """A database as a long session leaves it: DEVICES devices, POLLS polls each, interleaved, and one poll
    each whose client left (not counted)."""
    Store(db).close()  # the tables
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO devices (device_id, first_seen, last_seen, peer, polls, data) VALUES (?, 0, 0, '', 0, '{}')",
            [(f"HISTORY{d:09d}",) for d in range(DEVICES)],
        )
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO exchanges (idx, device_id, endpoint, method, path, started, status) "
            "SELECT i, printf('HISTORY%09d', i % ?), 'taskRequest', 'POST', '/taskRequest', 1000.0 + i, 200 FROM n",
            (DEVICES * POLLS - 1, DEVICES),
        )
        conn.executemany(
            "INSERT INTO exchanges (device_id, endpoint, method, path, started, error) VALUES (?, 'taskRequest', "
            "'POST', '/taskRequest', 9e9, ?)",
            [(f"HISTORY{d:09d}", CLIENT_GONE) for d in range(DEVICES)],
        )


def test_a_restart_reads_the_latest_polls_not_every_poll(tmp_path: Path) -> None:
    db = tmp_path / "session.db"
    _session(db)
    contract = get_contract()
    state = ServerState(contract, contract.latest, contract.result_deadline_s)
    store = Store(db)
    tracemalloc.start()
    try:
        restore(store, state, Engine())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        store.close()
    for d in range(DEVICES):
        info = state.devices[f"HISTORY{d:09d}"]
        assert info.polls == POLLS
        last = 1000.0 + DEVICES * (POLLS - 1) + d
        assert list(info.poll_starts) == [last - DEVICES * k for k in reversed(range(POLL_STARTS_KEPT))]
        assert info.last_poll == last
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB to restore {DEVICES * POLLS} polls"
