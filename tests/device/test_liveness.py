"""POLL-STOPPED through the real peers: the reference device against the real
mock server, whose deadline timer reports a stop live (and only a stop)."""

from __future__ import annotations

import time

from facecert.mock_device import Device
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_server import MockServer
from tests.device.scenarios import malformed_task, wait


def stops(server: MockServer, device_id: str) -> list[dict]:
    return [f for f in server.findings(device_id) if f["rule"] == "POLL-STOPPED"]


def test_a_correct_device_is_never_judged_stopped(server: MockServer, make_device) -> None:
    """Idle cycles and a task at time scale 0.05, with the server's timer looking all along."""
    dev: Device = make_device("alive")
    wait(dev, lambda: dev.stats.idle >= 2, "two idleTime answers")
    server.enqueue(dev.cfg.device_id, {"request_type": "getDevStatus"})
    wait(dev, lambda: dev.stats.idle >= 5, "three more idle cycles after a task")
    server.check_deadlines()
    assert stops(server, dev.cfg.device_id) == []
    last = server.engine.last_poll(dev.cfg.device_id)
    due = server.engine.poll_due(dev.cfg.device_id)  # read second: a poll in between only moves it later
    assert last is not None and due is not None and due >= last + server.engine.longest_wait() - 1e-6
    dev.stop()
    assert not device_errors(judge_device(dev).findings)


def test_a_device_that_stops_after_a_malformed_task_is_reported_once_live(server: MockServer, make_device) -> None:
    dev: Device = make_device("stops", faults={"stop-after-malformed-task"})
    malformed_task(server, dev)
    found = stops(server, dev.cfg.device_id)
    assert len(found) == 1, server.findings(dev.cfg.device_id)
    assert found[0]["party"] == "device" and "the device stopped polling: last taskRequest at" in found[0]["message"]
    assert server.engine.poll_stopped(dev.cfg.device_id) is not None
    polls = dev.stats.polls
    for later in (1.0, 5.0, 30.0):  # the timer's later ticks, without waiting for them
        server.check_deadlines(time.time() + later)
    assert len(stops(server, dev.cfg.device_id)) == 1  # once per stop, not on every tick
    assert dev.stats.polls == polls and server.captures(dev.cfg.device_id)  # alive, not polling
