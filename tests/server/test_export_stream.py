"""A session's HAR is written and sent as it is read, a page of exchanges at a time: ``/_admin/export.har``
read the whole session under the store's lock (every device's commit waited) and held it in memory twice
(rows, then text) before the first byte left; ``facecert export`` read every row at once. The pieces of
the HAR joined are exactly the HAR made whole."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
from pathlib import Path

import httpx

from facecert.core.captures.har import exchanges_to_har, har_text
from facecert.core.jsonsafe import dumps_strict
from facecert.core.model import Exchange
from facecert.mock_server import MockServer
from facecert.mock_server.store import EXPORT_PAGE, iter_exchanges
from facecert.samples import ConversationBuilder
from tests.support import new_server

BIG, COUNT = 200_000, 300  # 60 MB of request bodies in the session, ten export pages


def test_the_pieces_joined_are_the_har_made_whole() -> None:
    builder = ConversationBuilder()
    for _ in range(3):
        builder.cycle("server/tasks/getDevStatus")
        builder.idle()
    odd = Exchange("POST", "/taskRequest", b'{"device_id": "\\ud800"}', None, None, started=1.5, error="gone")
    judged_with = {"profile": "field", "time_scale": 0.05}
    for exchanges in (builder.exchanges, [odd]):
        whole = dumps_strict(exchanges_to_har(exchanges, "facecert test", judged_with))
        assert "".join(har_text(exchanges, "facecert test", judged_with)) == whole
    empty = json.loads("".join(har_text([], "facecert test", judged_with)))  # its page's time is the clock's
    made = exchanges_to_har([], "facecert test", judged_with)
    for har in (empty, made):
        har["log"]["pages"][0]["startedDateTime"] = "now"
    assert empty == made


def _fill(db: Path, count: int = COUNT, size: int = BIG) -> None:
    """``count`` exchanges of ``size`` bytes each, as a long session leaves them."""
    body = json.dumps({"device_id": "EXPORT000000001", "padding": "x" * size}).encode()
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO exchanges (idx, device_id, endpoint, method, path, url, peer, started, ended, status, "
            "request_headers, request_body, response_headers, response_body) VALUES "
            "(?, 'EXPORT000000001', 'taskRequest', 'POST', '/taskRequest', '', '127.0.0.1:9', ?, ?, 200, '{}', ?, "
            "'{}', ?)",
            [(n, 1000.0 + n, 1000.1 + n, body, b'{"code": 0}') for n in range(count)],
        )


def test_the_control_api_sends_a_long_session_in_the_memory_of_a_page(tmp_path: Path) -> None:
    server: MockServer = new_server(tmp_path / "server")
    server.start()
    try:
        _fill(server.config.db)
        out = tmp_path / "session.har"
        tracemalloc.start()
        try:
            with httpx.stream("GET", server.url + "/_admin/export.har", timeout=120) as answer, out.open("wb") as har:
                assert answer.status_code == 200
                for chunk in answer.iter_bytes():
                    har.write(chunk)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        server.stop()
    entries = json.loads(out.read_bytes())["log"]["entries"]
    assert len(entries) >= COUNT
    page, session = EXPORT_PAGE * BIG, COUNT * BIG
    assert peak < 4 * page, f"{peak / 2**20:.1f} MiB to send a session of {session / 2**20:.0f} MiB"


def test_an_export_ends_while_devices_keep_adding_exchanges(tmp_path: Path) -> None:
    # it sends the session as it was when it was asked for: before, each page asked for what came after the
    # last one sent, so a fleet writing faster than the client read kept the export going for ever
    server: MockServer = new_server(tmp_path / "server")
    server.start()
    try:
        _fill(server.config.db, count=2 * EXPORT_PAGE + 5, size=10)
        store, sent = server.platform.store, 0
        for _ in store.iter_exchanges():
            sent += 1
            if sent % 8 == 1:  # devices commit faster than the export is read
                _fill(server.config.db, count=EXPORT_PAGE, size=10)
            assert sent <= 10 * EXPORT_PAGE, "the export does not end"
        assert sent == 2 * EXPORT_PAGE + 5
        for _ in iter_exchanges(server.config.db):  # facecert export's reader: the same
            _fill(server.config.db, count=4, size=10)
            sent += 1
            assert sent <= 100 * EXPORT_PAGE, "facecert export does not end"
    finally:
        server.stop()


def test_an_exchange_whose_body_file_is_gone_is_exported_saying_so(tmp_path: Path) -> None:
    # a body above 1 MiB lives in a file of its own; one removed meanwhile cut the export off half sent
    server: MockServer = new_server(tmp_path / "server")
    server.start()
    try:
        _fill(server.config.db, count=3, size=10)
        with sqlite3.connect(server.config.db) as conn:
            conn.execute("UPDATE exchanges SET request_file = ?, request_body = NULL WHERE idx = 1", ("ab" * 16,))
        answer = httpx.get(server.url + "/_admin/export.har", timeout=60)
    finally:
        server.stop()
    assert answer.status_code == 200
    entries = answer.json()["log"]["entries"]
    assert len(entries) == 3 and "could not be read" in entries[1]["comment"]
    assert "comment" not in entries[0] and "comment" not in entries[2]
