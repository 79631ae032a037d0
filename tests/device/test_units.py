"""The device's parts on their own: firmware format, messages per protocol
version, configuration errors."""

from __future__ import annotations

import random

import pytest

from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.model import Severity
from facecert.mock_device import DeviceConfig, mac_for
from facecert.mock_device.firmware import FirmwareError, build_firmware, verify_firmware
from facecert.mock_device.media import capture_jpeg, check_image, tiny_png
from facecert.mock_device.messages import CAPTURE_KINDS, alarm_body, alarm_types, capture_body, encode, poll_body

VERSIONS = get_contract().versions


def test_firmware_round_trip_and_every_way_to_break_it() -> None:
    image = build_firmware("3.1.4", b"x" * 64)
    assert verify_firmware(image) == "3.1.4"
    broken = {
        "wrong magic": b"NOTFW000" + image[8:],
        "truncated": image[:20],
        "corrupt payload": image[:-1] + b"y",
        "empty": b"",
    }
    for why, data in broken.items():
        with pytest.raises(FirmwareError):
            verify_firmware(data)
            pytest.fail(f"accepted a firmware image with {why}")


def test_images() -> None:
    assert check_image(capture_jpeg(1), "image/jpeg") is None
    assert check_image(tiny_png(), "image/png") is None
    assert "PNG" in (check_image(tiny_png(), "image/jpeg") or "")
    assert check_image(b"not an image", "image/png")


@pytest.mark.parametrize("version", VERSIONS)
def test_messages_are_valid_in_every_version(version: str) -> None:
    engine = Engine(EngineConfig(protocol_version=version))
    cfg = DeviceConfig(server="127.0.0.1:1", protocol_version=version)
    rng = random.Random(1)
    bodies = [("taskRequest", poll_body(cfg, 1_700_000_000.5, version))]
    bodies += [
        ("faceRecognition", capture_body(cfg, 1_700_000_000.25, n, kind, None, version, rng))
        for n, kind in enumerate(CAPTURE_KINDS)
    ]
    bodies += [("deviceAlarm", alarm_body(cfg, 1_700_000_000, t, 1, version)) for t in alarm_types(version)]
    for kind, body in bodies:
        found = [f for f in judge_message(engine, kind, encode(body)) if f.severity is not Severity.INFO]
        assert not found, (kind, [f.line() for f in found])
        unknown = [f for f in judge_message(engine, kind, encode(body)) if f.rule == "MSG-UNKNOWN-FIELD"]
        assert not unknown, (kind, [f.pointer for f in unknown])


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        DeviceConfig(server="127.0.0.1:1", faults={"no-such-knob"})
    with pytest.raises(ValueError):
        DeviceConfig(server="127.0.0.1:1", time_scale=0)
    assert DeviceConfig(server="127.0.0.1:9/x/").server == "http://127.0.0.1:9/x"


def test_fleet_macs_are_distinct_and_valid() -> None:
    macs = {mac_for(n) for n in range(5000)}
    assert len(macs) == 5000
    assert all(len(m) == 17 for m in macs)
