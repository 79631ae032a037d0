"""Device behaviour scenarios that both drivers play alike (asyncio in the test process, Locust/gevent in a
process of its own: tests/fleet/locust_harness.py), and what a played scenario leaves: a Recording.

A scenario is data (JSON-able, so it crosses into the harness process): the device's configuration and a
list of steps, each one of ``{"wait": counter, "at_least": n}``, ``{"capture": kind}``, ``{"alarm": type}``,
``{"gps": true}``. A driver adaptor performs them.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from facecert.core.model import Exchange
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.flow import Oversized


class Driven(Protocol):
    """What a scenario needs of a running device, whichever driver runs it."""

    def counters(self) -> dict[str, int]: ...
    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool: ...
    def capture(self, kind: str) -> dict[str, Any]: ...
    def alarm(self, alarm_type: int) -> Any: ...
    def gps_on(self) -> None: ...


def play(steps: list[dict[str, Any]], device: Driven, timeout: float) -> list[str]:
    """Perform the steps in order; what timed out (empty when every wait was met)."""
    missed = []
    for step in steps:
        if "wait" in step:
            name, least = step["wait"], int(step["at_least"])
            if not device.wait_for(lambda name=name, least=least: device.counters()[name] >= least, timeout):
                missed.append(f"{name} >= {least} (got {device.counters()[name]})")
        elif "capture" in step:
            device.capture(step["capture"])
        elif "alarm" in step:
            device.alarm(int(step["alarm"]))
        elif step.get("gps"):
            device.gps_on()
        else:
            raise ValueError(f"unknown scenario step {step!r}")
    return missed


def config(spec: dict[str, Any]) -> DeviceConfig:
    options = dict(spec["config"])
    options["faults"] = set(options.get("faults", []))
    return DeviceConfig(server=spec["server"], record=True, **options)


@dataclass
class Recording:
    """A played device, as the tests read it (the same for both drivers)."""

    driver: str
    cfg: DeviceConfig
    version: str
    exchanges: list[Exchange]
    results: list[dict[str, Any]]
    stats: dict[str, int]
    captures_made: list[dict[str, Any]]
    missed: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # answers the device refused, by rule (core.refused)
    log: str = ""  # the device's log (core.log_text)
    peak_rss_mb: float = 0.0  # the peak resident set of the process that ran it (the Locust harness only)


def exchange_to_json(exchange: Exchange) -> dict[str, Any]:
    return {
        "method": exchange.method,
        "path": exchange.path,
        "url": exchange.url,
        "request_body": base64.b64encode(exchange.request_body).decode(),
        "status": exchange.status,
        "response_body": None if exchange.response_body is None else base64.b64encode(exchange.response_body).decode(),
        # an answer the device stopped reading past its limit: its size as known (the bytes are its start)
        "response_size": len(exchange.response_body) if isinstance(exchange.response_body, Oversized) else None,
        "started": exchange.started,
        "ended": exchange.ended,
        "request_headers": exchange.request_headers,
        "response_headers": exchange.response_headers,
        "error": exchange.error,
    }


def exchange_from_json(data: dict[str, Any]) -> Exchange:
    response = data["response_body"]
    body = None if response is None else base64.b64decode(response)
    if body is not None and data.get("response_size") is not None:
        body = Oversized(body, data["response_size"])
    return Exchange(
        data["method"],
        data["path"],
        base64.b64decode(data["request_body"]),
        data["status"],
        body,
        started=data["started"],
        ended=data["ended"],
        request_headers=data["request_headers"],
        response_headers=data["response_headers"],
        url=data["url"],
        error=data["error"],
    )


def poll_until(predicate: Callable[[], bool], timeout: float, sleep: Callable[[float], None] = time.sleep) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        sleep(0.02)
    return True
