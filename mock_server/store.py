"""SQLite storage of a session: every exchange, task, result, upload,
download and finding.

Each exchange is written, with everything it caused, in one transaction
committed *before* its answer is sent, so a server killed mid-traffic loses
nothing it has answered. WAL with ``synchronous=NORMAL`` survives a process
kill (only a power loss can undo the last commits). One connection, one
lock: the event loop and the Python API's threads share it safely.

Whatever a device sent, a row can be written: integers beyond SQLite's 64
bits are stored as decimal text, non-finite floats as their name, lone
surrogates as U+FFFD, JSON columns as strict JSON (the raw bytes are kept
as they came in ``request_body``). The columns that take device numbers
(``code``, ``snap_time``, ``result_code``) have no type affinity, so such
text stays text. The database file is never opened through a symlink.

A request body above ``SPILL_BYTES`` (a 20 MB capture) is written to a
file of its own in ``<db>.bodies/`` (created without following links, never
rewritten, before the transaction takes the lock) and the row names the file:
the database and its WAL stay small, and a big body costs one write instead
of WAL, checkpoint and fsync. A capture image that big is not stored a second
time: it is read from its exchange's body when asked for.

When the disk cannot take a write (full, an I/O error, read-only, the file
gone), the transaction is rolled back whole and :class:`RecordingFailed`
says why: the platform then refuses the exchange instead of answering as if
it were kept (docs/mock-server.md, "When the disk is full").
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import secrets
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facecert.core.jsonsafe import clean_text, dumps_strict
from facecert.core.model import Exchange
from facecert.mock_server.safefiles import write_new_file
from facecert.recording import RecordingFailed, disk_failure

_SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY, idx INTEGER, device_id TEXT, endpoint TEXT, method TEXT, path TEXT, url TEXT,
    peer TEXT, started REAL, ended REAL, status INTEGER, error TEXT,
    request_headers TEXT, request_body BLOB, response_headers TEXT, response_body BLOB,
    request_json TEXT, response_json TEXT, request_file TEXT, request_size INTEGER,
    stall_started REAL, stall_ended REAL);
CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY, exchange_id INTEGER, device_id TEXT, rule TEXT, severity TEXT, party TEXT,
    created REAL, data TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, request_id INTEGER, device_id TEXT, request_type TEXT, body BLOB, raw INTEGER,
    state TEXT, queued_at REAL, sent_at REAL, deadline REAL, sent_exchange INTEGER, result_code,
    done_at REAL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY, exchange_id INTEGER, device_id TEXT, request_id TEXT, request_type TEXT,
    code, accepted INTEGER, received REAL, body TEXT);
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY, exchange_id INTEGER, device_id TEXT, snap_time, frpic_name TEXT,
    accepted INTEGER, received REAL, image BLOB, image_in_request INTEGER);
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY, exchange_id INTEGER, device_id TEXT, accepted INTEGER, received REAL, body TEXT);
CREATE TABLE IF NOT EXISTS gps (
    id INTEGER PRIMARY KEY, exchange_id INTEGER, device_id TEXT, accepted INTEGER, received REAL, body TEXT);
CREATE TABLE IF NOT EXISTS downloads (
    id INTEGER PRIMARY KEY, device_id TEXT, peer TEXT, name TEXT, path TEXT, status INTEGER, size INTEGER,
    bytes INTEGER, completed INTEGER, state TEXT, started REAL, ended REAL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, first_seen REAL, last_seen REAL, peer TEXT, polls INTEGER, data TEXT);
"""

JSON_COLUMNS = {"request_headers", "response_headers", "request_json", "response_json", "data", "body"}


SQLITE_INT = (-(2**63), 2**63 - 1)
SIDE_FILES = ("-wal", "-shm", "-journal")
PARSED_COPY_MAX = 1024 * 1024  # a body above this is kept raw only (request_body), not a second time parsed
CHECKPOINT_EVERY_S = 1.0
# exchanges read at a time by an export: a row holds at most SPILL_BYTES of request (a bigger body is in a
# file of its own), so a page is at most 32 MiB of bodies however long the session
EXPORT_PAGE = 32
_EXCHANGE_PAGE = (  # what row_to_exchange reads (not the parsed copies: they would double a page)
    "SELECT id, method, path, url, request_body, request_file, status, response_body, started, ended, peer, "
    "error, request_headers, response_headers{stalls} FROM exchanges WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
)


def _exchange_page(conn: sqlite3.Connection) -> str:
    """The page query for this database: one made by a facecert before the stall clock has no such columns
    (read-only, it is not migrated), and its exchanges are judged as they were."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(exchanges)")}
    return _EXCHANGE_PAGE.format(stalls=", stall_started, stall_ended" if "stall_started" in have else "")


# The WAL past which a checkpoint runs between two commits. A passive checkpoint beside a writer that never
# stops copies only the frames that were there when it began, so the log never restarts and its file grows
# by every commit (~15 KB a poll: 225 MB after 15,000 polls in a row, gigabytes a day under a fleet). Once
# the WAL passes this, the checkpointer copies what is left while it holds the store's lock, and the next
# commit starts the log from its beginning; journal_size_limit then cuts the file back to this size.
WAL_LIMIT_BYTES = 16 * 1024 * 1024
# New databases. Bodies over SPILL_BYTES live in files, so the largest blob here is 1 MiB (256 pages); every
# commit writes each page it touched to the WAL whole, so a small page keeps a poll's commit small (64 KiB pages
# made it ~275 KB: ~1 ms a poll; 8 KiB ~26-34 KB, 35-42 µs; 4 KiB ~15-19 KB, 29-39 µs).
PAGE_SIZE = 4096
SPILL_BYTES = 1024 * 1024  # a blob above this goes to a file of its own beside the database
_SPILL_NAME = re.compile(r"[0-9a-f]{32}\.bin")
_MIGRATIONS = {
    "exchanges": ("request_file TEXT", "request_size INTEGER", "stall_started REAL", "stall_ended REAL"),
    "captures": ("image_in_request INTEGER",),
}


UNMADE = object()  # insert_exchange: a JSON copy to be made there
_EXCHANGE_ROW = (
    "INSERT INTO exchanges (idx, device_id, endpoint, method, path, url, peer, started, ended, status, error, "
    "request_headers, request_body, response_headers, response_body, request_json, response_json, stall_started, "
    "stall_ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# a device's row changed in place: its key (and the key's index page) stays as it is, where INSERT OR REPLACE
# deletes and re-inserts it (one page more in every commit's WAL)
DEVICE_ROW = (
    "INSERT INTO devices (device_id, first_seen, last_seen, peer, polls, data) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(device_id) DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
    "peer = excluded.peer, polls = excluded.polls, data = excluded.data"
)


def _dumps(value: Any) -> str | None:
    return None if value is None else dumps_strict(value, default=repr)


def bindable(value: Any) -> Any:
    """A value SQLite can bind without overflow or an encoding error."""
    kind = type(value)  # the common exact types first: every column of every row comes through here
    if kind is str:
        return value if value.isascii() else clean_text(value)
    if kind is int:
        return value if SQLITE_INT[0] <= value <= SQLITE_INT[1] else str(value)
    if kind is float and math.isfinite(value) or value is None or kind is bytes:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not SQLITE_INT[0] <= value <= SQLITE_INT[1]:
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return clean_text(value)
    return value


def headers_json(headers: dict[str, str] | None) -> str | None:
    """Headers as stored (:func:`_dumps`); a device sends the same ones every time, so the text is remembered."""
    if not headers:
        return _dumps(headers)
    try:
        return _headers_text(tuple(headers.items()))
    except TypeError:  # a value that cannot be hashed: not from an HTTP layer
        return _dumps(headers)


@functools.lru_cache(maxsize=4096)
def _headers_text(items: tuple[tuple[str, str], ...]) -> str | None:
    return _dumps(dict(items))


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def open_no_symlink(path: str) -> None:
    """Create (or check) the database file without following a symlink: a
    planted link must not make the session write outside where it was told."""
    for candidate in (path, *(path + side for side in SIDE_FILES)):
        if os.path.islink(candidate):
            raise ValueError(f"{candidate} is a symbolic link; the session database is not written through one")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
    finally:
        os.close(fd)


class Store:
    """The session database (``:memory:`` when no file is given)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        wal_limit_bytes: int = WAL_LIMIT_BYTES,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    ) -> None:
        self.path = str(path) if path else ":memory:"
        self.wal_limit_bytes = wal_limit_bytes
        self.checkpoint_every_s = checkpoint_every_s
        self.lock = threading.RLock()
        self._waiters: list[Callable[[], None]] = []  # when_free: called once the lock is let go
        self._waiters_lock = threading.Lock()
        self.commits = 0  # transactions committed (the batching of exchanges shows in it)
        if self.path != ":memory:":
            open_no_symlink(self.path)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.path != ":memory:":
            self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes on a new, empty database
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # checkpoints (copying the WAL into the database, with an fsync) happen in a thread of their own,
            # not inside the commit of whichever exchange crossed the threshold
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self.conn.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")  # the file, once the log restarts
            self._checkpointer = threading.Thread(
                target=self._checkpoints, name="facecert-store-checkpoint", daemon=True
            )
        self.conn.executescript(_SCHEMA)
        self._migrate()
        self.bodies = spill_folder(self.path)
        self._spilled = threading.local()  # per thread: a body written out ahead of its transaction
        self._tx_spilled: list[str] = []  # files named by the open transaction's rows (under the lock)
        if self._checkpointer is not None:
            self._checkpointer.start()

    def _migrate(self) -> None:
        """Columns added since a database was made (a session db from an older facecert)."""
        for table, columns in _MIGRATIONS.items():
            have = {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in have:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    def _checkpoints(self) -> None:
        """Passive checkpoints on a second connection: they run beside the writer, never block it. When the
        WAL has grown past ``wal_limit_bytes`` anyway (a writer that never paused), the rest is copied
        between two commits, so the log restarts (WAL_LIMIT_BYTES)."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)  # PASSIVE never waits: no stall
        try:
            while not self._stop.wait(self.checkpoint_every_s):  # a timer, not a wait for a condition
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    if self.wal_bytes() > self.wal_limit_bytes:
                        self._checkpoint_between_commits(conn)
                except sqlite3.Error:
                    pass  # busy or closing: the next round catches up
        finally:
            conn.close()

    def _checkpoint_between_commits(self, conn: sqlite3.Connection) -> None:
        """Copy the frames the passive round left while no commit runs (it holds the store's lock: a few
        frames and one fsync), so nothing is left for the next commit but to start the log again."""
        try:
            with self.lock:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            if self._waiters:
                self._wake()

    def wal_bytes(self) -> int:
        """The size of the database's WAL file now (0 when there is none)."""
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:
            return 0

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        with self.lock:
            if self.path != ":memory:":
                try:
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass
            self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One atomic, committed unit of work; :class:`RecordingFailed` when the disk would not take it
        (then none of it was kept)."""
        try:
            with self.lock:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield self.conn
                    except BaseException:
                        self._roll_back()
                        self._forget_spilled()
                        raise
                    self.conn.execute("COMMIT")
                except (sqlite3.Error, OSError) as exc:
                    self._roll_back()  # a failed COMMIT leaves the transaction open unless SQLite ended it
                    self._forget_spilled()  # a body's file its rolled-back row named
                    if not disk_failure(exc):
                        raise
                    raise RecordingFailed(self.path, exc) from exc
                self._tx_spilled.clear()
                self.commits += 1
        finally:
            if self._waiters:
                self._wake()

    def _forget_spilled(self) -> None:
        """The files of bodies whose rows a failed transaction took back with it (under the lock)."""
        spilled, self._tx_spilled = self._tx_spilled, []
        for name in spilled:
            if self.bodies is not None:
                _remove_partial(self.bodies, name)

    def _roll_back(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite ended it itself (it may on SQLITE_FULL or an I/O error)

    def when_free(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once, from whichever thread lets the lock go) when the lock is free: the
        event loop waits so for a commit of another thread instead of blocking on the lock. It may be
        called at once, and more than once: it must only try again."""
        with self._waiters_lock:
            self._waiters.append(callback)
        if self.lock.acquire(blocking=False):  # let go meanwhile: whoever let it go may not have seen the callback
            self.lock.release()
            self._wake()

    def _wake(self) -> None:
        with self._waiters_lock:
            waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback()

    # ---- writes (inside tx) ------------------------------------------------
    def spill_ahead(self, body: bytes | None) -> None:
        """Write a big request body to its file now, before the transaction takes the lock
        (other exchanges commit meanwhile); the insert of its exchange then only names it."""
        self._spilled.ahead = None
        if self.bodies is None or not isinstance(body, bytes) or len(body) <= SPILL_BYTES:
            return
        if self.bodies.is_symlink():
            raise ValueError(f"{self.bodies} is a symbolic link; bodies are not written through one")
        if not self.bodies.is_dir():
            self.bodies.mkdir(mode=0o700)
        name = f"{secrets.token_hex(16)}.bin"
        try:
            write_new_file(self.bodies, name, body, 0o600)
        except OSError as exc:
            if not disk_failure(exc):
                raise
            _remove_partial(self.bodies, name)
            raise RecordingFailed(str(self.bodies), exc) from exc
        self._spilled.ahead = (body, name)

    def _spill(self, table: str, values: dict[str, Any]) -> None:
        """A big request body named by its file; a big capture image left to its exchange's body."""
        body = values.get("request_body")
        if table == "exchanges" and isinstance(body, bytes) and len(body) > SPILL_BYTES and self.bodies is not None:
            ahead = getattr(self._spilled, "ahead", None)
            if ahead is None or ahead[0] is not body:
                self.spill_ahead(body)  # not written ahead: written now, under the lock
                ahead = self._spilled.ahead
            values.update(request_body=None, request_file=ahead[1], request_size=len(body))
            self._tx_spilled.append(ahead[1])
            self._spilled.ahead = None
        image = values.get("image")
        if table == "captures" and isinstance(image, bytes) and len(image) > SPILL_BYTES and values.get("exchange_id"):
            values.update(image=None, image_in_request=1)

    def insert(self, conn: sqlite3.Connection, table: str, **values: Any) -> int:
        self._spill(table, values)
        row = [
            bindable(_dumps(v) if k in JSON_COLUMNS and not isinstance(v, (bytes, str, type(None))) else v)
            for k, v in values.items()
        ]
        cursor = conn.execute(_insert_sql(table, tuple(values)), row)
        return int(cursor.lastrowid or 0)

    @staticmethod
    def update(conn: sqlite3.Connection, table: str, where: dict[str, Any], **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        cond = " AND ".join(f"{k} = ?" for k in where)
        conn.execute(
            f"UPDATE {table} SET {sets} WHERE {cond}", [bindable(v) for v in (*values.values(), *where.values())]
        )

    @staticmethod
    def json_copy(value: Any, raw: bytes | None) -> str | None:
        """The parsed copy of a body as stored (None for a body above PARSED_COPY_MAX): made
        before a transaction, since a big one costs."""
        return _dumps(value) if len(raw or b"") <= PARSED_COPY_MAX else None

    def insert_exchange(
        self,
        conn: sqlite3.Connection,
        ex: Exchange,
        device_id: str,
        endpoint: str | None,
        request: Any,
        answer: Any,
        request_json: str | None | object = UNMADE,
        answer_json: str | None | object = UNMADE,
    ) -> int:
        """The exchange's row (``request_json``, ``answer_json``: the :meth:`json_copy` of ``request``
        and ``answer``, when known already)."""
        if request_json is UNMADE:
            request_json = self.json_copy(request, ex.request_body)
        if answer_json is UNMADE:
            answer_json = self.json_copy(answer, ex.response_body)
        body = ex.request_body
        if self.bodies is None or not isinstance(body, bytes) or len(body) <= SPILL_BYTES:
            # the common case, a body kept in the row: one prepared statement, the values in its order; the
            # JSON texts are strict (valid UTF-8) already, the texts that came from outside are made bindable
            row = (
                bindable(ex.index),
                bindable(device_id),
                bindable(endpoint),
                bindable(ex.method),
                bindable(ex.path),
                bindable(ex.url),
                bindable(ex.peer),
                bindable(ex.started),
                bindable(ex.ended),
                bindable(ex.status),
                bindable(ex.error),
                headers_json(ex.request_headers),
                bindable(body),
                headers_json(ex.response_headers),
                bindable(ex.response_body),
                request_json,  # strict JSON text (valid UTF-8), or None
                answer_json,
                ex.stall_started or None,  # 0.0: a tap that does not count (kept as NULL)
                ex.stall_ended or None,
            )
            return int(conn.execute(_EXCHANGE_ROW, row).lastrowid or 0)
        return self.insert(
            conn,
            "exchanges",
            idx=ex.index,
            device_id=device_id,
            endpoint=endpoint,
            method=ex.method,
            path=ex.path,
            url=ex.url,
            peer=ex.peer,
            started=ex.started,
            ended=ex.ended,
            status=ex.status,
            error=ex.error,
            request_headers=headers_json(ex.request_headers),
            request_body=ex.request_body,
            response_headers=headers_json(ex.response_headers),
            response_body=ex.response_body,
            request_json=request_json,
            response_json=answer_json,
            stall_started=ex.stall_started or None,
            stall_ended=ex.stall_ended or None,
        )

    # ---- reads -------------------------------------------------------------
    def iter_exchanges(self) -> Iterator[Exchange]:
        """Every exchange stored when it is called, in arrival order, a page at a time, each page read
        under the lock: an export of a long session neither holds the lock (every device's commit) nor
        the session in memory while it is written, and it ends however fast devices add exchanges."""
        last = self.scalar("SELECT COALESCE(MAX(id), 0) FROM exchanges")  # the session as it is now: an export ends
        query = _exchange_page(self.conn)  # the store migrated its database: always with the stall clock
        rows = self.rows(query, (0, last, EXPORT_PAGE))
        while rows:
            yield from (exported(row, self.bodies) for row in rows)
            rows = self.rows(query, (rows[-1]["id"], last, EXPORT_PAGE))

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        try:
            with self.lock:
                return [dict(row) for row in self.conn.execute(sql, params).fetchall()]
        finally:
            if self._waiters:
                self._wake()

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            with self.lock:
                row = self.conn.execute(sql, params).fetchone()
        finally:
            if self._waiters:
                self._wake()
        return None if row is None else row[0]

    def request_body(self, exchange_id: int) -> bytes | None:
        """An exchange's request body, from its file when it was spilled."""
        rows = self.rows("SELECT request_body, request_file FROM exchanges WHERE id = ?", (exchange_id,))
        if not rows:
            return None
        return (
            read_spilled(self.bodies, rows[0]["request_file"]) if rows[0]["request_file"] else rows[0]["request_body"]
        )


def _remove_partial(folder: Path, name: str) -> None:
    """What a write that ran out of room left of a body's file (the name is ours, made just before)."""
    try:
        os.unlink(folder / name)
    except OSError:
        pass


def spill_folder(db_path: str) -> Path | None:
    """Where a file database keeps its big blobs (``<db>.bodies``); None in memory."""
    if db_path == ":memory:":
        return None
    folder = Path(db_path + ".bodies")
    if folder.is_symlink():
        raise ValueError(f"{folder} is a symbolic link; the session's bodies are not written through one")
    return folder


def read_spilled(folder: Path | None, name: str) -> bytes:
    """A spilled blob; the name is one we made (32 hex digits), never a path."""
    if folder is None or not _SPILL_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a spilled body of this session")
    fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def decode_json_columns(row: dict[str, Any]) -> dict[str, Any]:
    """JSON text columns back to values; blobs dropped (served separately)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, bytes):
            continue
        if key in JSON_COLUMNS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def row_to_exchange(row: dict[str, Any], bodies: Path | None = None) -> Exchange:
    """A stored exchange as the engine and the HAR writer know it (``bodies``: the
    session's spill folder, for a body kept in a file of its own)."""
    request_body = read_spilled(bodies, row["request_file"]) if row.get("request_file") else row["request_body"]
    return Exchange(
        method=row["method"],
        path=row["path"],
        url=row["url"] or "",
        request_body=request_body or b"",
        status=row["status"],
        response_body=row["response_body"] if row["status"] is not None else None,
        started=row["started"],
        ended=row["ended"],
        peer=row["peer"] or "",
        error=row["error"],
        request_headers=json.loads(row["request_headers"] or "{}"),
        response_headers=json.loads(row["response_headers"] or "{}"),
        stall_started=row.get("stall_started") or 0.0,
        stall_ended=row.get("stall_ended") or 0.0,
    )


def exported(row: dict[str, Any], bodies: Path | None) -> Exchange:
    """The exchange of ``row`` for an export; one whose body file cannot be read (removed, unreadable)
    is exported without that body, its error saying why: an export half sent cannot say so any more."""
    try:
        return row_to_exchange(row, bodies)
    except (OSError, ValueError) as exc:
        ex = row_to_exchange({**row, "request_file": None, "request_body": b""}, bodies)
        ex.error = f"{ex.error + '; ' if ex.error else ''}the request body's file could not be read: {exc}"
        return ex


def read_exchanges(path: str | Path) -> list[Exchange]:
    """Every exchange of a session database, in arrival order."""
    return list(iter_exchanges(path))


def iter_exchanges(path: str | Path) -> Iterator[Exchange]:
    """Every exchange of a session database, in arrival order, a page at a time (``facecert export``: a
    long session is written in the memory of a page, not of the session)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such database")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    bodies = spill_folder(str(path))

    last, query = [0], [""]

    def page(after: int) -> list[dict[str, Any]]:
        try:
            if not after:  # the session as it is now (a server may still be adding to it): the export ends
                last[0] = conn.execute("SELECT COALESCE(MAX(id), 0) FROM exchanges").fetchone()[0]
                query[0] = _exchange_page(conn)
            return [dict(row) for row in conn.execute(query[0], (after, last[0], EXPORT_PAGE)).fetchall()]
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{path}: not a facecert session database ({exc})") from None

    try:
        rows = page(0)  # the first page now: a file that is no session database is said before anything is written
    except BaseException:
        conn.close()
        raise

    def exchanges(rows: list[dict[str, Any]]) -> Iterator[Exchange]:
        try:
            while rows:
                yield from (exported(row, bodies) for row in rows)
                rows = page(rows[-1]["id"])
        finally:
            conn.close()

    return exchanges(rows)
