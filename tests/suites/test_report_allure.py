"""What a certification run gives Allure beyond the verdicts: the cadence chart
(gaps against the engine's windows) in the cadence scenarios, capture images
typed image/jpeg, and environment.properties naming the harness and the peer."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from facecert import __version__
from facecert.core.engine import Engine, EngineConfig
from facecert.core.rules.conversation import cadence_window
from facecert.reports.cadence_svg import cadence_svg, cadence_windows

pytestmark = pytest.mark.slow  # a certification run: make test-fast leaves it out

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = tmp_path_factory.mktemp("allure") / "device"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "facecert.cli",
            "certify",
            "device",
            "--demo",
            "--tags",
            "cadence or captures",
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return report


def _results(report: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in (report / "allure-results").glob("*-result.json")]


def _attachments(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(node.get("attachments", []))
    for step in node.get("steps", []):
        found.extend(_attachments(step))
    return found


def test_cadence_scenarios_carry_the_chart(run: Path) -> None:
    cadence = [r for r in _results(run) if r["titlePath"] == ["Polling cadence"]]
    assert len(cadence) == 2
    for result in cadence:
        charts = [a for a in _attachments(result) if a["type"] == "image/svg+xml"]
        assert [a["name"] for a in charts] == ["cadence chart"], result["name"]
        root = ET.parse(run / "allure-results" / charts[0]["source"]).getroot()
        assert {r.get("class") for r in root.iter(f"{SVG}rect") if r.get("class")} == {"band idle", "band task"}
        points = [c.get("class", "") for c in root.iter(f"{SVG}circle")]
        assert points and all(p.endswith(" ok") for p in points), points  # the reference device keeps time


def test_capture_image_is_the_redacted_tile_by_default(run: Path) -> None:
    """No face in the report (issue 13): the capture shows as a generated grey PNG tile; with
    --keep-personal-data it is the JPEG itself, typed image/jpeg (steps/device_steps.py)."""
    types = {a["type"] for r in _results(run) for a in _attachments(r) if a["name"].startswith("capture image")}
    assert types == {"image/png"}, types
    assert not any(a["type"] == "image/jpg" for r in _results(run) for a in _attachments(r))


def test_environment_names_harness_peer_and_versions(run: Path) -> None:
    lines = (run / "allure-results" / "environment.properties").read_text(encoding="utf-8").splitlines()
    env = dict(line.split("=", 1) for line in lines)
    assert env["harness_version"] == __version__
    assert env["profile"] == "strict" and env["protocol_version"] and float(env["time_scale"]) > 0
    assert env["device_id"] and env["server_url"].startswith("http://127.0.0.1:")
    declared = {k for k in env if k.startswith("device_versions.")}
    assert declared and all(env[k] for k in declared), env
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["html"], summary.get("html_error")


def test_chart_windows_are_the_engines() -> None:
    engine = Engine(EngineConfig(time_scale=0.05))
    windows = cadence_windows(engine)
    cfg = engine.config
    for kind, key in (("idle", "idle_interval_s"), ("task", "task_interval_s")):
        expected = cadence_window(engine.timing[key] * cfg.time_scale, cfg.tolerance, cfg.allowance_s, 0.0)
        assert (windows[kind]["low_s"], windows[kind]["high_s"]) == expected
    assert windows["idle"]["after"] == engine.contract.idle_task


def test_chart_marks_a_gap_outside_its_window() -> None:
    windows = cadence_windows(Engine(EngineConfig(time_scale=0.05)))
    idle, task = windows["idle"], windows["task"]
    gaps = [
        {"after": idle["after"], "gap_s": idle["nominal_s"]},
        {"after": idle["after"], "gap_s": idle["high_s"] * 2},  # too late after idleTime
        {"after": "getDevStatus", "gap_s": task["high_s"] + 0.5, "busy_s": 0.6},  # late, but busy that long
        {"after": "getDevStatus", "gap_s": task["low_s"] / 2},
    ]  # too early after a task
    root = ET.fromstring(cadence_svg(gaps, windows))
    assert [c.get("class") for c in root.iter(f"{SVG}circle")] == [
        "gap idle ok",
        "gap idle out",
        "gap task ok",
        "gap task out",
    ]
    assert len([line for line in root.iter(f"{SVG}line") if line.get("class") == "busy"]) == 1
