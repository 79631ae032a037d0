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
import sqlite3
import threading
import time
from dataclasses import dataclass

# What the disk, not facecert, made a write fail: the errno of an OSError, and SQLite's primary result codes
# (the low byte of an extended code, by name and number). Any other cause stays what it is (a bug of ours).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})
# (A corrupt or unopenable database is no disk refusing a write: it stays the error it is.)
_SQLITE_DISK = frozenset({"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY"})
_SQLITE_DISK_CODES = frozenset({13, 10, 8})
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class RecordingFailed(Exception):
    """A store could not write what it was given, through no fault of the peer's or of facecert's code
    (the disk is full, an I/O error, a read-only file): nothing of the transaction was kept."""

    def __init__(self, path: str, cause: BaseException) -> None:
        # the reason without a path: it is what the device is told (the console is told the path too)
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
        self.path, self.cause, self.reason = path, cause, reason or type(cause).__name__
        super().__init__(f"{self.reason} ({path})")


def disk_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a write the disk refused (full, failing, read-only, a file too big), not a bug: SQL
    that SQLite refuses for what it says ("no such column") is an OperationalError as SQLITE_FULL is, and
    must not pass for a full disk."""
    if isinstance(exc, RecordingFailed):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return getattr(exc, "sqlite_errorname", None) in _SQLITE_DISK or (
            isinstance(code, int) and code & 0xFF in _SQLITE_DISK_CODES
        )
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def what_to_do(exc: BaseException) -> str:
    """The user's next step: room, when the disk is full; a look at the disk otherwise (read-only, failing)."""
    cause = exc.cause if isinstance(exc, RecordingFailed) else exc
    full = (isinstance(cause, OSError) and cause.errno in _FULL) or (
        isinstance(cause, sqlite3.Error) and getattr(cause, "sqlite_errorname", None) == "SQLITE_FULL"
    )
    return "free the space and run again" if full else "check the disk and run again"


def what_failed(exc: BaseException) -> str:
    """The disk's refusal in a few words, with the file when it is known: "No space left on device
    (/srv/r/summary.json)", "database or disk is full"."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__  # a RecordingFailed names its cause and the store's file


@dataclass(frozen=True)
class RecordingState:
    """What :class:`RecordingHealth` knows, at one moment."""

    refused: int  # exchanges refused since the server started because the store could not keep them
    outages: int  # spells of failing writes, each ended by a write that succeeded (or still going on)
    cause: str  # the last failure's cause, as the store gave it ("database or disk is full (/tmp/s.db)")
    advice: str  # what to do about it (what_to_do): "free the space and run again", "check the disk and run again"
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
        self._advice = ""
        self._first: float | None = None
        self._since: float | None = None
        self._in_spell = 0

    def refused(self, cause: str, advice: str) -> bool:
        """One exchange not kept; True when it starts a spell (the one to tell the console about)."""
        with self._lock:
            now = time.time()
            self._refused += 1
            self._cause, self._advice = cause, advice
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
            return RecordingState(self._refused, self._outages, self._cause, self._advice, self._first, self._since)
