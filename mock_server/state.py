"""In-memory bookkeeping of the platform: queued tasks, tasks awaiting a
result, what each device has shown of itself, the faults and misbehaviours
switched on. The database holds the record; :class:`ServerState` holds what
the next answer depends on (the answer planners of :mod:`mock_server.answers`
read and change it, under the platform's lock)."""

from __future__ import annotations

import enum
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from facecert.core.contract import Contract
from facecert.core.knobs import knob_name
from facecert.mock_server.faults import Fault

CLIENT_GONE = "the client disconnected before the answer"  # error of an exchange stored unanswered


class TaskState(enum.StrEnum):
    """A task's life (the tasks table's ``state`` column)."""

    QUEUED = "queued"  # waiting for its device's next poll
    SENT = "sent"  # given to the device, awaiting its result
    EXPIRED = "expired"  # sent, and past the result deadline without a result
    DONE = "done"  # its result came in time
    LATE = "late"  # its result came after the deadline


SENT_STATES = (TaskState.SENT, TaskState.EXPIRED, TaskState.DONE, TaskState.LATE)
ANSWERED_STATES = (TaskState.DONE, TaskState.LATE)


class DownloadState(enum.StrEnum):
    """How an asset download went (the downloads table's ``state`` column)."""

    STARTED = "started"
    COMPLETED = "completed"
    ABORTED = "aborted"  # the client left before the last byte
    REFUSED = "refused"  # no such asset, or a method other than GET


@dataclass
class Queued:
    """A task waiting for its device's next poll."""

    task_id: int  # row in the tasks table
    request_id: Any
    request_type: str
    body: Any  # dict, or bytes/str when queued raw
    raw: bool


@dataclass
class Pending:
    """A task sent and awaiting its taskResult."""

    task_id: int
    request_id: Any
    request_type: str
    device_id: str
    sent_at: float
    deadline: float
    expired: bool = False
    done: bool = False


POLL_STARTS_KEPT = 21  # a device's latest poll times kept (its measured cadence: the median of 20 gaps)


@dataclass
class DeviceInfo:
    device_id: str
    first_seen: float
    last_seen: float = 0.0
    peer: str = ""
    polls: int = 0
    last_poll: float = 0.0
    versions: dict[str, Any] = field(default_factory=dict)
    poll_starts: deque[float] = field(default_factory=lambda: deque(maxlen=POLL_STARTS_KEPT))

    def saw(self, now: float, peer: str) -> None:
        self.last_seen = now
        self.peer = peer

    def polled(self, now: float, request: Any) -> None:
        self.polls += 1
        self.last_poll = now
        self.poll_starts.append(now)
        if isinstance(request, dict):
            # Versions the device declares: every *version* field of its poll (contract names vary by release).
            versions = {k: v for k, v in request.items() if "version" in k and isinstance(v, (str, int, float))}
            if not _same(versions, self.versions):  # kept when the same: its stored text is made once (platform)
                self.versions = versions

    def cadence(self) -> float | None:
        """Median seconds between consecutive polls (the device's measured rhythm)."""
        starts = list(self.poll_starts)
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        return round(statistics.median(gaps), 3) if gaps else None

    def to_dict(self, queued: int = 0, awaiting: int = 0) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "peer": self.peer,
            "polls": self.polls,
            "last_poll": self.last_poll or None,
            "versions": self.versions,
            "cadence_s": self.cadence(),
            "queued": queued,
            "awaiting": awaiting,
        }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same members in the same order with values of the same types (what makes the same JSON)."""
    return list(a.items()) == list(b.items()) and all(type(v) is type(b[k]) for k, v in a.items())


@dataclass
class Queues:
    """Per-device FIFO queues and the awaiting-result map, keyed by request id.

    ``pending`` holds every task sent (a second result for one is told a duplicate, not refused);
    ``unanswered`` only those still awaiting their result, by device: what the deadline timer, the
    device list and the live page's overview walk (every second, under the platform's lock). Walking
    ``pending`` instead made them cost every task ever sent: 485 ms an overview after 4,000 tasks."""

    by_device: dict[str, deque[Queued]] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    unanswered: dict[str, dict[str, Pending]] = field(default_factory=dict)

    def sent(self, key: str, task: Pending) -> None:
        """``task`` awaits its result under ``key`` (a request id used again replaces the task it named)."""
        before = self.pending.get(key)
        if before is not None and before.device_id != task.device_id:
            self._forget(key, before)
        self.pending[key] = task
        if task.done:
            self._forget(key, task)
        else:
            self.unanswered.setdefault(task.device_id, {})[key] = task

    def answered(self, key: str, task: Pending) -> None:
        """``task`` (sent under ``key``) has its result."""
        task.done = True
        self._forget(key, task)

    def _forget(self, key: str, task: Pending) -> None:
        mine = self.unanswered.get(task.device_id)
        if mine is not None and key in mine:
            del mine[key]
            if not mine:
                del self.unanswered[task.device_id]

    def all_unanswered(self) -> list[Pending]:
        return [task for mine in self.unanswered.values() for task in mine.values()]

    def push(self, device_id: str, item: Queued) -> None:
        self.by_device.setdefault(device_id, deque()).append(item)

    def peek(self, device_id: str) -> Queued | None:
        queue = self.by_device.get(device_id)
        return queue[0] if queue else None

    def pop(self, device_id: str) -> Queued:
        return self.by_device[device_id].popleft()

    def awaiting(self, device_id: str) -> list[Pending]:
        return list(self.unanswered.get(device_id, {}).values())


@dataclass
class ServerState:
    """What the next answer depends on: the queues and awaited tasks, the devices seen, the faults
    and misbehaviours on, the request-id counter; and the contract the answers are built from.
    Guarded by the platform's lock."""

    contract: Contract
    version: str
    result_timeout_s: float  # a task's result deadline at the server's time scale
    queues: Queues = field(default_factory=Queues)
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    misbehaving: set[str] = field(default_factory=set)
    next_rid: int = 1  # the next generated request_id (unique and increasing for the database's life)
    last_rid: int | None = None  # the request_id of the task sent last (misbehaviour duplicate-request-id)
    idle_task: str = field(init=False)  # the contract's idle task and its fields: asked at every idle poll
    idle_fields: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.idle_task = self.contract.idle_task
        self.idle_fields = self.contract.idle_fields(self.version)

    def misbehaves(self, name: str) -> bool:
        return bool(self.misbehaving) and knob_name(name) in self.misbehaving  # asked several times an exchange

    def take_rid(self) -> int:
        rid = self.next_rid
        self.next_rid += 1
        return rid

    def fault_for(self, device_id: str, endpoint: str, now: float | None = None) -> Fault | None:
        """The fault in force for this device and endpoint (the latest set wins); expired ones are dropped."""
        now = time.time() if now is None else now
        if self.faults:
            self.faults = [f for f in self.faults if f.until is None or f.until > now]
        return next((f for f in reversed(self.faults) if f.applies(device_id, endpoint, now)), None)

    def device(self, device_id: str, now: float, peer: str) -> DeviceInfo:
        """The device, seen now from ``peer`` (first seen now when new)."""
        info = self.devices.get(device_id)
        if info is None:
            info = self.devices[device_id] = DeviceInfo(device_id, first_seen=now)
        info.saw(now, peer)
        return info
