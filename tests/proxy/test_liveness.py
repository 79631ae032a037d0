"""What the proxy reports on its own, with no further traffic to trigger it:
a task's result deadline passing, a server that does not answer at all, and a
device that stopped polling."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from tests.proxy.conftest import Upstream, start_proxy, summary_of

pytestmark = pytest.mark.slow  # mitmdump processes: make test-fast leaves it out

SCALE = 0.01  # result deadline 120 s -> 1.2 s


def test_result_deadline_is_reported_live(upstream: Upstream, mitm_confdir: Path, tmp_path: Path) -> None:
    deadline = get_contract().timing["result_timeout_s"] * SCALE
    task = {**example_for("server/tasks/getDevStatus"), "request_id": 5_550_001}
    upstream.enqueue("/taskRequest", task)
    dump = start_proxy(upstream.url, mitm_confdir, tmp_path, facecert_time_scale=SCALE)
    try:
        poll = example_for("device/taskRequest")
        httpx.post(dump.url + "/taskRequest", content=json.dumps(poll), timeout=10)
        assert dump.wait_for_line("RESULT-MISSING", timeout=deadline * 4 + 2), "\n".join(dump.lines)
    finally:
        dump.stop()
    assert summary_of(tmp_path)["errors_by_rule"] == {"RESULT-MISSING": 1}  # once, not again at shutdown


def test_server_that_does_not_answer(mitm_confdir: Path, tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    dump = start_proxy(f"http://127.0.0.1:{port}", mitm_confdir, tmp_path)
    try:
        answer = httpx.post(
            dump.url + "/taskRequest", content=json.dumps(example_for("device/taskRequest")), timeout=10
        )
        assert answer.status_code == 502  # mitmproxy's own answer; the addon does not touch it
        assert dump.wait_for_line("ANSWER-MISSING", timeout=10)
    finally:
        dump.stop()
    summary = summary_of(tmp_path)
    assert summary["errors_by_rule"] == {"ANSWER-MISSING": 1}
    assert summary["addon_errors"] == 0


def test_a_device_that_stops_polling_is_reported_live_once(
    upstream: Upstream, mitm_confdir: Path, tmp_path: Path
) -> None:
    """Two polls at the idle pace, then silence: POLL-STOPPED from the proxy's timer, with no traffic."""
    scale = 0.05
    idle = get_contract().timing["idle_interval_s"] * scale
    dump = start_proxy(upstream.url, mitm_confdir, tmp_path, facecert_time_scale=scale)
    try:
        poll = json.dumps(example_for("device/taskRequest"))
        with httpx.Client(timeout=10) as client:
            client.post(dump.url + "/taskRequest", content=poll)
            time.sleep(idle)  # the pace of a correct device after idleTime (a CADENCE-IDLE-free second poll)
            client.post(dump.url + "/taskRequest", content=poll)
        assert dump.wait_for_line("POLL-STOPPED", timeout=idle * 6 + 2), "\n".join(dump.lines)
        assert any("last taskRequest at" in line for line in dump.lines)
    finally:
        dump.stop()
    assert summary_of(tmp_path)["errors_by_rule"] == {"POLL-STOPPED": 1}
