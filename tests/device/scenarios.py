"""Make a conversation contain what a fault needs to show (the knob table's
``scenario`` column), waiting on device events with deadlines derived from
the protocol intervals."""

from __future__ import annotations

import time

from facecert.mock_device import Device
from facecert.mock_device.messages import alarm_types, image_alarm_type
from facecert.mock_server import MockServer
from tests.support import GOOD_FIRMWARE, next_request_id


def deadline(dev: Device, intervals: float = 6) -> float:
    """A generous wait: this many idle intervals at the device's time scale, never under 3 s."""
    return max(3.0, intervals * dev.scaled("idle_interval_s"))


def wait(dev: Device, predicate, what: str, intervals: float = 6) -> None:
    assert dev.wait_until(predicate, deadline(dev, intervals)), f"timed out waiting for {what}: {dev.stats}"


def more_polls(dev: Device, count: int = 2) -> None:
    """Let the conversation go on for ``count`` polls (cross-message rules need them)."""
    target = dev.stats.polls + count
    wait(dev, lambda: dev.stats.polls >= target, f"{count} more polls")


TASK_FOR_SCENARIO = {
    "task": lambda srv: {"request_type": "getDevStatus"},
    "setDevTime": lambda srv: {"request_type": "setDevTime", "time_stamp": int(time.time()) + 86_400},
    "faceCmd": lambda srv: {"request_type": "faceCmd"},
    "download": lambda srv: {"request_type": "upgrade", "URL": srv.asset_url(GOOD_FIRMWARE)},
}


# server errors a scenario commits on purpose (the stimulus a knob reacts to), by scenario
STIMULUS_ERRORS = {"malformed-task": {"TASK-UNKNOWN"}}


def prepare(scenario: str, srv: MockServer, device_id: str) -> None:
    """Before the device starts: queue the task the scenario needs, so the first poll gets it."""
    if scenario in TASK_FOR_SCENARIO:
        srv.enqueue(device_id, TASK_FOR_SCENARIO[scenario](srv))


def drive(scenario: str, srv: MockServer, dev: Device) -> None:
    """After ``prepare`` and ``dev.start()``: make the rest happen and let the conversation go on."""
    wait(dev, lambda: dev.stats.polls >= 1, "the first poll")
    if scenario == "poll":
        more_polls(dev, 1)
    elif scenario == "idle":
        wait(dev, lambda: dev.stats.idle >= 2, "two idleTime answers")
        more_polls(dev, 1)
    elif scenario in TASK_FOR_SCENARIO:
        wait(dev, lambda: dev.stats.tasks >= 1, f"the device to take its {scenario} task")
        more_polls(dev, 2)
    elif scenario == "capture":
        dev.capture_now("face")
        more_polls(dev, 1)
    elif scenario == "alarm":
        plain = [t for t in alarm_types(dev.version) if t != image_alarm_type()]
        dev.alarm(plain[0])
        more_polls(dev, 1)
    elif scenario == "gps":
        dev.gps_start()
        wait(dev, lambda: dev.stats.gps >= 3, "three GPS reports")
    elif scenario == "outage":
        outage(srv, dev, captures=3)
    elif scenario == "malformed-task":
        malformed_task(srv, dev)
    else:
        raise ValueError(f"no driver for scenario {scenario!r}")


def malformed_task(srv: MockServer, dev: Device) -> None:
    """Two idle polls (a rhythm), a task the device must refuse, then until the live server sees the
    device stop (POLL-STOPPED) or two more polls come; a capture last shows the device still alive."""
    wait(dev, lambda: dev.stats.idle >= 2, "two idleTime answers")
    srv.enqueue(dev.cfg.device_id, {"request_type": "rebootEverything", "request_id": next_request_id()}, raw=True)
    wait(dev, lambda: bool(dev.results), "the refusal of the unknown task")
    polls = dev.stats.polls

    def stopped_or_polling() -> bool:
        return dev.stats.polls >= polls + 2 or any(f["rule"] == "POLL-STOPPED" for f in srv.findings(dev.cfg.device_id))

    srv.platform.wait_for(stopped_or_polling, deadline(dev), "a stop or two more polls")
    dev.capture_now("face")


def outage(srv: MockServer, dev: Device, captures: int) -> list[dict]:
    """Captures made while the server refuses everything, then the server comes back."""
    srv.set_fault("outage", device_id=dev.cfg.device_id)
    made = [dev.capture_now("face") for _ in range(captures)]
    srv.clear_faults()
    wait(dev, lambda: len(dev.spool) == 0, "the spool to drain", intervals=10)
    more_polls(dev, 1)
    return made
