"""Fixtures of the fleet tests: a way to play one device scenario with either driver (asyncio here; Locust
in a process of its own) against tests/conftest.py's ``server``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from facecert.mock_device import Device
from facecert.mock_server import MockServer
from tests.fleet.scenario import Recording, config, exchange_from_json, play
from tests.support import SCALE, unique_id

ROOT = Path(__file__).resolve().parents[2]
# the Locust driver starts a process of its own (Locust and gevent imported: 1-2 CPU-s a test), so its half of
# each test is `slow`, out of make test-fast's edit-test loop (the asyncio half stays there)
DRIVERS = ("asyncio", pytest.param("locust", marks=pytest.mark.slow))


class AsyncioDriven:
    def __init__(self, device: Device) -> None:
        self.device = device

    def counters(self) -> dict[str, int]:
        return self.device.stats.counters()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return self.device.wait_until(predicate, timeout)

    def capture(self, kind: str) -> dict[str, Any]:
        return self.device.capture_now(kind)

    def alarm(self, alarm_type: int) -> Any:
        return self.device.alarm(alarm_type)

    def gps_on(self) -> None:
        self.device.gps_start()


def play_asyncio(spec: dict[str, Any]) -> Recording:
    device = Device(config(spec))
    with device:
        missed = play(spec["steps"], AsyncioDriven(device), spec["timeout"])
    return Recording(
        "asyncio",
        device.cfg,
        device.version,
        list(device.exchanges),
        list(device.results),
        device.stats.counters(),
        list(device.captures_made),
        missed,
        dict(device.refused),
        device.log_text(),
    )


def play_locust(spec: dict[str, Any], folder: Path) -> Recording:
    spec_file, out_file = folder / "spec.json", folder / "out.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tests.fleet.locust_harness", str(spec_file), str(out_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=spec["timeout"] * (len(spec["steps"]) + 1) + 60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(out_file.read_text(encoding="utf-8"))
    return Recording(
        "locust",
        config(spec),
        out["version"],
        [exchange_from_json(e) for e in out["exchanges"]],
        out["results"],
        out["stats"],
        out["captures_made"],
        out["missed"],
        out["refused"],
        out["log"],
        out["peak_rss_mb"],
    )


def driver_for(driver: str, default_server: str | None, folder: Path) -> Callable[..., Recording]:
    """``run(label, steps, **config)``: a scenario played by ``driver`` against ``server=`` (default: the
    given one), asserting that every wait was met."""

    def run(
        label: str,
        steps: list[dict[str, Any]],
        timeout: float = 8.0,
        server: str | None = None,
        **options: Any,
    ) -> Recording:
        options.setdefault("time_scale", SCALE)
        options.setdefault("device_id", unique_id(f"{driver[0]}{label}", prefix="F"))
        options["faults"] = sorted(options.get("faults", []))
        spec = {"server": server or default_server, "config": options, "steps": steps, "timeout": timeout}
        recording = play_asyncio(spec) if driver == "asyncio" else play_locust(spec, folder)
        assert not recording.missed, f"{recording.driver}: timed out waiting for {recording.missed}"
        return recording

    run.driver = driver
    return run


@pytest.fixture(params=DRIVERS)
def drive(request: pytest.FixtureRequest, server: MockServer, tmp_path: Path) -> Callable[..., Recording]:
    """``drive(label, steps, **config)``: the scenario played by this test's driver against ``server``."""
    return driver_for(request.param, server.url, tmp_path)


@pytest.fixture(params=DRIVERS)
def drive_any(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Recording]:
    """``drive_any(label, steps, server=URL, **config)``: the same, against a server the test brings."""
    return driver_for(request.param, None, tmp_path)
