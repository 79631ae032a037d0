"""An idle answer to the only poll in flight is judged after it is sent (mock_server/platform.py).

The answer and every row it writes are the same whatever the engine finds in it, so the exchange is
committed and answered first, and judged right after (``Platform.deferred``): the engine's work is
off the poll's critical path. What must hold:

* the exchange's row is committed before its answer leaves (a kill loses no answered exchange);
* its findings are made, and committed with the next transaction or FLUSH_S after, with nothing
  else coming;
* whoever reads (the Python API, the control API, ``MockServer.engine``) sees the findings of every
  answered exchange: a read judges and commits what waits first.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from facecert.mock_server import MockServer, ServerConfig
from facecert.mock_server.platform import FLUSH_S
from tests.server.helpers import poll_body

SCALE = 0.05


def _findings_in_file(db: Path, device_id: str) -> list[dict[str, Any]]:
    """The findings another connection sees in the database file (what survives the process)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT exchange_id, rule FROM findings WHERE device_id = ?", (device_id,)).fetchall()
    finally:
        conn.close()
    return [{"exchange_id": e, "rule": r} for e, r in rows]


class _AtTheAnswer:
    """Wraps the app: when a poll's answer starts, what the database file and the engine hold."""

    def __init__(self, server: MockServer, db: Path) -> None:
        self.server, self.db, self.app = server, db, server.app
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/taskRequest"):
            await self.app(scope, receive, send)
            return

        async def watched(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
                try:
                    stored = conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]
                finally:
                    conn.close()
                self.seen.append({"stored": stored, "judged": self.server.platform.engine.count})
            await send(message)

        await self.app(scope, receive, watched)


def test_the_exchange_is_committed_before_its_answer_and_judged_after(tmp_path: Path) -> None:
    db = tmp_path / "session.db"
    server = MockServer(ServerConfig(time_scale=SCALE, db=db))
    watcher = _AtTheAnswer(server, db)
    server.app = watcher  # type: ignore[assignment]  # uvicorn is handed the wrapper
    with server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(3):  # the second and third polls come too early: a cadence finding each
                assert http.post("/taskRequest", json=poll_body("DEFER1")).status_code == 200
        # at each answer: its exchange (and every one before) in the file; the engine had not judged it yet
        assert [s["stored"] for s in watcher.seen] == [1, 2, 3], watcher.seen
        assert [s["judged"] for s in watcher.seen] == [0, 1, 2], watcher.seen
        # with nothing else coming, the last poll's findings are committed on their own within FLUSH_S
        deadline = time.monotonic() + 5
        while len({f["exchange_id"] for f in _findings_in_file(db, "DEFER1")}) < 2 and time.monotonic() < deadline:
            time.sleep(FLUSH_S)
        in_file = _findings_in_file(db, "DEFER1")
        ids = [row["id"] for row in server.exchanges("DEFER1")]
        assert {f["exchange_id"] for f in in_file} == set(ids[1:]), (in_file, ids)
        assert all(f["rule"].startswith("CADENCE") for f in in_file), in_file


def test_a_read_right_after_the_answer_sees_its_findings(server: MockServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for n in range(30):
            assert http.post("/taskRequest", json=poll_body("DEFER2")).status_code == 200
            if n == 0:
                continue
            last = server.exchanges("DEFER2")[-1]
            found = [f for f in server.findings("DEFER2") if f["exchange_id"] == last["id"]]
            assert found and found[0]["exchange"] == last["idx"], (n, last, found)
            assert any(f.exchange == last["idx"] for f in server.engine.findings)
    indices = [row["idx"] for row in server.exchanges("DEFER2")]
    assert indices == sorted(set(indices)), indices  # one place each in the engine's order


def test_stopping_commits_the_last_findings(tmp_path: Path) -> None:
    db = tmp_path / "session.db"
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as server:
        server.platform.batch.flushing = True  # as if a flush were scheduled: none is, the stop must commit them
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(2):
                assert http.post("/taskRequest", json=poll_body("DEFER3")).status_code == 200
        time.sleep(10 * FLUSH_S)
        assert not _findings_in_file(db, "DEFER3")  # judged, waiting for a commit
    assert [f["rule"] for f in _findings_in_file(db, "DEFER3")], "the last poll's findings were lost at stop"
