"""Checks across the messages of one device's conversation (and across
devices of one server, for request_id uniqueness)."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from facecert.core.model import Exchange


def rid_key(value: Any) -> str | None:
    """request_ids compare by value whatever JSON type carried them (a device
    echoing 7 as "7" is a type finding, not a lost result)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    return str(value)


@dataclass
class IssuedTask:
    task: str
    rid: Any
    device_id: str
    exchange: int
    issued_at: float
    payload: dict[str, Any]
    downloads: list[str] = field(default_factory=list)
    polls_since: int = 0
    results: int = 0
    result_code: Any = None
    missing_reported: bool = False
    signature: str = ""  # the task without its request_id (TASK-RESENT compares re-sent tasks by it)


@dataclass
class PollState:
    exchange: int
    ended: float
    kind: str  # "idle", "task" or "none" (no usable answer: no cadence is expected)
    task_rid: str | None = None
    away: bool = False  # the answer sent the device to another server: no further poll is due here
    may_work: bool = False  # a valid task: the device may be busy with it up to the result deadline
    stop: Any = None  # the POLL-STOPPED finding once this poll was the device's last for too long


@dataclass
class FailedTask:
    """A task the device reported with a non-zero code, and the times the server sent it again."""

    task: str
    rid: Any
    code: Any
    exchange: int
    resent: list[Any] = field(default_factory=list)
    reported: bool = False


@dataclass
class DeviceState:
    device_id: str
    polls: int = 0
    last_poll: PollState | None = None
    outstanding: dict[str, IssuedTask] = field(default_factory=dict)
    finished: dict[str, IssuedTask] = field(default_factory=dict)
    last_result_end: dict[str, float] = field(default_factory=dict)
    last_gps: tuple[float, float, float] | None = None  # (time, lat, lon)
    devtime: tuple[int, float, int] | None = None  # (time_stamp set, when it was set, exchange)
    facecmd: tuple[float, int, int] | None = None  # (result time, polls since, exchange)
    failed: dict[str, FailedTask] = field(default_factory=dict)  # by task signature (TASK-RESENT)
    left: bool = False  # the tap was told the device left the session: no poll is due until it polls again


def task_signature(task: dict[str, Any]) -> str:
    """A task's identity apart from its request_id: a re-sent task has the same signature."""
    rest = {k: v for k, v in task.items() if k != "request_id"}
    text = json.dumps(rest, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def utc_clock(epoch: float) -> str:
    """12:00:03.1 UTC: the time of day findings quote (the date is in the report)."""
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 10)} UTC"


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    radius = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(min(1.0, math.sqrt(a)))


def cadence_window(nominal: float, tolerance: float, allowance: float, busy: float) -> tuple[float, float]:
    """Accepted gap between an answer and the next poll: nominal ± tolerance,
    plus the network allowance and the time the device spent on the task."""
    return nominal * (1 - tolerance), nominal * (1 + tolerance) + allowance + busy


def is_ok_status(exchange: Exchange) -> bool:
    return exchange.status is not None and 200 <= exchange.status < 300
