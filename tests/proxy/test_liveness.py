"""What the proxy reports on its own, with no further traffic to trigger it:
a task's result deadline passing, a server that does not answer at all, and a
device that stopped polling."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from tests.proxy.conftest import _serve, start_proxy, summary_of

pytestmark = pytest.mark.slow  # mitmdump processes: make test-fast leaves it out

SCALE = 0.01  # result deadline 120 s -> 1.2 s
own_upstream = contextmanager(_serve)  # tests/proxy/conftest.py's ``upstream``, one per probe


def result_deadline(mitm_confdir: Path, report: Path) -> None:
    with own_upstream() as upstream:
        deadline = get_contract().timing["result_timeout_s"] * SCALE
        task = {**example_for("server/tasks/getDevStatus"), "request_id": 5_550_001}
        upstream.enqueue("/taskRequest", task)
        dump = start_proxy(upstream.url, mitm_confdir, report, facecert_time_scale=SCALE)
        try:
            poll = example_for("device/taskRequest")
            httpx.post(dump.url + "/taskRequest", content=json.dumps(poll), timeout=10)
            assert dump.wait_for_line("RESULT-MISSING", timeout=deadline * 4 + 2), "\n".join(dump.lines)
        finally:
            dump.stop()
    assert summary_of(report)["errors_by_rule"] == {"RESULT-MISSING": 1}  # once, not again at shutdown


def server_that_does_not_answer(mitm_confdir: Path, report: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    dump = start_proxy(f"http://127.0.0.1:{port}", mitm_confdir, report)
    try:
        answer = httpx.post(
            dump.url + "/taskRequest", content=json.dumps(example_for("device/taskRequest")), timeout=10
        )
        assert answer.status_code == 502  # mitmproxy's own answer; the addon does not touch it
        assert dump.wait_for_line("ANSWER-MISSING", timeout=10)
    finally:
        dump.stop()
    summary = summary_of(report)
    assert summary["errors_by_rule"] == {"ANSWER-MISSING": 1}
    assert summary["addon_errors"] == 0


def device_that_stops_polling(mitm_confdir: Path, report: Path) -> None:
    """Two polls at the idle pace, then silence: POLL-STOPPED from the proxy's timer, with no traffic."""
    scale = 0.05
    idle = get_contract().timing["idle_interval_s"] * scale
    with own_upstream() as upstream:
        dump = start_proxy(upstream.url, mitm_confdir, report, facecert_time_scale=scale)
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
    assert summary_of(report)["errors_by_rule"] == {"POLL-STOPPED": 1}


def proxy_held_while_a_poll_came(mitm_confdir: Path, report: Path) -> None:
    """mitmdump stopped (SIGSTOP) while an on-time poll waits in its socket: the gap it measures is widened by
    the time it could not run (facecert.stalls), so no CADENCE-IDLE but a HARNESS-STALLED warning; the flows
    and the HAR keep the stall readings, so the HAR judged offline says the same."""
    from facecert.core.captures import read_capture
    from facecert.core.engine import EngineConfig
    from facecert.validate import judge_files

    with own_upstream() as upstream:
        dump = start_proxy(upstream.url, mitm_confdir, report, facecert_time_scale=0.05)  # idle answer: 1 s
        try:
            poll = json.dumps(example_for("device/taskRequest"))
            with httpx.Client(timeout=30) as client:
                client.post(dump.url + "/taskRequest", content=poll)
                answered = time.monotonic()
                time.sleep(0.85)
                os.kill(dump.pid, signal.SIGSTOP)
                try:
                    sent = threading.Thread(target=lambda: client.post(dump.url + "/taskRequest", content=poll))
                    while time.monotonic() - answered < 1.0:
                        time.sleep(0.005)
                    sent.start()  # on time
                    time.sleep(0.7)
                finally:
                    os.kill(dump.pid, signal.SIGCONT)
                sent.join(timeout=30)
        finally:
            dump.stop()
    summary = summary_of(report)
    assert "CADENCE-IDLE" not in summary["errors_by_rule"], summary["errors_by_rule"]
    assert [f["rule"] for f in summary["findings"]] == ["HARNESS-STALLED"], summary["findings"]
    har = report / "session.har"
    assert [e.stall_started > 0 for e in read_capture(har)] == [True, True]
    assert [f.rule for f in judge_files([har], EngineConfig(time_scale=0.05))[1]] == ["HARNESS-STALLED"]


PROBES: dict[str, Callable[[Path, Path], None]] = {
    "test_result_deadline_is_reported_live": result_deadline,
    "test_server_that_does_not_answer": server_that_does_not_answer,
    "test_a_device_that_stops_polling_is_reported_live_once": device_that_stops_polling,
    "test_a_poll_the_proxy_was_held_from_seeing_is_not_late": proxy_held_while_a_poll_came,
}


@pytest.fixture(scope="module")
def probes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[None]]]:
    """The probes of this session's tests at once, each its own mitmdump (and upstream), report folder and
    mitmproxy confdir (mitmdumps started together would race to write one CA): each waits on the proxy's
    own timers (a deadline, a server that does not answer, a silent device); an assertion that fails in a
    probe fails its test, when the test asks for it."""
    folder = tmp_path_factory.mktemp("liveness")
    tests = {item.name for item in request.session.items if getattr(item, "module", None) is request.module}
    wanted = [name for name in PROBES if name in tests]
    with ThreadPoolExecutor(max_workers=len(PROBES), thread_name_prefix="liveness") as pool:
        yield {name: pool.submit(PROBES[name], folder / name / "mitm", folder / name) for name in wanted}


def test_result_deadline_is_reported_live(probes: dict[str, Future[None]]) -> None:
    probes["test_result_deadline_is_reported_live"].result()


def test_server_that_does_not_answer(probes: dict[str, Future[None]]) -> None:
    probes["test_server_that_does_not_answer"].result()


def test_a_device_that_stops_polling_is_reported_live_once(probes: dict[str, Future[None]]) -> None:
    """Two polls at the idle pace, then silence: POLL-STOPPED from the proxy's timer, with no traffic."""
    probes["test_a_device_that_stops_polling_is_reported_live_once"].result()


def test_a_poll_the_proxy_was_held_from_seeing_is_not_late(probes: dict[str, Future[None]]) -> None:
    probes["test_a_poll_the_proxy_was_held_from_seeing_is_not_late"].result()
