"""The console's events are made off the event loop (mock_server/platform.py ``_announce``).

``facecert serve``'s console feed ``takes_factory``: the platform hands it the function that makes
an exchange's event, and the printer's thread calls it, so the findings' strict copies
(``Finding.to_dict``, ~15 µs a poll) are no work of the loop's. The function holds the few values
the event shows, never the exchange and its body (up to 20 MiB, kept until the line is printed)."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx

from facecert.core.model import Finding, Severity
from facecert.mock_server import MockServer
from facecert.mock_server.console_feed import exchange_line
from facecert.mock_server.platform import _exchange_event
from tests.server.helpers import poll_body


class _Factories:
    takes_factory = True

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.threads: set[int] = set()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self.threads.add(threading.get_ident())


def _reachable_bytes(factory: Callable[[], Any]) -> list[bytes]:
    assert isinstance(factory, functools.partial)
    return [value for value in (*factory.args, *factory.keywords.values()) if isinstance(value, (bytes, bytearray))]


def test_the_console_gets_the_event_factory_and_a_plain_listener_the_event(server: MockServer) -> None:
    lazy, plain = _Factories(), []
    server.platform.listeners.extend([lazy, plain.append])
    body = {**poll_body("LAZY1"), "device_name": "x" * 50_000}  # a big body must not be kept by the event
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for _ in range(2):  # the second poll comes too early: a CADENCE finding to show
            assert http.post("/taskRequest", json=body).status_code == 200
    assert len(lazy.items) == len(plain) == 2
    assert all(callable(item) for item in lazy.items), lazy.items  # not built on the loop
    assert threading.get_ident() not in lazy.threads  # handed over on the server's thread
    built = [item() for item in lazy.items]
    assert built == plain
    assert built[1]["device_id"] == "LAZY1" and built[1]["status"] == 200
    assert any(f["rule"].startswith("CADENCE") for f in built[1]["findings"]), built[1]
    assert all(not _reachable_bytes(item) for item in lazy.items)


def test_an_event_shows_a_finding_that_quotes_a_lone_surrogate_cleaned() -> None:
    finding = Finding("SCHEMA", Severity.ERROR, "bad key '\udfff'", pointer="/a\udfffb", actual=2**70)
    event = _exchange_event(7, "taskRequest", "POST", "/taskRequest", "D7", 200, (finding,))
    json.dumps(event, ensure_ascii=False, allow_nan=False).encode("utf-8")  # strict JSON data, valid UTF-8
    assert event["findings"][0]["message"] == "bad key '\ufffd'"
    line = exchange_line(event, markup=False)
    line.encode("utf-8")  # a console file can take it
    assert "SCHEMA" in line and "\ufffd" in line
