"""The session database's WAL stays bounded while commits never pause (a fleet polling all day): a passive
checkpoint beside such a writer never lets the log restart, so without the checkpoint between two commits
the WAL file grew by every commit (~15 KB a poll; 225 MB after 15,000 polls in a row)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from facecert.core.model import Exchange
from facecert.mock_server.store import Store

LIMIT = 256 * 1024
# commits for at least RUN_MIN_S (forty checkpoint rounds: a round's commits are what a restarting log holds)
# and until they wrote WRITTEN bytes of WAL, whatever the machine's speed, within RUN_MAX_S. Three seconds,
# not one: in a full make test the checkpointer went ~140 ms without a turn once (a fresh clone, 2026-12-07:
# 9.5 MB of WAL over 16,159 commits in one second, past the eighth the test allows); a run longer than any
# one such spell of the machine shows the bound, not the spell
RUN_MIN_S, RUN_MAX_S = 3.0, 30.0
WRITTEN = 96 * LIMIT


def _exchange(index: int) -> Exchange:
    body = b'{"device_id":"ID00000000000001","time_stamp":%d}' % index
    return Exchange(
        index=index, method="POST", path="/taskRequest", url="http://127.0.0.1/taskRequest", peer="127.0.0.1",
        started=float(index), ended=float(index), status=200, request_headers={}, request_body=body,
        response_headers={}, response_body=b'{"code":0,"request_type":"idleTime","time":20}',
    )  # fmt: skip


def test_the_wal_stays_bounded_under_commits_that_never_pause(tmp_path: Path) -> None:
    store = Store(tmp_path / "session.db", wal_limit_bytes=LIMIT, checkpoint_every_s=RUN_MIN_S / 40)
    wal = tmp_path / "session.db-wal"
    largest, commits, stop = [0], [0], threading.Event()

    def watch() -> None:
        while not stop.wait(0.01):
            largest[0] = max(largest[0], wal.stat().st_size if wal.exists() else 0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < RUN_MAX_S:  # one commit after another
            if commits[0] * 4096 >= WRITTEN and time.monotonic() - started >= RUN_MIN_S:
                break
            with store.tx() as conn:
                store.insert_exchange(conn, _exchange(commits[0]), "ID00000000000001", "taskRequest", {}, {})
            commits[0] += 1
    finally:
        stop.set()
        watcher.join()
    largest[0] = max(largest[0], wal.stat().st_size)
    # each commit writes at least one whole page to the WAL: a log that never restarts holds them all. One
    # that restarts holds what was committed since the last round (commits run far faster here than polls)
    written = commits[0] * 4096
    assert written > 64 * LIMIT, f"too few commits ({commits[0]}) to show the bound"
    assert largest[0] <= written / 8, f"the WAL reached {largest[0]} bytes over {commits[0]} commits"
    assert store.scalar("SELECT count(*) FROM exchanges") == commits[0]  # nothing lost to the restarts
    store.close()
