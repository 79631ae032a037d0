"""Counters of one device (and their sum over a fleet), readable from any thread."""

from __future__ import annotations

import collections
import statistics
import threading
from dataclasses import dataclass, field
from typing import Any

_LATENCY_SAMPLES = 500  # per device: a fleet of thousands keeps this many each
_NONE_KEPT: collections.deque[float] = collections.deque(maxlen=0)


@dataclass
class DeviceStats:
    latency_samples: int = _LATENCY_SAMPLES  # how many latencies this device keeps (a Locust fleet: none)
    polls: int = 0
    idle: int = 0
    tasks: int = 0
    results: int = 0
    task_failures: int = 0  # tasks answered with code != 0
    failures: int = 0  # requests that got no usable answer (refused, timeout, 5xx, garbage)
    captures_made: int = 0
    captures_sent: int = 0  # acknowledged by the server
    captures_buffered: int = 0  # waiting in the spool now
    captures_dropped: int = 0
    alarms: int = 0
    gps: int = 0
    downloads: int = 0
    latencies: collections.deque[float] = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # none kept: one shared deque that keeps nothing (appending to it is a no-op), not an empty one each
        self.latencies = collections.deque(maxlen=self.latency_samples) if self.latency_samples else _NONE_KEPT

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def latency(self, seconds: float) -> None:
        self.latencies.append(seconds)

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int) and k != "latency_samples"}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = self.counters()
        out.update(latency_summary(list(self.latencies)))
        return out


def latency_summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"latency_p50_ms": 0.0, "latency_p95_ms": 0.0, "latency_max_ms": 0.0}
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "latency_p95_ms": round(p95 * 1000, 2),
        "latency_max_ms": round(ordered[-1] * 1000, 2),
    }


def aggregate(all_stats: list[DeviceStats]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    samples: list[float] = []
    for stats in all_stats:
        for key, value in stats.counters().items():
            total[key] = total.get(key, 0) + value
        samples.extend(stats.latencies)
    total.update(latency_summary(samples))
    return total
