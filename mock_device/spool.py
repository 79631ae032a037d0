"""The resume-transfer spool (断网续传): captures not yet acknowledged, in order.

On disk (one JSON file per record, named by a sequence number, so order
survives a restart of the device) or in memory when no folder is given.
"""

from __future__ import annotations

import collections
import json
import threading
from pathlib import Path
from typing import Any

SPOOL_MAX = 10_000  # records kept by default, as a device's flash holds so many: past it the oldest goes


class Spool:
    """``max_records``: the most records kept; a push past it drops the oldest (a device's storage is finite,
    and a server that acknowledges nothing must not make the device's memory grow without bound)."""

    def __init__(self, folder: Path | None = None, max_records: int = SPOOL_MAX) -> None:
        self.folder = folder
        self.max_records = max(1, max_records)
        self._memory: collections.deque[dict[str, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._next = 0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            existing = self._files()
            self._next = int(existing[-1].stem) + 1 if existing else 0

    def _files(self) -> list[Path]:
        assert self.folder is not None
        return sorted(p for p in self.folder.glob("*.json") if p.stem.isdigit())

    def __len__(self) -> int:
        if self.folder is None:
            return len(self._memory)
        return len(self._files())

    def push(self, record: dict[str, Any]) -> int:
        """Keep ``record`` last; how many of the oldest records were dropped to make room (0 or 1)."""
        with self._lock:
            if self.folder is None:
                dropped = 0
                if len(self._memory) >= self.max_records:
                    self._memory.popleft()
                    dropped = 1
                self._memory.append(record)
                return dropped
            files = self._files()
            dropped = max(0, len(files) + 1 - self.max_records)
            for old in files[:dropped]:
                old.unlink(missing_ok=True)
            path = self.folder / f"{self._next:012d}.json"
            self._next += 1
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)  # a crash never leaves half a record behind
            return dropped

    def peek(self) -> dict[str, Any] | None:
        with self._lock:
            if self.folder is None:
                return self._memory[0] if self._memory else None
            for path in self._files():
                try:
                    return json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    path.unlink(missing_ok=True)  # unreadable record: drop it rather than block the queue
            return None

    def pop(self) -> None:
        with self._lock:
            if self.folder is None:
                if self._memory:
                    self._memory.popleft()
                return
            files = self._files()
            if files:
                files[0].unlink(missing_ok=True)

    def clear(self) -> int:
        with self._lock:
            if self.folder is None:
                count = len(self._memory)
                self._memory.clear()
                return count
            files = self._files()
            for path in files:
                path.unlink(missing_ok=True)
            return len(files)
