"""In-memory bookkeeping of the platform: queued tasks, tasks awaiting a
result, and what each device has shown of itself. The database holds the
record; these hold what the next answer depends on."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

CLIENT_GONE = "the client disconnected before the answer"  # error of an exchange stored unanswered


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


@dataclass
class DeviceInfo:
    device_id: str
    first_seen: float
    last_seen: float = 0.0
    peer: str = ""
    polls: int = 0
    last_poll: float = 0.0
    versions: dict[str, Any] = field(default_factory=dict)
    poll_starts: deque[float] = field(default_factory=lambda: deque(maxlen=21))

    def saw(self, now: float, peer: str) -> None:
        self.last_seen = now
        self.peer = peer

    def polled(self, now: float, request: Any) -> None:
        self.polls += 1
        self.last_poll = now
        self.poll_starts.append(now)
        if isinstance(request, dict):
            # Versions the device declares: every *version* field of its poll (contract names vary by release).
            self.versions = {k: v for k, v in request.items() if "version" in k and isinstance(v, (str, int, float))}

    def cadence(self) -> float | None:
        """Median seconds between consecutive polls (the device's measured rhythm)."""
        starts = list(self.poll_starts)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
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


@dataclass
class Queues:
    """Per-device FIFO queues and the awaiting-result map, keyed by request id."""

    by_device: dict[str, deque[Queued]] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)

    def push(self, device_id: str, item: Queued) -> None:
        self.by_device.setdefault(device_id, deque()).append(item)

    def peek(self, device_id: str) -> Queued | None:
        queue = self.by_device.get(device_id)
        return queue[0] if queue else None

    def pop(self, device_id: str) -> Queued:
        return self.by_device[device_id].popleft()

    def awaiting(self, device_id: str) -> list[Pending]:
        return [p for p in self.pending.values() if p.device_id == device_id and not p.done]
