"""Profiles (strict / field) and protocol versions change verdicts, not facts."""

from __future__ import annotations

import json

import pytest

from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.examples import example_for
from facecert.core.model import Severity
from facecert.samples import ConversationBuilder


def judge(kind: str, body, **config) -> list:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return judge_message(Engine(EngineConfig(**config)), kind, raw)


def severities(findings, rule: str) -> set[str]:
    return {f.severity.value for f in findings if f.rule == rule}


def capture(**changes):
    body = example_for("device/faceRecognition")
    body.update(changes)
    return body


FIELD_DEPARTURES = [
    # (case, kind, body, rule)
    (
        "null optional capture fields",
        "faceRecognition",
        capture(user_id=None, user_name=None, comp_score=None),
        "MSG-TYPE",
    ),
    (
        "request_id echoed as a string",
        "taskResult",
        {**example_for("device/taskResult"), "request_id": "100002000"},
        "MSG-TYPE",
    ),
    ("idleTime with timestamp", "task", {"request_type": "idleTime", "timestamp": 1577690264}, "MSG-REQUIRED"),
    ("capture answered with another shape", "faceRecognition-answer", {"message": "ok"}, "MSG-REQUIRED"),
    (
        "capture answer without frpic_name",
        "faceRecognition-answer",
        {k: v for k, v in example_for("server/faceRecognitionAnswer").items() if k != "frpic_name"},
        "MSG-REQUIRED",
    ),
    ("empty 200 instead of idleTime", "task", b"", "MSG-EMPTY-BODY"),
    (
        "string request ids from servers",
        "task",
        {**example_for("server/tasks/deleteUser"), "request_id": "T_2"},
        "MSG-TYPE",
    ),
    (
        "setPlatformServer reply without device_id",
        "device/results/setPlatformServer",
        {"resp_type": "setPlatformServer", "request_id": 10002200, "code": 0, "log": "'setPlatformServer' success!"},
        "MSG-REQUIRED",
    ),
]


@pytest.mark.parametrize("case, kind, body, rule", FIELD_DEPARTURES, ids=[c[0] for c in FIELD_DEPARTURES])
def test_field_departure_is_an_error_in_strict_and_a_warning_in_field(case, kind, body, rule) -> None:
    strict = judge(kind, body, profile="strict")
    field = judge(kind, body, profile="field")
    assert "error" in severities(strict, rule), [f.line() for f in strict]
    assert severities(field, rule) == {"warning"}, [f.line() for f in field]
    assert not [f for f in field if f.severity is Severity.ERROR], [f.line() for f in field]
    assert all(f.note for f in field if f.rule == rule)


def test_null_in_a_required_field_stays_an_error_in_field() -> None:
    findings = judge("faceRecognition", capture(frpic_name=None), profile="field")
    assert "error" in severities(findings, "MSG-TYPE")


@pytest.mark.parametrize("profile", ["strict", "field"])
def test_vendor_extra_fields_are_never_errors(profile: str) -> None:
    body = {**example_for("device/taskRequest"), "device_ip": "192.168.1.10", "sign_tby": "0" * 32, "deviceID": "x"}
    findings = judge("taskRequest", body, profile=profile)
    assert {f.rule for f in findings} == {"MSG-UNKNOWN-FIELD"}
    assert {f.severity for f in findings} == {Severity.INFO}
    assert {f.pointer for f in findings} == {"/device_ip", "/sign_tby", "/deviceID"}


def test_stranger_capture_with_user_list_0_passes_strict() -> None:
    assert judge("faceRecognition", capture(user_list=0, user_id="")) == []


def test_v13_device_is_not_failed_for_later_fields() -> None:
    old = {
        k: v
        for k, v in example_for("device/faceRecognition").items()
        if k not in ("car_label", "car_type", "car_color", "eva_age", "eva_sex")
    }
    assert {f.rule for f in judge("faceRecognition", old)} == {"MSG-REQUIRED"}
    assert judge("faceRecognition", old, protocol_version="1.3") == []


def test_fields_after_the_version_are_unknown_not_wrong() -> None:
    findings = judge("faceRecognition", example_for("device/faceRecognition"), protocol_version="1.3")
    assert {f.rule for f in findings} == {"MSG-UNKNOWN-FIELD"}
    assert {f.pointer for f in findings} == {"/car_label", "/car_type", "/car_color", "/eva_age", "/eva_sex"}


def test_tasks_after_the_version_are_unknown() -> None:
    findings = judge("task", example_for("server/tasks/faceCmd"), protocol_version="1.3")
    assert [f.rule for f in findings] == ["TASK-UNKNOWN"]
    assert "1.7" in findings[0].message
    assert judge("task", example_for("server/tasks/faceCmd"), protocol_version="1.7") == []


def test_enum_values_after_the_version_are_refused() -> None:
    vehicle = example_for("device/deviceAlarm")
    vehicle.pop("device_ip")
    vehicle["alarm_type"] = 12
    assert {f.rule for f in judge("deviceAlarm", vehicle, protocol_version="1.3")} == {"MSG-ENUM"}
    vehicle["device_ip"] = "192.168.1.10"
    assert judge("deviceAlarm", vehicle, protocol_version="1.6") == []


def test_endpoint_after_the_version() -> None:
    builder = ConversationBuilder()
    builder._post("/gpsReport", example_for("device/gpsReport"), {"code": 0})
    engine = Engine(EngineConfig(protocol_version="1.2"))
    engine.feed(builder.exchanges[0])
    assert [f.rule for f in engine.findings if f.severity is Severity.ERROR] == ["ENDPOINT-NOT-IN-VERSION"]


def test_unknown_version_and_profile_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        Engine(EngineConfig(protocol_version="3.0"))
    with pytest.raises(ValueError, match="not a protocol version"):
        Engine(EngineConfig(protocol_version="abc"))
    with pytest.raises(ValueError, match="unknown profile"):
        Engine(EngineConfig(profile="lenient"))


def test_every_version_compiles_every_schema() -> None:
    """Every message schema at every version; a capability statement (schemas/capabilities) is
    not a message: it is judged against the whole contract, so at the latest version only."""
    contract = get_contract()
    for version in contract.versions:
        for name in contract.raw:
            if not name.startswith("capabilities/") or version == contract.latest:
                contract.validator(name, version)
