"""Play one scenario (tests/fleet/scenario.py) with the Locust driver, in a process of its own (importing
Locust patches the process with gevent): ``python -m tests.fleet.locust_harness SPEC.json OUT.json``.

The device is mock_device.locustfile's GeventDevice over a DeviceCore, sharing a DeviceProcess (HTTP pool,
bound on requests in flight, Locust request events) exactly as a Locust user's device does; the output is
what the device recorded (its exchanges, results, counters), read back as a Recording by the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust
from locust.env import Environment

from facecert.mock_device import locustfile
from facecert.mock_device.core import DeviceCore
from tests.fleet.scenario import config, exchange_to_json, play, poll_until


class GeventDriven:
    def __init__(self, device: locustfile.GeventDevice) -> None:
        self.device = device
        self.core = device.core

    def counters(self) -> dict[str, int]:
        return self.core.stats.counters()

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        return poll_until(predicate, timeout, gevent.sleep)

    def capture(self, kind: str) -> dict[str, Any]:
        return self.device.command(lambda now: self.core.capture_command(kind, now))

    def alarm(self, alarm_type: int) -> Any:
        return self.device.command(lambda now: self.core.alarm_command(alarm_type, 1, now))

    def gps_on(self) -> None:
        self.device._apply(self.core.gps_on(time.time()))


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    cfg = config(spec)
    environment = Environment(events=locust.events, host=spec["server"], parsed_options=argparse.Namespace())
    process = locustfile.DeviceProcess(environment)
    device = locustfile.GeventDevice(DeviceCore(cfg), process)
    life = gevent.spawn(device.run)
    gevent.sleep(0)
    missed = play(spec["steps"], GeventDriven(device), spec["timeout"])
    device.stop()
    life.join(5)
    core = device.core
    out = {
        "version": core.version,
        "exchanges": [exchange_to_json(e) for e in core.exchanges],
        "results": core.results,
        "stats": core.stats.counters(),
        "captures_made": core.captures_made,
        "missed": missed,
        "refused": core.refused,
        "log": core.log_text(),
        "peak_rss_mb": locustfile._peak_rss_mb(),
    }
    Path(sys.argv[2]).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
