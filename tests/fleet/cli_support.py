"""What the tests of ``facecert fleet`` share: the command run as a user runs it, and its report read back
(Locust's CSV and HTML beside fleet.json)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import facecert

FLEET_ENV = {"COLUMNS": "160", "PATH": "/usr/bin:/bin"}


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
