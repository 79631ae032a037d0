"""The steps one activity of the device core takes (mock_device.core), and the types around them.

An activity of the device (its poll loop, the resume-transfer sender, the camera, the GPS, a
task being carried out) is written as a generator that *yields* what it needs from the
outside world and is *sent* the outcome:

- ``reply = yield Request(...)``: one HTTP request; resumed with a :class:`Reply`;
- ``yield Sleep(until)``: wait until an epoch time; resumed with that time;
- ``yield Park(key)``: wait until another activity signals ``key`` (an event, a lock).

Sub-steps compose with ``yield from`` (a task handler downloads with
``data = yield from dev.download(url)``). Nothing here does I/O or reads a clock: the
core turns these steps into actions for a driver (mock_device.device: asyncio;
mock_device.locustfile: Locust/gevent), which performs them and feeds the results back.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Request:
    method: str
    url: str
    body: bytes = b""
    json_body: bool = True  # the body is a JSON message (Content-Type application/json)
    endpoint: str = ""  # catalogue endpoint name, or "download" for a file a task names


@dataclass(slots=True)
class Sleep:
    until: float  # epoch seconds


@dataclass(slots=True)
class Park:
    key: str


@dataclass(slots=True)
class Reply:
    """What came back for a request, as the driver saw it at the socket; status None: no answer."""

    status: int | None
    body: bytes | None = b""
    headers: dict[str, str] = field(default_factory=dict)
    started: float = 0.0  # epoch s: the request began
    ended: float = 0.0  # epoch s: the answer was complete (or the request failed)
    error: str | None = None  # transport error ("timeout (…)", "ConnectError: …") when status is None


Step = Request | Sleep | Park
Flow = Generator[Step, Any, T]
