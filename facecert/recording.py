"""Whether a peer of ours keeps on disk what it hears: the mock server's store, the proxy's record.

A disk that fills up (or fails, or turns read-only) is no fault of the
device's and no bug of facecert's, yet it breaks the promise that every
exchange is kept. While it lasts the mock server answers 503 instead of
answering as if the exchange were kept, and the proxy passes flows on
unrecorded; :class:`RecordingHealth` says so to whoever must know: the
console once when a spell starts and once when it ends, the certification
(every scenario from the first refused exchange on is an ``error``,
HARNESS-RECORDING), the last lines and the summaries.
"""

from __future__ import annotations

import errno
import threading
import time
from dataclasses import dataclass

# What the disk, not facecert, made a write fail (the errno of an OSError). mock_server.store adds SQLite's codes.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})


def disk_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is a write the disk refused (full, failing, read-only, a file too big), not a bug."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


@dataclass(frozen=True)
class RecordingState:
    """What :class:`RecordingHealth` knows, at one moment."""

    refused: int  # exchanges refused since the server started because the store could not keep them
    outages: int  # spells of failing writes, each ended by a write that succeeded (or still going on)
    cause: str  # the last failure's cause, as the store gave it ("database or disk is full (/tmp/s.db)")
    first_refused: float | None  # when the first exchange was refused (None: never)
    failing_since: float | None  # when the current spell began (None: the store writes)

    @property
    def complete(self) -> bool:
        """Whether everything heard was kept."""
        return self.refused == 0


class RecordingHealth:
    """Counts the exchanges the store could not keep, and the spells they fell in (thread-safe: the loop
    and the worker threads commit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused = 0
        self._outages = 0
        self._cause = ""
        self._first: float | None = None
        self._since: float | None = None
        self._in_spell = 0

    def refused(self, cause: str) -> bool:
        """One exchange not kept; True when it starts a spell (the one to tell the console about)."""
        with self._lock:
            now = time.time()
            self._refused += 1
            self._cause = cause
            self._first = self._first if self._first is not None else now
            starts = self._since is None
            if starts:
                self._since, self._outages, self._in_spell = now, self._outages + 1, 0
            self._in_spell += 1
            return starts

    def kept(self) -> int:
        """A write succeeded: the number of exchanges refused in the spell it ends, 0 when none was going on.
        Called after every commit, so it costs one attribute read when all is well."""
        if self._since is None:
            return 0
        with self._lock:
            if self._since is None:
                return 0
            self._since, ended = None, self._in_spell
            return ended

    def state(self) -> RecordingState:
        with self._lock:
            return RecordingState(self._refused, self._outages, self._cause, self._first, self._since)
