"""What passes between the HTTP layer, the answer planners and the
platform: a request as read, an answer as decided, a reply as sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facecert.core.jsonsafe import dumps_strict


@dataclass
class Incoming:
    """A device request as the HTTP layer read it."""

    endpoint: str
    method: str
    path: str
    url: str
    peer: str
    started: float
    headers: dict[str, str]
    body: bytes
    too_large: bool = False
    gone: Callable[[], bool] = lambda: False  # the client left before its answer (set by the HTTP layer)


@dataclass
class Reply:
    """What to send back; ``status=None`` closes the connection unanswered."""

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


@dataclass
class Plan:
    """An answer decided by an endpoint handler, with its database writes."""

    status: int | None
    answer: Any = None  # dict (JSON-encoded), bytes (sent verbatim) or None (error body built after judging)
    log: str = ""
    write: Callable[[Any, int], None] | None = None  # (connection, exchange row id)
    after: Callable[[], None] | None = None  # in-memory changes once committed
    error: str | None = None  # why the connection was dropped


def to_json(value: Any) -> bytes:
    """Strict JSON bytes (no NaN/Infinity, valid UTF-8): every answer goes through here."""
    return dumps_strict(value).encode("utf-8")
