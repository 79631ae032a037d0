"""The reference device against servers that behave like field servers (NOTES.md,
last section): one that needs the vendor extras (the `field` persona sends them),
one that re-sends a failed task forever (TASK-RESENT), and a server asking for a
log file by path (the device refuses it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from facecert.core.contract import get_contract
from facecert.mock_device import Device, DeviceConfig
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_device.persona import dress
from facecert.mock_device.tasks import BAD_PARAMETER
from facecert.mock_server import MockServer, ServerConfig
from tests.device.scenarios import more_polls, wait
from tests.support import SCALE, next_request_id, unique_id


@pytest.fixture
def field_server() -> Iterator[MockServer]:
    """A server of its own: misbehaviours are switched for the whole server."""
    with MockServer(ServerConfig(time_scale=SCALE)) as srv:
        yield srv


def device(srv: MockServer, label: str, **options: object) -> Device:
    return Device(DeviceConfig(server=srv.url, time_scale=SCALE, device_id=unique_id(label), **options))


def errors(srv: MockServer, device_id: str, party: str) -> set[str]:
    return {f["rule"] for f in srv.findings(device_id, party=party) if f["severity"] == "error"}


def test_the_field_persona_dresses_every_message_from_the_catalogue() -> None:
    extras = get_contract().vendor_extras
    for endpoint, fields in extras.items():
        assert set(fields) <= set(dress(endpoint, {"device_id": "X"}, "field"))
        assert dress(endpoint, {"device_id": "X"}, "spec") == {"device_id": "X"}
    sign = dress("taskRequest", {"device_id": "X"}, "field")["sign_tby"]
    assert len(sign) == 32 and int(sign, 16) >= 0
    with pytest.raises(ValueError, match="persona"):
        DeviceConfig(server="127.0.0.1:1", persona="vendor")


def test_a_server_that_needs_vendor_fields_fails_the_spec_device_and_serves_the_field_one(
    field_server: MockServer,
) -> None:
    field_server.set_misbehaviour("require_vendor_field")
    spec, field = device(field_server, "spec"), device(field_server, "field", persona="field")
    with spec, field:
        field_server.enqueue(field.cfg.device_id, {"request_type": "getDevStatus"})
        wait(field, lambda: field.stats.results >= 1 and field.stats.idle >= 1, "the field device's task and idle")
        field.capture_now("face")
        wait(spec, lambda: spec.stats.failures >= 2, "two refused polls of the spec device")
    assert errors(field_server, spec.cfg.device_id, "server") == {"ANSWER-HTTP-STATUS"}
    assert errors(field_server, field.cfg.device_id, "server") == set()
    unknown = {
        (f["endpoint"], f["pointer"])
        for f in field_server.findings(field.cfg.device_id)
        if f["rule"] == "MSG-UNKNOWN-FIELD"
    }
    for endpoint, fields in get_contract().vendor_extras.items():
        assert {(endpoint, f"/{name}") for name in fields} <= unknown, unknown  # info: reported, not failed
    results = [r for r in field_server.results(field.cfg.device_id)]
    assert results and isinstance(results[0]["body"]["request_id"], int)  # echoed with the server's type
    assert not device_errors(judge_device(field).findings)


def test_a_failed_task_resent_forever_is_task_resent(field_server: MockServer) -> None:
    field_server.set_misbehaviour("resend_failed_task")
    dev = device(field_server, "resent")
    field_server.enqueue(dev.cfg.device_id, {"request_type": "deleteUser", "user_id": "nobody-here"})
    with dev:
        wait(dev, lambda: dev.stats.task_failures >= 4, "four failed deleteUser")
    assert errors(field_server, dev.cfg.device_id, "server") == {"TASK-RESENT"}
    assert errors(field_server, dev.cfg.device_id, "device") == set()
    judged = judge_device(dev).findings
    assert {f.rule for f in judged if f.severity.value == "error"} == {"TASK-RESENT"}


def test_a_failed_task_retried_once_is_fine(server: MockServer, make_device) -> None:
    dev: Device = make_device("retry", start=False)
    for _ in range(2):
        server.enqueue(dev.cfg.device_id, {"request_type": "deleteUser", "user_id": "nobody-here"})
    dev.start()
    wait(dev, lambda: dev.stats.task_failures >= 2, "two failed deleteUser")
    more_polls(dev, 1)
    dev.stop()
    assert not [f for f in judge_device(dev).findings if f.rule == "TASK-RESENT"]
    assert not errors(server, dev.cfg.device_id, "server")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\u2215..\u2215etc\u2215passwd"])
def test_the_device_refuses_a_log_file_named_by_a_path(name: str, server: MockServer, make_device) -> None:
    dev: Device = make_device("logpath", start=False)
    rid = next_request_id()
    server.enqueue(dev.cfg.device_id, {"request_type": "getLogFile", "request_id": rid, "log_name": name}, raw=True)
    dev.start()
    wait(dev, lambda: bool(dev.results), "the getLogFile result")
    more_polls(dev, 1)
    dev.stop()
    result = dev.results[0]
    assert result["request_id"] == rid and result["code"] == BAD_PARAMETER and "log_info" not in result
    assert errors(server, dev.cfg.device_id, "server") == {"MSG-FORMAT"}  # the server sent a path
    assert not device_errors(judge_device(dev).findings)
