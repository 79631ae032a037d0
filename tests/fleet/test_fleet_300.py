"""The issue's 300 devices on two Locust workers (``facecert fleet``), in a module of its own so that it
starts after the suite's first, busiest minutes (tests/conftest.py, AFTER_LONGEST): there the matrix, the
other fleets and the fuzzing job held both cores, a Locust worker went unscheduled for 100+ ms and the run
was made twice in every full run of 2026-12-03; alone, or beside the matrix only, it passed first time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facecert.mock_device.faults import FAULTS_BY_NAME
from facecert.mock_server import MockServer
from tests.fleet.cli_support import FLEET_SCALE, fleet, fleet_server, read_report


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MockServer]:
    """The fleets' server, at FLEET_SCALE (not the tests' time scale of tests/conftest.py's ``server``)."""
    yield from fleet_server(tmp_path)


def check_verdicts(data: dict[str, Any], knobs: tuple[str, ...]) -> None:
    """What holds however busy the machine was: every device has a verdict, a device without a knob broke
    no rule on its own clock and was served correctly, a device with a knob names exactly its knob's rule."""
    devices = data["devices"]
    assert len(devices) == 300 and data["summary"]["devices"] == 300
    faulty = {d: r for d, r in devices.items() if r["fault"]}
    assert len(faulty) == 30 and {r["fault"] for r in faulty.values()} == set(knobs)
    for device_id, record in devices.items():
        assert record["server_errors"] == {}, (device_id, record)
        if record["fault"] is None:
            assert record["errors"] == {}, (device_id, record)
        else:
            rule = FAULTS_BY_NAME[record["fault"]].rule
            assert record["verdict"] == "failed" and set(record["errors"]) == {rule}, (device_id, record)
        assert record["polls"] >= 20, (device_id, record)  # 30 s at one poll a second (faster with cadence-idle)
    assert sorted(data["meta"]["workers"]) == ["worker-0", "worker-1"]
    assert [w["devices"] for w in data["meta"]["workers"].values()] == [150, 150]


@pytest.mark.slow
def test_a_fleet_on_two_workers_gives_every_device_its_verdict(server: MockServer, tmp_path: Path) -> None:
    """The issue's "done when": master + 2 workers, 300 devices at time scale 0.05 for 30 s, 10 % with a
    fault knob (two knobs in turn: a message fault and a timing fault): every clean device is clean, every
    faulty one names its knob's rule, and Locust's report is in the folder.

    At time scale 0.05 a poll more than 112.5 ms late is outside the server's window, so the load generator
    must never lag that much. When another program takes this machine's CPU that long (the workers report
    it), the clean devices among those are rightly "generator-overloaded", and the run is no verdict (exit 2):
    then every other clean device is still checked clean. A faulty device driven late still fails by its
    knob's rule, as expected: late devices that are all faulty leave the run a verdict (exit 0). (Until
    2026-12-04 a lagged run was made once more: on two cores it lagged in most full runs, and the second run
    cost 35 s of a worker for the same checks.)"""
    knobs = ("missing-field", "cadence-idle")
    report = tmp_path / "fleet"
    done = fleet(
        "--server", server.url, "--devices", "300", "--workers", "2", "--time-scale", f"{FLEET_SCALE:g}",
        "--duration", "30", "--fault", knobs[0], "--fault", knobs[1], "--fault-share", "0.1",
        "--report", str(report), "--id-prefix", "DW", timeout=150,
    )  # fmt: skip
    data = read_report(report)
    check_verdicts(data, knobs)
    if data["summary"]["devices_late"]:
        workers = data["meta"]["workers"].values()
        print("the generator lagged:", [(w["stall_max_ms"], w["stall_cpu_ms"], w["lag_max_ms"]) for w in workers])
    assert "verdicts of 300 device(s)" in done.stdout
    devices = data["devices"]
    # the CPU was taken (CI, 2026-12-02: 233 ms, 0.2 ms used): a clean device driven late has no verdict; a
    # faulty one still fails by its knob's rule, as expected (2026-12-06: 5 late, all faulty, exit 0)
    if any(r["verdict"] == "generator-overloaded" for r in devices.values()):
        assert done.returncode == 2 and "no verdict:" in done.stdout, done.stdout[-4000:]
        clean = {"clean", "generator-overloaded"}
    else:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert data["summary"]["unexpected"] == []
        clean = {"clean"}
    assert all(r["verdict"] in clean for r in devices.values() if r["fault"] is None)
    faulty = {d: r for d, r in devices.items() if r["fault"]}
    for knob in knobs:  # the devices a rule names are those given its knob, and the server saw them break it
        rule = FAULTS_BY_NAME[knob].rule
        named = set(data["by_rule"][rule]["devices"])
        assert named == {d for d, r in faulty.items() if r["fault"] == knob} and len(named) >= 10
        seen = {f["device_id"] for f in server.findings(party="device") if f["rule"] == rule}
        assert named <= seen
