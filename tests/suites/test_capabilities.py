"""Capability statements through the plan: `facecert certify ... --demo --capabilities FILE`
against the reference peers, with statements that omit, overstate and understate what
they do (a statement that overstates is the peer breaking CAP-DECLARED-MISSING; one that
understates breaks CAP-UNDECLARED). A few runs at once: the plans mostly wait."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from facecert.certify.capabilities import enum_from, load_statement, template, undeclared
from facecert.mock_server.store import read_exchanges
from tests.support import facecert

pytestmark = pytest.mark.slow  # a certification run per capability statement: make test-fast leaves it out

TASKS = enum_from("catalogue tasks")
OMITS = {"statement": "device", "protocol_version": "2.0", "tasks": ["getDevStatus"], "gps": False}
FULL = yaml.safe_load(template("device"))
QUIET = {**FULL, "vendor_extensions": {}}  # understates: the vendor-fields knob adds device_ip and sign_tby
SERVER_OMITS = {"statement": "server", "protocol_version": "2.0", "tasks": ["getDevStatus"]}


@dataclass(frozen=True)
class Case:
    name: str
    party: str
    tags: str
    statement: dict[str, Any] | None
    extra: tuple[str, ...] = ()


CASES = [
    Case("omits", "device", "gps or clock or alarms", OMITS),
    Case("overstates", "device", "gps or clock", FULL, ("--fault", "no-gps", "--fault", "refuse-dev-status")),
    Case("understates", "device", "first_contact", QUIET, ("--fault", "vendor-fields")),
    Case("none", "device", "gps or clock", None),
    Case("server-omits", "server", "tasks and not robustness", SERVER_OMITS),
]


@dataclass
class Run:
    returncode: int
    output: str
    summary: dict[str, Any]
    report: Path
    statement: Path | None


def _run(case: Case, folder: Path) -> Run:
    report = folder / case.name
    command = [
        "certify",
        case.party,
        "--demo",
        "--no-html",
        "--tags",
        case.tags,
        "--report",
        str(report),
        *case.extra,
    ]
    statement = None
    if case.statement is not None:
        statement = folder / f"{case.name}.yaml"
        statement.write_text(yaml.safe_dump(case.statement), encoding="utf-8")
        command += ["--capabilities", str(statement)]
    done = facecert(*command)
    path = report / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return Run(done.returncode, (done.stdout + done.stderr)[-3000:], summary, report, statement)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every statement's certification, four at a time (the plans mostly wait on protocol time)."""
    folder = tmp_path_factory.mktemp("capabilities")
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="capabilities") as pool:
        return dict(zip((c.name for c in CASES), pool.map(lambda c: _run(c, folder), CASES), strict=True))


def _scenarios(run: Run) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run.summary["scenarios"]}


def _cap_findings(run: Run) -> list[dict[str, Any]]:
    return [f for f in run.summary["findings"] if f["rule"].startswith("CAP-")]


def test_scenarios_outside_the_statement_are_not_applicable_with_the_capability_named(runs: dict[str, Run]) -> None:
    run = runs["omits"]
    assert run.returncode == 0 and run.summary["verdict"] == "certified", run.output
    scenarios = _scenarios(run)
    gps = scenarios["GPS reports follow the 5 s / 20 m rule"]
    assert gps["verdict"] == "not_applicable" and "does not declare gps" in gps["message"]
    log = scenarios["getLogFile returns the device log"]
    assert log["verdict"] == "not_applicable" and "task=getLogFile" in log["message"]
    alarms = [s for name, s in scenarios.items() if name.startswith("Alarm type")]
    assert len(alarms) == 3 and all(s["verdict"] == "not_applicable" and "alarm=" in s["message"] for s in alarms)
    assert {s["message"].split("declare ")[1].split(" ")[0] for s in alarms} == {"alarm=0", "alarm=1", "alarm=12"}
    assert scenarios["getDevStatus reports counts and versions"]["verdict"] == "pass"
    assert _cap_findings(run) == []  # nothing undeclared happened: the GPS scenario never asked for GPS


def test_the_statement_hash_is_in_the_summary_the_manifest_and_beside_the_report(runs: dict[str, Run]) -> None:
    run = runs["omits"]
    assert run.statement is not None
    digest = hashlib.sha256(run.statement.read_bytes()).hexdigest()
    assert run.summary["capabilities_sha256"] == digest
    manifest = json.loads((run.report / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["predicate"]["capabilities_sha256"] == digest
    assert hashlib.sha256((run.report / "capabilities.yaml").read_bytes()).hexdigest() == digest
    assert "capabilities.yaml" in {s["name"] for s in manifest["subject"]}


def test_a_statement_that_overstates_fails_with_cap_declared_missing(runs: dict[str, Run]) -> None:
    run = runs["overstates"]
    assert run.returncode == 1 and run.summary["verdict"] == "not certified", run.output
    scenarios = _scenarios(run)
    gps = scenarios["GPS reports follow the 5 s / 20 m rule"]
    assert gps["verdict"] == "fail" and gps["rules"][:2] == ["CAP-DECLARED-MISSING", "GPS-MISSING"]
    assert "declares gps" in gps["message"]
    status = scenarios["getDevStatus reports counts and versions"]
    assert status["verdict"] == "fail" and status["rules"][:2] == ["CAP-DECLARED-MISSING", "TASK-NOT-DONE"]
    assert "declares task=getDevStatus" in status["message"] and "202" in status["message"]
    assert scenarios["getLogFile returns the device log"]["verdict"] == "pass"  # delivered: no blame
    assert "CAP-DECLARED-MISSING" in {c["rule"] for c in run.summary["root_causes"]}


def test_a_statement_that_understates_warns_cap_undeclared(runs: dict[str, Run]) -> None:
    run = runs["understates"]
    assert run.summary["verdict"] == "certified", run.output  # a warning: reported, not failed
    found = _cap_findings(run)
    assert found and all(f["rule"] == "CAP-UNDECLARED" and f["severity"] == "warning" for f in found)
    assert {"device_ip", "sign_tby"} <= {f["message"].split(" carries ")[1].split(",")[0] for f in found}


def test_gps_from_a_device_declaring_none_is_cap_undeclared(runs: dict[str, Run], tmp_path: Path) -> None:
    """The reference device reports its position only when the plan asks, and a statement without GPS
    makes that scenario not_applicable: the undeclared GPS is judged on the exchanges of the run
    that had no statement (the device did report its position there)."""
    run = runs["none"]
    path = tmp_path / "no-gps.yaml"
    path.write_text(yaml.safe_dump({**FULL, "gps": False}), encoding="utf-8")
    found = undeclared(load_statement(path, "device"), read_exchanges(run.report / "session.db"))
    assert [f["endpoint"] for f in found] == ["gpsReport"] and "declares no GPS" in found[0]["message"]
    full = tmp_path / "full.yaml"
    full.write_text(yaml.safe_dump(FULL), encoding="utf-8")
    assert undeclared(load_statement(full, "device"), read_exchanges(run.report / "session.db")) == []


def test_without_a_statement_everything_applies(runs: dict[str, Run]) -> None:
    run = runs["none"]
    assert run.returncode == 0 and run.summary["verdict"] == "certified", run.output
    assert run.summary["counts"]["not_applicable"] == 0 and run.summary["capabilities_sha256"] is None
    assert _cap_findings(run) == [] and not (run.report / "capabilities.yaml").exists()


def test_a_server_statement_makes_undeclared_tasks_not_applicable(runs: dict[str, Run]) -> None:
    run = runs["server-omits"]
    assert run.returncode == 0 and run.summary["verdict"] == "certified", run.output
    scenarios = _scenarios(run)
    outline = {name: s for name, s in scenarios.items() if name.startswith("The server sends a valid")}
    assert len(outline) == len(TASKS) - 1  # setPlatformServer is not in the server plan's outline
    for name, scenario in outline.items():
        expected = "pass" if "getDevStatus" in name else "not_applicable"
        assert scenario["verdict"] == expected, (name, scenario)
    assert all("task=" in s["message"] for s in outline.values() if s["verdict"] == "not_applicable")


@pytest.mark.parametrize(
    ("party", "body", "says"),
    [
        ("device", {"statement": "server", "protocol_version": "2.0", "tasks": []}, "is a server statement"),
        ("device", {"statement": "device", "protocol_version": "2.0", "tasks": ["rebootDevice"]}, "rebootDevice"),
        ("device", {"statement": "device", "protocol_version": "2.0", "tasks": [], "alarm_types": [99]}, "alarm_types"),
        ("server", "- not a mapping", "/"),
    ],
)
def test_an_unusable_statement_is_one_line_and_exit_2(party: str, body: Any, says: str, tmp_path: Path) -> None:
    path = tmp_path / "caps.yaml"
    path.write_text(yaml.safe_dump(body) if isinstance(body, dict) else body, encoding="utf-8")
    done = facecert(
        "certify",
        party,
        "--demo",
        "--no-html",
        "--capabilities",
        str(path),
        "--report",
        str(tmp_path / "r"),
        timeout=60,
    )
    assert done.returncode == 2 and says in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "r").exists()


def test_the_template_is_a_statement_declaring_the_whole_contract(tmp_path: Path) -> None:
    for party in ("device", "server"):
        done = facecert("capabilities", "template", f"--{party}", timeout=60)
        assert done.returncode == 0, done.stderr
        path = tmp_path / f"{party}.yaml"
        path.write_text(done.stdout, encoding="utf-8")
        statement = load_statement(path, party)
        assert statement.data["tasks"] == TASKS and done.stdout.startswith("#")
    device = yaml.safe_load(template("device"))
    assert device["image_fields"] == enum_from("capture image fields") and 12 in device["alarm_types"]
    done = facecert("capabilities", "template", timeout=60)
    assert done.returncode == 2
