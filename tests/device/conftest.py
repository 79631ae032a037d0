"""Fixtures of the device tests: devices on the test's own mock server (tests/conftest.py's
``server``), always stopped, even when a test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from facecert.mock_device import Device, DeviceConfig
from facecert.mock_server import MockServer
from tests.support import SCALE, unique_id


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
