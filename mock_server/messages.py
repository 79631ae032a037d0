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
    stall_started: float = 0.0  # this process's stall clock at ``started`` (facecert.stalls)


@dataclass
class Reply:
    """What to send back; ``status=None`` closes the connection unanswered."""

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    # time.monotonic() when the exchange was stamped answered (Exchange.ended, before its commit): the HTTP
    # layer counts the time from it to the send as the recorder's own hold (facecert.stalls, held_since)
    stamped: float | None = None


class _ThisExchange:
    """Stands for the row id of the exchange a write goes with (known once it is inserted)."""

    def __repr__(self) -> str:
        return "THIS_EXCHANGE"


THIS_EXCHANGE: Any = _ThisExchange()


@dataclass
class Write:
    """A row an answer writes in its exchange's transaction: inserted, or (``where``) updated.
    A value THIS_EXCHANGE becomes the exchange's row id."""

    table: str
    values: dict[str, Any]
    where: dict[str, Any] | None = None

    def bound(self, exchange_id: int) -> dict[str, Any]:
        return {k: exchange_id if v is THIS_EXCHANGE else v for k, v in self.values.items()}


@dataclass
class Plan:
    """An answer decided by an endpoint planner, with its database writes."""

    status: int | None
    answer: Any = None  # dict (JSON-encoded), bytes (sent verbatim) or None (error body built after judging)
    log: str = ""
    writes: list[Write] = field(default_factory=list)  # stored with the exchange, before it is answered
    after: Callable[[], None] | None = None  # in-memory changes the next answers depend on (under the lock)
    error: str | None = None  # why the connection was dropped
    resend: Any = None  # a failed task (state.Pending) to queue again (misbehaviour resend-failed-task)


def to_json(value: Any) -> bytes:
    """Strict JSON bytes (no NaN/Infinity, valid UTF-8): every answer goes through here."""
    return dumps_strict(value).encode("utf-8")
