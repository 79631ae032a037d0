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

from collections.abc import Buffer, Generator
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
    # the driver's stall clock (facecert.stalls) when it stamped started / ended: how long its own process could
    # not run, so that a judge of the device's recording tells a held process from a late device (0.0: not
    # counted; the Locust driver has its own watchdog and leaves them so)
    stall_started: float = 0.0
    stall_ended: float = 0.0


class Oversized(bytes):
    """The start of an answer larger than the device reads (the driver stopped reading past its limit).

    ``len()`` is the answer's size as far as known (its Content-Length, or the bytes read when the
    driver stopped: at least the limit + 1), so the engine's size check (MSG-TOO-LARGE, parse_message)
    judges the real figure; the bytes are only the start, kept as evidence, at most :data:`EVIDENCE`.
    It is never blank: 50 MB of spaces are too large, not empty. The same idea as the proxy's
    ``Truncated`` (proxy_addons.bodies), which a peer may not import."""

    size: int

    def __new__(cls, start: bytes, size: int) -> Oversized:
        obj = super().__new__(cls, start[:EVIDENCE])
        obj.size = size
        return obj

    def __len__(self) -> int:
        return self.size

    def isspace(self) -> bool:
        return False

    def strip(self, chars: Buffer | None = None) -> Oversized:
        return self

    @property
    def kept(self) -> int:
        return super().__len__()


EVIDENCE = 64 * 1024  # what is kept of an answer over the limit
READ_CHUNK = 64 * 1024  # a driver reads an answer this much at a time


class BodyCap:
    """An answer read chunk by chunk, never more than ``limit`` + one chunk in memory: :meth:`add` says
    whether to read on; :meth:`body` is the answer, or an :class:`Oversized` once it passed ``limit``."""

    __slots__ = ("chunks", "limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.chunks: list[bytes] = []

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False once the answer is over the limit (stop reading: it is refused whole)."""
        self.seen += len(chunk)
        if self.seen > self.limit:
            kept = sum(len(c) for c in self.chunks)
            if kept < EVIDENCE:
                self.chunks.append(chunk[: EVIDENCE - kept])
            return False
        self.chunks.append(chunk)
        return True

    @property
    def over(self) -> bool:
        return self.seen > self.limit

    def body(self, declared: int | None = None) -> bytes:
        data = b"".join(self.chunks)
        if self.over or (declared is not None and declared > self.limit):
            return Oversized(data, max(self.seen, declared or 0))
        return data


def declared_length(headers: Any) -> int | None:
    """The Content-Length a header mapping declares (None: none, or not a number)."""
    for key, value in headers.items():
        if key.lower() == "content-length":
            try:
                return int(str(value).strip())
            except ValueError:
                return None
    return None


Step = Request | Sleep | Park
Flow = Generator[Step, Any, T]
