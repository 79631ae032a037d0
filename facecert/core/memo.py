"""A bounded memo of what is a pure function of a message's exact bytes (the engine's answer verdicts).

An LRU capped by entries and by the bytes of the bodies it keys on: a hostile capture of endless
distinct bodies only keeps evicting, it never grows the memo; a body above ``max_body`` is never kept
(big bodies rarely repeat, and their parsed values are what would cost memory). Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

# what one engine keeps: answers repeat (the idle answer, the acknowledgement), ~100 bytes each
MEMO_ENTRIES = 2048
MEMO_BYTES = 1024 * 1024  # bodies' bytes; their parsed values take ~5-15 times that
MEMO_MAX_BODY = 2048
ENTRY_OVERHEAD = 256  # bytes counted per entry besides its body (key, verdict, parsed containers)


class Memo:
    def __init__(self, entries: int = MEMO_ENTRIES, size: int = MEMO_BYTES, max_body: int = MEMO_MAX_BODY) -> None:
        self.entries = entries
        self.size = size
        self.max_body = max_body
        self.used = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> Any:
        """The value kept for ``key`` (now the most recently used), None when none is."""
        found = self._items.get(key)  # one C call each, atomic under the GIL: no lock on the hot path
        if found is None:
            self.misses += 1  # (the counts are for tests and figures: a lost increment is harmless)
            return None
        try:
            self._items.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile: the value is still right
            pass
        self.hits += 1
        return found[0]

    def put(self, key: Hashable, body_bytes: int, value: Any) -> None:
        """Keep ``value`` for ``key`` (a body of ``body_bytes``), forgetting the least recently used
        entries beyond the bounds; a body above ``max_body`` is not kept."""
        if body_bytes > self.max_body:
            return
        cost = body_bytes + ENTRY_OVERHEAD
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (value, cost)
            self.used += cost
            while len(self._items) > self.entries or self.used > self.size:
                _, (_, freed) = self._items.popitem(last=False)
                self.used -= freed

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.used = 0
