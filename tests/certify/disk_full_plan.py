"""Run by tests/certify/test_disk_full.py in a process of its own: the device plan (``--demo``, the
tags of argv[2]) in the report folder argv[1], with our server's store filled once the first scenario has
ended and freed once the second has, as a disk that fills and is freed would (every write refused in
between: ``PRAGMA max_page_count``, tests/server/test_disk_full.py). Prints the records as JSON lines."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from facecert.certify.device_session import DeviceRunConfig, DeviceSession
from facecert.certify.operator import Operator
from facecert.certify.runner import run_plan
from facecert.certify.verdicts import ScenarioRecord
from facecert.core.defaults import demo_time_scale
from tests.server.test_disk_full import fill, free


def main(report: Path, tags: str) -> None:
    session = DeviceSession(DeviceRunConfig(report=report, demo=True, port=0, time_scale=demo_time_scale()), Operator())
    session.start()
    try:
        session.wait_first_poll()

        def progress(record: ScenarioRecord, done: int, total: int) -> None:
            if done == 1:
                fill(session.server)
            elif done == 2:
                free(session.server)

        outcome = run_plan(session, "device", report, tags, progress)
    finally:
        session.stop()
    state: dict[str, Any] = dataclasses.asdict(session.server.platform.recording.state())
    print(json.dumps({"recording": state}))
    for record in outcome.records:
        print(
            json.dumps(
                {
                    "name": record.name,
                    "verdict": record.verdict.value,
                    "rules": list(record.rules),
                    "message": record.message,
                }
            )
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
