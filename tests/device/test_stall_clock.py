"""Our reference device held by the machine (SIGSTOP, as when another program takes the cores) while its
next poll falls due: the poll goes out late, and the server rightly sees it late; the judgement of the
device's own recording (``facecert device --judge``, tests/device/test_faults.py) tells a held process
from a late device by the stall clock it read beside each stamp (facecert.stalls): HARNESS-STALLED, a
warning, not CADENCE-IDLE. Before, a fresh clone on four workers failed test_faults' ``wrong-type``
knob on a CADENCE-IDLE of its own device (a poll 1.409 s after idleTime for 0.75-1.30 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from facecert.core.contract import get_contract
from facecert.mock_server import MockServer
from tests.support import FACECERT, SCALE, unique_id

IDLE_S = get_contract().timing["idle_interval_s"] * SCALE  # the device's poll interval after idleTime
STOPPED_S = 1.5 * IDLE_S  # longer than that interval: a poll falls due while the device is stopped


@pytest.mark.slow  # a fresh interpreter and a stop of 1.5 intervals
def test_a_device_held_by_the_machine_is_harness_stalled_not_late(server: MockServer) -> None:
    device_id = unique_id("held")
    proc = subprocess.Popen(
        [str(FACECERT), "device", "--server", server.url, "--id", device_id, "--time-scale", str(SCALE),
         "--duration", "6", "--judge"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        first = server.wait_for_poll(device_id, timeout=30)  # the interpreter's start, then its first poll
        server.wait_for_poll(device_id, timeout=30, after=first["last_poll"])  # in its idle cadence
        # the server stores a poll before it answers: a stop now would catch the device waiting for that answer
        # (its exchange then ends after the stop, and the next gap is on time). 0.3 of an interval on, the answer
        # is read and the next poll due inside the stop
        time.sleep(0.3 * IDLE_S)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(STOPPED_S)
        os.kill(proc.pid, signal.SIGCONT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.communicate()
    late_on_the_wire = any(f["rule"] == "CADENCE-IDLE" for f in server.findings(device_id=device_id))
    assert late_on_the_wire, "the server saw no late poll: the stop did not fall where a poll was due"
    assert "CADENCE-IDLE" not in out, out[-3000:]
    assert "HARNESS-STALLED" in out and proc.returncode == 0, out[-3000:]
