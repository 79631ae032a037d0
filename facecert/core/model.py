"""The conversation model: exchanges in, findings out."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields
from typing import Any

from facecert.core.jsonsafe import printable, strict_value

PARTIES = ("device", "server")  # who can break a rule (Finding.party)


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


@dataclass(slots=True)
class Exchange:
    """One HTTP request and its answer, as any tap saw it.

    Times are epoch seconds: ``started`` when the request began (sent by the
    device / received by the server), ``ended`` when the answer was complete.
    ``status`` is None when no answer came (connection refused, timeout).
    """

    method: str
    path: str
    request_body: bytes = b""
    status: int | None = 200
    response_body: bytes | None = b""
    started: float = 0.0
    ended: float | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    peer: str = ""
    url: str = ""
    index: int = -1
    error: str | None = None  # transport error text when status is None
    redacted: bool = False  # written by a redacting writer (facecert.core.redact): image fields hold placeholders
    # the recorder's stall clock (facecert.stalls) when it stamped ``started`` / ``ended``: the seconds its own
    # process could not run, summed. A cadence gap is widened by what it advanced meanwhile; 0.0 from a tap
    # that does not count (an older capture, a HAR from elsewhere): judged as before.
    stall_started: float = 0.0
    stall_ended: float = 0.0

    @property
    def duration(self) -> float:
        return 0.0 if self.ended is None else max(0.0, self.ended - self.started)

    @property
    def request_content_type(self) -> str:
        return _header(self.request_headers, "content-type")

    @property
    def response_content_type(self) -> str:
        return _header(self.response_headers, "content-type")


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


@dataclass
class Finding:
    """One judgement, written for a firmware engineer who never read our code."""

    rule: str
    severity: Severity
    message: str
    spec: str = ""
    party: str = ""  # one of PARTIES: who broke the rule
    exchange: int = -1
    endpoint: str = ""
    direction: str = ""  # "request" (device -> server) or "answer"
    pointer: str = ""
    expected: Any = None
    actual: Any = None
    device_id: str = ""
    note: str = ""  # profile note when the severity was changed

    def to_dict(self) -> dict[str, Any]:
        """The finding as strict JSON data: what it quotes (``expected``,
        ``actual``) may come from a hostile message, so non-finite numbers and
        lone surrogates are replaced and integers beyond ±(2**53-1) become
        decimal strings (facecert.core.jsonsafe)."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data["severity"] = self.severity.value
        return strict_value(data, unsafe_ints_as_text=True)

    def line(self) -> str:
        where = f"#{self.exchange} {self.endpoint} {self.direction}".strip()
        ptr = f" {self.pointer}" if self.pointer else ""
        return printable(f"{self.severity.value.upper():7} {self.rule:24} [{where}{ptr}] {self.message}")


def abbreviate(value: Any, limit: int = 80) -> str:
    """Short printable form of a JSON value for messages (images can be 300 KB:
    a long string is cut before it is encoded)."""
    if isinstance(value, bytes):
        return repr(value[:limit])
    if isinstance(value, str) and len(value) > limit:
        return json.dumps(value[:limit], ensure_ascii=False)[: limit - 15] + f"… ({len(value) + 2} chars)"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = json.dumps(strict_value(value), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 15] + f"… ({len(text)} chars)"


# What a finding quotes of a peer's value (its ``actual``): at most about this many characters. A finding
# lives as long as the session (in memory, in the session database, in every report), and it quoted the
# whole value: a 50,000-character time_stamp made each of its findings 51 KB, a wrong-typed array in a
# 20 MB body all of it.
QUOTE_BUDGET = 256
# A finding's message, which some rules write with the peer's value in it (a 50,000-character request_id):
# far above what any rule's own text takes
MESSAGE_BUDGET = 2048


def bounded(value: Any, budget: int = QUOTE_BUDGET) -> Any:
    """``value`` itself when it is small; otherwise a preview of the same type: a string cut (its length
    said at its end), a list or an object cut after the members that fit (their count said in a last
    member). Its type stays what the peer sent, so a profile still tells a string from a number
    (facecert.core.profiles, ``value_type``)."""
    if isinstance(value, str):
        return value if len(value) <= budget else _cut_text(value, budget)
    if isinstance(value, bytes):
        return value if len(value) <= budget else value[:budget]
    if isinstance(value, (list, dict, tuple)):
        return value if _fits(value, [budget]) else _preview(value, [budget])
    return value


def _cut_text(text: str, budget: int) -> str:
    return f"{text[: max(budget, 0)]}… ({len(text)} chars)"


def _fits(value: Any, left: list[int]) -> bool:
    """Whether ``value`` costs no more than ``left[0]`` (a string its length, anything else one, a
    container one and its members): walked only as far as the budget goes."""
    left[0] -= _cost(value)
    if left[0] < 0:
        return False
    if isinstance(value, dict):
        return all(_fits(key, left) and _fits(item, left) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_fits(item, left) for item in value)
    return True


def _cost(value: Any) -> int:
    """About the characters ``value`` takes in JSON, itself alone (a container: 1): a number its digits
    (told by its bits, never by printing it: a huge int would be slow to print, or refused)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 1
    if isinstance(value, float):
        return 20
    return 1


def _preview(value: Any, left: list[int]) -> Any:
    """The members of ``value`` that fit ``left[0]``, each cut the same way."""
    if not isinstance(value, (dict, list, tuple, str)):
        left[0] -= _cost(value)
        return value
    left[0] -= 1
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if left[0] <= 0:
                out["…"] = f"({len(value)} members)"
                break
            name = _preview(key, left) if isinstance(key, str) else key  # the key first: it comes first in the text
            out[name] = _preview(item, left)
        return out
    if isinstance(value, (list, tuple)):
        items: list[Any] = []
        for item in value:
            if left[0] <= 0:
                items.append(f"… ({len(value)} items)")
                break
            items.append(_preview(item, left))
        return items
    if isinstance(value, str):
        room = left[0]
        left[0] -= len(value)
        return value if left[0] >= 0 or not value else _cut_text(value, room)
    return value
