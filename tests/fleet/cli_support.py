"""What the tests of ``facecert fleet`` share: the command run as a user runs it, and its report read back
(Locust's CSV and HTML beside fleet.json)."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facecert.core.defaults import DEMO_TIME_SCALE
from facecert.mock_server import MockServer
from tests.support import facecert, new_server

FLEET_ENV = {"COLUMNS": "160", "PATH": "/usr/bin:/bin"}
# Locust fleets judged by their verdicts run at the demo's time scale (the figure for the 300 devices)
# whatever the tests' SCALE (FACECERT_DEMO_TIME_SCALE=0.025 halves it): a Locust worker the machine leaves
# unscheduled 100 ms makes its devices late beyond the 81 ms of slack at 0.025, within the 112.5 ms at 0.05.
FLEET_SCALE = DEMO_TIME_SCALE


def fleet_server(tmp_path: Path) -> Iterator[MockServer]:
    """A mock server of the test's own at the fleets' time scale, running: the body of a module's ``server``."""
    with new_server(tmp_path / "server", time_scale=FLEET_SCALE) as srv:
        yield srv


def fleet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``facecert fleet ARGS``, forked from the harness's fork server (tests/support.py): a fresh interpreter
    spent 0.5 CPU-s and, beside the other worker's certifications, 1-4 s on its imports per refusal."""
    return facecert("fleet", *args, timeout=timeout, env=FLEET_ENV)


def read_report(folder: Path) -> dict[str, Any]:
    """fleet.json, once Locust's own reports are checked to be beside it."""
    assert (folder / "locust.html").stat().st_size > 1000, "Locust's HTML report"
    with (folder / "locust_stats.csv").open(encoding="utf-8") as handle:
        names = {row["Name"] for row in csv.DictReader(handle)}
    assert {"taskRequest", "Aggregated"} <= names, names
    assert (folder / "locust_stats_history.csv").is_file() and (folder / "locust_failures.csv").is_file()
    data: dict[str, Any] = json.loads((folder / "fleet.json").read_text(encoding="utf-8"))
    return data
