"""One device behaviour, two drivers: the same scenarios played by the asyncio driver (mock_device.device)
and by the Locust driver (mock_device.locustfile, in a process of its own), judged the same way."""

from __future__ import annotations

import itertools
import json
import statistics

import pytest

from facecert.core.model import Severity
from facecert.core.rules.registry import RULES
from facecert.mock_device.faults import FAULTS_BY_NAME
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_device.messages import poll_body
from facecert.mock_server import MockServer
from tests.support import SCALE


def polls_of(recording):
    return [e for e in recording.exchanges if e.path.endswith("/taskRequest")]


def test_poll_body_and_cadence(drive, server: MockServer) -> None:
    rec = drive("poll", [{"wait": "idle", "at_least": 3}])
    polls = polls_of(rec)
    assert len(polls) >= 3
    first = json.loads(polls[0].request_body)
    expected = poll_body(rec.cfg, polls[0].started, rec.version)
    assert set(first) == set(expected)
    assert {k: first[k] for k in first if k != "time_stamp"} == {k: expected[k] for k in expected if k != "time_stamp"}
    assert abs(first["time_stamp"] - polls[0].started) < 2
    assert polls[0].method == "POST" and polls[0].request_content_type.startswith("application/json")
    stored = [e for e in server.exchanges(rec.cfg.device_id) if e["endpoint"] == "taskRequest"]
    assert stored and stored[0]["request_json"]["device_mac"] == rec.cfg.device_mac
    gaps = [b.started - a.ended for a, b in itertools.pairwise(polls)]
    assert statistics.mean(gaps) == pytest.approx(20 * SCALE, rel=0.1), gaps
    findings = judge_device(rec).findings
    assert not [f for f in findings if f.severity is not Severity.INFO], [f.line() for f in findings]
    assert not [f for f in server.findings(rec.cfg.device_id) if f["severity"] == "error"]


def test_a_task_carried_out_and_reported(drive, server: MockServer) -> None:
    label = f"task{drive.driver}"
    device_id = f"FT{label.upper()}"
    add = server.enqueue(
        device_id,
        {
            "request_type": "addUser",
            "user_list": [
                {
                    "user_id": "u1",
                    "user_info": {"name": "one"},
                    "image_type": "URL",
                    "image_content": server.asset_url("face.jpg"),
                }
            ],
        },
    )
    status = server.enqueue(device_id, {"request_type": "getDevStatus"})
    rec = drive(label, [{"wait": "results", "at_least": 2}, {"wait": "idle", "at_least": 1}], device_id=device_id)
    assert server.wait_for_result(add, 5)["code"] == 0
    assert server.wait_for_result(status, 5)["code"] == 0
    assert [r["total_face"] for r in rec.results if "total_face" in r] == [1]
    assert any(e.method == "GET" and e.url.endswith("face.jpg") and e.status == 200 for e in rec.exchanges)
    errors = device_errors(judge_device(rec).findings)
    assert not errors, [f.line() for f in errors]


KNOBS = [
    ("missing-field", []),  # a message fault, on every poll
    ("cadence-idle", [{"wait": "idle", "at_least": 3}]),  # a timing fault: the driver's timers carry it
    ("snaptime-ms", [{"capture": "face"}]),  # a capture made on command
]


@pytest.mark.parametrize(("knob", "steps"), KNOBS, ids=[k for k, _ in KNOBS])
def test_a_fault_knob_breaks_exactly_its_rule(knob: str, steps: list, drive) -> None:
    rec = drive(knob, [{"wait": "polls", "at_least": 2}, *steps, {"wait": "polls", "at_least": 3}], faults=[knob])
    rule = FAULTS_BY_NAME[knob].rule
    assert rule is not None and RULES[rule].severity is Severity.ERROR
    broken = {f.rule for f in device_errors(judge_device(rec).findings)}
    assert broken == {rule}


def test_gps_reports_along_the_route(drive) -> None:
    rec = drive("gps", [{"wait": "polls", "at_least": 1}, {"gps": True}, {"wait": "gps", "at_least": 3}])
    assert rec.stats["gps"] >= 3
    assert not device_errors(judge_device(rec).findings)
