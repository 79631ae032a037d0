"""A big message deciding and committing in a worker thread never blocks the event loop: a small poll
that arrives meanwhile waits for the platform's lock or the store in a thread or behind a callback,
not on the loop, so the loop keeps serving (here: a callback scheduled on it runs at once), and the
poll is answered and stored as soon as the big commit ends."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from facecert.mock_server import MockServer
from facecert.mock_server.http_device import INLINE_BYTES
from tests.server.helpers import capture_body, poll_body, result_body

HOLD_S = 1.5  # how long the big message's commit holds the store (and, for a result, the platform's lock)
LOOP_BUDGET_S = 0.5  # a callback on the loop runs within this while the big commit holds


def _hold_big_commits(server: MockServer, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The insert of a message above INLINE_BYTES waits HOLD_S inside its transaction (a slow disk)."""
    entered = threading.Event()
    store = server.platform.store
    insert_exchange = store.insert_exchange

    def slow(conn: Any, ex: Any, *rest: Any) -> int:
        if ex.request_body and len(ex.request_body) > INLINE_BYTES:
            entered.set()
            time.sleep(HOLD_S)
        return insert_exchange(conn, ex, *rest)

    monkeypatch.setattr(store, "insert_exchange", slow)
    return entered


def _loop_delay(server: MockServer) -> float:
    """Seconds until a callback scheduled on the server's event loop runs."""
    loop = server.platform.loop
    assert loop is not None
    ran = threading.Event()
    start = time.monotonic()
    loop.call_soon_threadsafe(ran.set)
    assert ran.wait(HOLD_S * 4), "the server's loop never ran the callback"
    return time.monotonic() - start


@pytest.mark.parametrize("big", ["taskResult", "faceRecognition"])
def test_a_big_commit_in_progress_does_not_block_the_loop(
    server: MockServer, monkeypatch: pytest.MonkeyPatch, big: str
) -> None:
    # taskResult: decided and committed under the platform's lock; faceRecognition: holds the store only
    entered = _hold_big_commits(server, monkeypatch)
    if big == "taskResult":
        body = result_body("BIG", {"request_type": "getDevStatus", "request_id": 7})
    else:
        body = capture_body("BIG")
    body["padding"] = {f"p{n}": "x" * 1024 for n in range(INLINE_BYTES * 2 // 1024)}  # readable: a finding, no more
    answers: dict[str, Any] = {}

    def post(name: str, path: str, payload: dict[str, Any]) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            start = time.monotonic()
            answers[name] = (http.post(path, json=payload), time.monotonic())
            answers[name + "_s"] = answers[name][1] - start

    big_sender = threading.Thread(target=post, args=("big", f"/{big}", body))
    big_sender.start()
    assert entered.wait(10), "the big message never reached its commit"
    held_from = time.monotonic()
    pollers = [threading.Thread(target=post, args=(d, "/taskRequest", poll_body(d))) for d in ("SMALL1", "SMALL2")]
    for poller in pollers:
        poller.start()
    time.sleep(0.2)  # the polls are read, judged and waiting for the lock or the store by now
    delay = _loop_delay(server)
    assert time.monotonic() - held_from < HOLD_S, "the loop was measured after the big commit ended"
    assert delay < LOOP_BUDGET_S, f"the loop was blocked {delay:.2f} s behind the big commit"
    big_sender.join(30)
    for poller in pollers:
        poller.join(30)
    big_status = answers["big"][0].status_code  # refused for its padding (a finding), never a 5xx
    assert 200 <= big_status < 500, answers["big"][0].text
    for device in ("SMALL1", "SMALL2"):
        assert answers[device][0].status_code == 200, answers[device][0].text
        assert answers[device][0].json()["request_type"] == "idleTime"
    stored = sorted((e["endpoint"], e["device_id"], e["status"]) for e in server.exchanges())
    assert stored == sorted([(big, "BIG", big_status), ("taskRequest", "SMALL1", 200), ("taskRequest", "SMALL2", 200)])
    # and with the big commit over, the loop answers at once again
    assert _loop_delay(server) < LOOP_BUDGET_S
