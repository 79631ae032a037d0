"""A restart on a long session's database reads what the server needs of its history, not all of it: each
device's poll count and its latest polls (its cadence), as SQLite gives them. Reading every poll into one
list took 469 MB to start again on a million polls. Tasks answered before the restart come back without
their body."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
from pathlib import Path

from facecert.core.contract import get_contract
from facecert.core.engine import Engine
from facecert.core.examples import example_for
from facecert.mock_server.restore import restore
from facecert.mock_server.state import CLIENT_GONE, POLL_STARTS_KEPT, ServerState, TaskState
from facecert.mock_server.store import Store

DEVICES, POLLS = 4, 40_000  # 160,000 polls in the database
ANSWERED = 200


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
        assert info.last_seen == 9e9  # the latest message, its client gone or not (the row says 0)
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB to restore {DEVICES * POLLS} polls"


def test_a_restart_keeps_no_body_of_an_answered_task(tmp_path: Path) -> None:
    # tasks answered before the restart are kept as the engine keeps an answered task: without their body
    db = tmp_path / "session.db"
    Store(db).close()
    body = {**example_for("server/tasks/addUser")}
    body["user_list"][0]["image_content"] = "http://127.0.0.1/" + "a" * 20_000
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO tasks (request_id, device_id, request_type, body, raw, state, sent_at, deadline, result_code) "
            "VALUES (?, 'HISTORY000000000', 'addUser', ?, 0, ?, 1.0, 2.0, 0)",
            [(n, json.dumps({**body, "request_id": n}), TaskState.DONE.value) for n in range(1, ANSWERED + 1)],
        )
    contract = get_contract()
    state = ServerState(contract, contract.latest, contract.result_deadline_s)
    store, engine = Store(db), Engine()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        restore(store, state, engine)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        store.close()
    assert len(engine.issued) == ANSWERED and state.queues.awaiting("HISTORY000000000") == []
    assert kept / ANSWERED < 8_000, f"{kept / ANSWERED:.0f} bytes kept per answered task"
