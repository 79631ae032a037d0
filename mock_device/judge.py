"""Judge a device's conversation as the device saw it, with a fresh engine.

The device records every exchange (timestamps taken on its side of the
socket); fed to :class:`facecert.core.engine.Engine` in order they give the same
findings a tap between it and the server would, downloads included.
"""

from __future__ import annotations

import dataclasses

from facecert.core.engine import Engine, EngineConfig
from facecert.core.model import Finding
from facecert.mock_device.device import Device


def judge_device(device: Device, profile: str = "strict", tolerance: float | None = None) -> Engine:
    """A fresh engine fed the device's exchanges and finished; read ``.findings``."""
    config = EngineConfig(
        profile=profile, protocol_version=device.version, time_scale=device.cfg.time_scale, check_downloads=True
    )
    engine = Engine(config if tolerance is None else dataclasses.replace(config, tolerance=tolerance))
    for exchange in sorted(device.exchanges, key=lambda ex: ex.started):
        engine.feed(dataclasses.replace(exchange, index=-1))
    engine.finish()
    return engine


def device_errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.party == "device" and f.severity.value == "error"]
