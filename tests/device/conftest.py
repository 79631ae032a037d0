"""Fixtures of the device tests: a real mock server on 127.0.0.1 and devices
that are always stopped, even when a test fails."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facecert.mock_device import Device, DeviceConfig
from facecert.mock_device.firmware import build_firmware
from facecert.mock_server import MockServer, ServerConfig

SCALE = 0.05  # every protocol interval × 0.05: idle 1 s, task 0.25 s
GOOD_FIRMWARE = "sim-firmware.bin"
FIRMWARE_VERSION = "2.0.0_SIM_V2.0(upgraded)"
_ids = itertools.count(1)


def unique_id(label: str) -> str:
    return f"T{next(_ids):04d}{label.upper().replace('-', '')[:10]}"


def make_assets(folder: Path) -> Path:
    """The server's download folder plus a valid simulator firmware image."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / GOOD_FIRMWARE).write_bytes(build_firmware(FIRMWARE_VERSION, b"payload" * 100))
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    assets = make_assets(tmp_path_factory.mktemp("assets"))
    with MockServer(ServerConfig(time_scale=SCALE, assets=assets)) as srv:
        yield srv


@pytest.fixture
def make_device(server: MockServer) -> Iterator[Callable[..., Device]]:
    started: list[Device] = []

    def make(label: str = "dev", start: bool = True, **options: object) -> Device:
        options.setdefault("server", server.url)
        options.setdefault("time_scale", SCALE)
        options.setdefault("device_id", unique_id(label))
        device = Device(DeviceConfig(**options))
        started.append(device)  # stopped at teardown, whether the test started it or not
        if start:
            device.start()
        return device

    yield make
    for device in started:
        device.stop()
