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
from pathlib import Path

import httpx
import pytest

from facecert.stalls import StallClock
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
