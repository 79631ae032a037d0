"""A poll the server was too held to see on time is not the device's fault (facecert.stalls).

The stall clock counts how long its process could not run. The test that matters stops a real
``facecert serve`` (SIGSTOP) while a device's on-time poll waits in the socket: before, the server
stamped the poll when it ran again and judged a correct device late (CADENCE-IDLE); now the gap is
widened by the time it was held, and a HARNESS-STALLED warning says so. A device late by itself,
with nobody held, still fails."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from facecert.core.engine import Engine, EngineConfig
from facecert.core.examples import example_for
from facecert.mock_device import Device, DeviceConfig
from facecert.mock_server import MockServer
from facecert.mock_server.store import read_exchanges
from facecert.stalls import NOISE, StallClock
from tests.server.helpers import poll_body

FACECERT = Path(sys.executable).parent / "facecert"
SCALE = 0.05  # idle interval 1 s, accepted 0.75-1.30 s


def test_the_clock_counts_a_held_interpreter_and_not_a_quiet_one() -> None:
    clock = StallClock().start()
    try:
        time.sleep(0.05)
        quiet = clock.read()
        time.sleep(0.4)  # every thread free to run
        assert clock.read() - quiet < 0.05
        before, started = clock.read(), time.monotonic()
        sum(range(40_000_000))  # one C call: the interpreter is held, no other thread runs meanwhile
        held = time.monotonic() - started
        counted = clock.read() - before
        assert held > 0.2, f"{held:.2f} s: not long enough to tell"
        assert 0.5 * held <= counted <= held + 0.05, (counted, held)
        readings = [clock.read() for _ in range(1000)]
        assert readings == sorted(readings)  # a clock: it never goes back
    finally:
        clock.stop()


def test_a_clock_not_started_reads_zero() -> None:
    assert StallClock().read() == 0.0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    argv = [str(FACECERT), "serve", "--host", "127.0.0.1", "--port", "0", "--time-scale", str(SCALE), "--quiet"]
    proc = subprocess.Popen(
        [*argv, "--db", str(tmp_path / "s.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            found = re.search(r"live page (http://127\.0\.0\.1:\d+)/", line)
            if found:
                url = found.group(1)
                break
        assert url, "facecert serve did not start"
        yield proc, url
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _rules(client: httpx.Client, device_id: str) -> list[tuple[str, str]]:
    found = client.get("/_admin/findings", params={"device_id": device_id}).json()
    return [(f["rule"], f["severity"]) for f in found]


def test_a_poll_the_server_was_held_from_seeing_is_not_late(serve: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = serve
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/taskRequest", json=poll_body("STALLED00000001")).json()["request_type"] == "idleTime"
        answered = time.monotonic()
        time.sleep(0.85)
        os.kill(proc.pid, signal.SIGSTOP)  # the server cannot run: the poll below waits in its socket
        try:
            sent = threading.Thread(
                target=lambda: client.post("/taskRequest", json=poll_body("STALLED00000001")), daemon=True
            )
            while time.monotonic() - answered < 1.0:
                time.sleep(0.005)
            sent.start()  # on time: 1.0 s after the idle answer
            time.sleep(0.7)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        sent.join(timeout=30)
        rules = _rules(client, "STALLED00000001")
        assert ("CADENCE-IDLE", "error") not in rules, rules
        assert ("HARNESS-STALLED", "warning") in rules, rules
        # the same gap with nobody held: the device itself was late
        client.post("/taskRequest", json=poll_body("LATEDEV00000001"))
        time.sleep(1.7)
        client.post("/taskRequest", json=poll_body("LATEDEV00000001"))
        assert ("CADENCE-IDLE", "error") in _rules(client, "LATEDEV00000001")


# ---- an answer the server held after stamping it (StallClock.held_since) ---------------------------------
def test_a_held_answer_counts_once_and_a_prompt_one_not_at_all() -> None:
    clock = StallClock().start()
    try:
        time.sleep(0.05)
        stamped = time.monotonic()
        clock.held_since(stamped - 0.001)  # within the noise: an ordinary answer
        before = clock.read()
        time.sleep(0.3)  # every thread free to run (on a loaded machine the clock's own oversleeps count too)
        clock.held_since(stamped)  # an answer sent 0.3 s after its stamp
        clock.held_since(stamped + 0.1)  # another, held over the same time: not counted again
        counted = clock.read() - before
        held = time.monotonic() - stamped
        assert 0.29 <= counted <= held + 0.001, (counted, held)
        later = clock.read()
        clock.held_since(stamped)  # the same answer told twice: counted once
        assert clock.read() - later < NOISE, clock.read() - later
    finally:
        clock.stop()


def test_a_stopped_clock_counts_no_hold_and_a_started_one_nothing_before_it() -> None:
    clock = StallClock()
    clock.held_since(time.monotonic() - 1.0)
    assert clock.read() == 0.0
    clock.start()
    try:
        clock.held_since(time.monotonic() - 86_400.0)  # a stamp from before the clock ran (a replayed flow)
        assert clock.read() < 0.05, clock.read()
    finally:
        clock.stop()


@contextmanager
def results_held(server: MockServer, seconds: float) -> Iterator[None]:
    """Every commit that stores a taskResult takes ``seconds`` longer (the disk or a lock slow to give way),
    on the loop like a slow commit: the result is stamped answered before it, and answered after it."""
    commit = server.platform._commit

    def slow(batch: list[Any]) -> None:
        if any(decided.endpoint == "taskResult" for decided in batch):
            time.sleep(seconds)
        commit(batch)

    server.platform._commit = slow  # type: ignore[method-assign]
    try:
        yield
    finally:
        server.platform._commit = commit  # type: ignore[method-assign]


def _task_then_poll(server: MockServer, device: Device, device_id: str) -> list[tuple[str, str]]:
    """One task for the device, its result, the poll after it; the device's findings, live and offline."""
    with device:
        server.wait_for_poll(device_id, 10)
        request_id = server.enqueue(device_id, example_for("server/tasks/getDevStatus"))
        result = server.wait_for_result(request_id, 10)
        server.wait_for_poll(device_id, 10, after=result["received"])
    live = [(f["rule"], f["severity"]) for f in server.findings(device_id)]
    offline = Engine(EngineConfig(time_scale=server.config.time_scale))  # the stored exchanges, judged again
    for exchange in read_exchanges(server.config.db):
        offline.feed(exchange)
    offline.finish()
    assert sorted((f.rule, f.severity.value) for f in offline.findings if f.device_id == device_id) == sorted(live)
    return live


def test_a_result_our_store_answered_late_is_not_the_devices_lateness(server: MockServer) -> None:
    """Our reference device polls the busy interval after it heard its result's answer; the server stamped
    that answer before its commit, which took 0.4 s. Before, the device was judged 0.4 s late (CADENCE-TASK
    on a correct device: a loaded test run found it); now the hold counts like a stall of the server."""
    scale = server.config.time_scale
    device = Device(DeviceConfig(server=server.url, device_id="HELDRESULT0001", time_scale=scale))
    with results_held(server, 0.4):
        rules = _task_then_poll(server, device, "HELDRESULT0001")
    assert ("CADENCE-TASK", "error") not in rules, rules
    assert ("HARNESS-STALLED", "warning") in rules, rules


def test_a_late_device_still_fails_beside_a_held_answer(server: MockServer) -> None:
    """The cadence-task knob polls 2.5 times the busy interval after its result: the window is widened by
    the 0.1 s hold, and no more."""
    scale = server.config.time_scale
    faults = {"cadence-task"}
    device = Device(DeviceConfig(server=server.url, device_id="HELDLATE000001", time_scale=scale, faults=faults))
    with results_held(server, 0.1):
        rules = _task_then_poll(server, device, "HELDLATE000001")
    assert ("CADENCE-TASK", "error") in rules, rules
