"""Judge once: the mock server decides its answer from the engine's one judgement of the request,
files a device without device_id under its host in the engine and the platform alike, and commits
the exchanges decided in one turn of the event loop together, before any of them is answered."""

from __future__ import annotations

import asyncio
import enum
import json
import math
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.core.model import Finding, Severity
from facecert.mock_server import MockServer, ServerConfig
from facecert.mock_server.messages import Incoming, to_json
from facecert.mock_server.platform import Platform, finding_json
from tests.server.helpers import capture_body, poll_body, result_body
from tests.support import SCALE


def test_each_body_is_read_once(server: MockServer, client: httpx.Client) -> None:
    engine = server.platform.engine
    original, reads = engine.reader, Counter()

    def counting(raw: bytes | None, *rest: Any) -> Any:
        reads[raw] += 1
        return original(raw, *rest)

    engine.reader = counting
    rid = server.enqueue("ONCE", example_for("server/tasks/getDevStatus"))
    bodies = [
        json.dumps(poll_body("ONCE")).encode(),
        json.dumps(capture_body("ONCE")).encode(),
        json.dumps({**poll_body("ONCE"), "device_id": 7}).encode(),  # refused by its schema: a 200 all the same
    ]
    task = client.post("/taskRequest", content=bodies[0]).json()
    assert task["request_id"] == rid
    result = json.dumps(result_body("ONCE", task)).encode()
    assert client.post("/taskResult", content=result).json()["code"] == 0
    assert client.post("/faceRecognition", content=bodies[1]).json()["code"] == 0
    client.post("/taskRequest", content=bodies[2])
    for body in [*bodies, result]:
        assert reads[body] == 1, f"read {reads[body]} times: {body[:60]!r}"
    answers = [e for e in server.exchanges() if e["endpoint"]]
    assert len(answers) == 4 and all(e["response_json"] is not None for e in answers)


def test_a_device_without_device_id_is_filed_under_its_host(server: MockServer, client: httpx.Client) -> None:
    anonymous = {k: v for k, v in poll_body("X").items() if k != "device_id"}
    for _ in range(2):  # two connections, two ports: one device
        with httpx.Client(base_url=server.url, timeout=10) as other:
            other.post("/taskRequest", json=anonymous)
    rows = [e for e in server.exchanges() if e["endpoint"] == "taskRequest"]
    assert {e["device_id"] for e in rows} == {"127.0.0.1"}
    findings = server.findings()
    assert findings and {f["device_id"] for f in findings} == {"127.0.0.1"}
    assert {f["rule"] for f in findings} >= {"MSG-REQUIRED"}
    device = next(d for d in server.devices() if d["device_id"] == "127.0.0.1")
    assert device["polls"] == 2 and device["peer"].startswith("127.0.0.1:")
    assert set(server.engine.devices) == {"127.0.0.1"}


def _incoming(body: dict[str, Any]) -> Incoming:
    raw = json.dumps(body).encode()
    url = "http://127.0.0.1:1/taskRequest"
    return Incoming("taskRequest", "POST", "/taskRequest", url, "127.0.0.1:1", time.time(), {}, raw)


def test_exchanges_decided_in_one_turn_are_committed_together_before_any_answer(tmp_path: Path) -> None:
    platform = Platform(ServerConfig(db=tmp_path / "batch.db", time_scale=SCALE))
    try:
        rid = platform.enqueue("B0", example_for("server/tasks/getDevStatus"))

        async def turn() -> list[Any]:
            commits = platform.store.commits
            heard = [platform.hear(_incoming(poll_body(f"B{n}"))) for n in range(5)]
            futures = [platform.batch.answer(_incoming(poll_body(f"B{n}")), *h) for n, h in enumerate(heard)]
            assert not any(f.done() for f in futures), "an answer was ready before its commit"
            assert platform.store.scalar("SELECT COUNT(*) FROM exchanges") == 0
            replies = await asyncio.gather(*futures)
            assert platform.store.commits == commits + 1, "one transaction for the turn"
            return replies

        replies = asyncio.run(turn())
        assert [r.status for r in replies] == [200] * 5
        assert json.loads(replies[0].body)["request_id"] == rid
        assert all(json.loads(r.body)["request_type"] == "idleTime" for r in replies[1:])
        assert platform.store.scalar("SELECT COUNT(*) FROM exchanges") == 5
        assert platform.tasks("B0")[0]["state"] == "sent"
    finally:
        platform.close()


def test_a_decision_that_fails_is_answered_500_and_the_turn_goes_on(tmp_path: Path, monkeypatch: Any) -> None:
    platform = Platform(ServerConfig(db=tmp_path / "fail.db", time_scale=SCALE))
    decide = platform.decide

    def failing(incoming: Incoming, *rest: Any) -> Any:
        if b'"BAD"' in incoming.body:
            raise RuntimeError("a bug of ours")
        return decide(incoming, *rest)

    monkeypatch.setattr(platform, "decide", failing)
    try:

        async def turn() -> list[Any]:
            bodies = [poll_body("OK1"), poll_body("BAD"), poll_body("OK2")]
            futures = [platform.batch.answer(_incoming(b), *platform.hear(_incoming(b))) for b in bodies]
            return await asyncio.gather(*futures)

        replies = asyncio.run(turn())
        assert [r.status for r in replies] == [200, 500, 200]
        assert "a bug of ours" in json.loads(replies[1].body)["log"]
        stored = {(e["device_id"], e["status"]) for e in platform.exchanges()}
        assert stored == {("OK1", 200), ("127.0.0.1", 500), ("OK2", 200)}
        assert not platform.cond._is_owned(), "the platform's lock is let go after the turn"  # type: ignore[attr-defined]
    finally:
        platform.close()


def test_many_devices_share_commits_and_every_exchange_is_stored() -> None:
    """100 polls that are all there when the server's loop next looks: they are decided in one turn and
    committed together. (The loop is held while they are sent: sent as fast as a client can, a loaded
    machine let them arrive one a turn, one commit each, and the test failed on what it does not judge.)"""
    with MockServer(ServerConfig(time_scale=SCALE)) as srv:
        assert srv.platform.loop is not None
        commits = srv.platform.store.commits
        sent, held = threading.Event(), threading.Event()

        def hold() -> None:  # on the server's loop: nothing is accepted or read until all 100 are sent
            held.set()
            sent.wait(30)

        srv.platform.loop.call_soon_threadsafe(hold)
        assert held.wait(10)
        sockets = []
        try:
            for n in range(100):
                body = json.dumps(poll_body(f"F{n:03d}")).encode()
                head = (
                    f"POST /taskRequest HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                conn = socket.create_connection(("127.0.0.1", srv.port), timeout=30)  # the kernel's backlog
                conn.sendall(head.encode() + body)
                sockets.append(conn)
        finally:
            sent.set()
        answers = []
        for conn in sockets:
            with conn:
                answers.append(b"".join(iter(lambda c=conn: c.recv(65536), b"")))
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [
            a[:40] for a in answers if not a.startswith(b"HTTP/1.1 200")
        ]
        stored = [e for e in srv.exchanges() if e["endpoint"] == "taskRequest"]
        assert len(stored) == 100
        assert srv.platform.store.commits - commits < 10, "the exchanges of a turn share one transaction"


class _Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "value",
    [
        *(None, 7, 2**60, -(2**60), 2**53 - 1, -(2**53), 1.5, 1e25, math.nan, math.inf, "a\ud800b", "é – 中"),
        *([1, 2**54], {"k": [1, {"x": "\udfff"}]}, {1: 2}, {1.5: "x"}, {True: 1}, {2**60: 1}, (1, 2), {1, 2}),
        *(b"bytes", _Level.HIGH, "x" * 20 + "1234567890123456"),
    ],
    ids=repr,
)
def test_a_finding_is_stored_as_its_strict_json(value: Any) -> None:
    for finding in (
        Finding("MSG-TYPE", Severity.ERROR, "plain", expected=value, actual="x"),
        Finding("MSG-TYPE", Severity.WARNING, "message \ud801 é", expected=1, actual=value, note="n"),
    ):
        assert finding_json(finding) == to_json(finding.to_dict()).decode()


def test_a_lone_poll_takes_a_turn_of_the_loop_only_when_others_wait_to_run() -> None:
    """The turn that lets requests which came in together share a commit is skipped when the loop has nothing
    else to run (one device: answered a poll of the selector sooner); with others queued it is taken."""
    from facecert.mock_server.http_device import _others_ready

    async def look() -> tuple[bool, bool]:
        alone = _others_ready()
        asyncio.get_running_loop().call_soon(lambda: None)
        return alone, _others_ready()

    assert asyncio.run(look()) == (False, True)
