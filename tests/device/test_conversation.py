"""A clean device is clean: zero findings under strict, on both sides, with
the cadence measured by the engine at time scale 0.05."""

from __future__ import annotations

import itertools
import statistics

import pytest

from facecert.core.contract import get_contract
from facecert.core.model import Severity
from facecert.mock_device import Device
from facecert.mock_device.judge import judge_device
from facecert.mock_device.messages import alarm_types
from facecert.mock_server import MockServer
from facecert.stalls import stall_clock
from tests.device.scenarios import wait


def test_clean_device_has_no_findings(server: MockServer, make_device) -> None:
    dev: Device = make_device("clean", start=False, captures_per_minute=120)
    device_id = dev.cfg.device_id
    for task in (
        {"request_type": "getDevStatus"},
        {"request_type": "faceCmd"},
        {"request_type": "setDevTime", "time_stamp": 1_900_000_000},
    ):
        server.enqueue(device_id, task)
    dev.start()
    dev.gps_start()
    for alarm_type in alarm_types(dev.version):
        dev.alarm(alarm_type)
    wait(
        dev,
        lambda: dev.stats.results >= 3 and dev.stats.idle >= 3 and dev.stats.gps >= 3,
        "tasks, idle polls, GPS",
        intervals=8,
    )
    dev.stop()

    findings = judge_device(dev).findings
    mine = [f for f in findings if f.party == "device" and f.severity is not Severity.INFO]
    assert not mine, "\n".join(f.line() for f in mine)
    assert not [f for f in findings if f.rule.startswith("CADENCE")]
    on_server = [f for f in server.findings(device_id, party="device") if f["severity"] == "error"]
    assert not on_server, on_server
    assert dev.stats.captures_sent >= 1 and len(server.alarms()) >= len(alarm_types(dev.version))


def test_cadence_measured_within_tolerance(server: MockServer, make_device) -> None:
    """The device's gaps average its intervals. A gap is measured late by the time this process (device and
    server alike) could not run, as the stall clock counts it: the mean may be late by that much, spread over
    the gaps (the engine widens a cadence window the same way, facecert.stalls), never early."""
    dev: Device = make_device("cadence", start=False)
    for _ in range(3):
        server.enqueue(dev.cfg.device_id, {"request_type": "getDevStatus"})
    held = stall_clock().read()
    dev.start()
    wait(dev, lambda: dev.stats.idle >= 3, "three idle polls", intervals=8)
    dev.stop()
    held = stall_clock().read() - held
    polls = [ex for ex in dev.exchanges if ex.path.endswith("/taskRequest")]
    results = {ex.started: ex for ex in dev.exchanges if ex.path.endswith("/taskResult")}
    idle_gaps, task_gaps = [], []
    for before, after in itertools.pairwise(polls):
        kind = (before.response_body or b"").decode()
        if "idleTime" in kind:
            idle_gaps.append(after.started - before.ended)
        else:
            done = max(ex.ended for at, ex in results.items() if before.ended <= at <= after.started)
            task_gaps.append(after.started - done)
    for gaps, nominal, rel in (
        (idle_gaps, dev.scaled("idle_interval_s"), 0.1),
        (task_gaps, dev.scaled("task_interval_s"), 0.15),
    ):
        mean = statistics.mean(gaps)
        assert nominal * (1 - rel) <= mean <= nominal * (1 + rel) + held / len(gaps), (gaps, nominal, held)
    assert not [f for f in judge_device(dev).findings if f.rule.startswith("CADENCE")]


@pytest.mark.parametrize("version", ["1.0", "1.2.3", "1.8"])
def test_older_protocol_versions_are_clean(version: str, server: MockServer, make_device) -> None:
    dev: Device = make_device(f"v{version}", protocol_version=version)
    wait(dev, lambda: dev.stats.polls >= 1, "a poll")
    dev.capture_now("vehicle")
    for alarm_type in alarm_types(version):
        dev.alarm(alarm_type)
    dev.gps_start()
    wait(dev, lambda: dev.stats.polls >= 2, "a second poll")
    dev.stop()
    findings = [f for f in judge_device(dev).findings if f.party == "device" and f.severity is not Severity.INFO]
    assert not findings, "\n".join(f.line() for f in findings)
    if "gpsReport" not in get_contract().endpoints(version):
        assert dev.stats.gps == 0, "GPS stays off where the endpoint does not exist"
