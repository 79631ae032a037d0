"""The session's record on disk: one JSON line per finished flow, appended as it finishes.

The addon used to keep every exchange in memory and write the HAR at exit, so
a long session grew without bound and a crash or ``kill -9`` left nothing.
Now each flow is appended to ``session.jsonl`` (facecert's JSONL exchange
format, bodies base64) from mitmproxy's ``response``/``error`` hook, before
the answer goes on to the device, with one unbuffered ``write``: a killed
process loses at most the flows still in flight. ``fsync`` runs about once a
second (a power cut may lose that second). The HAR is assembled from the
record at the end, one entry at a time, so memory stays bounded.

Files are created without following symlinks. A record left by an earlier
run in the same folder is kept, renamed after its time, never overwritten.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from facecert.core.captures.har import exchange_to_entry, exchanges_to_har
from facecert.core.captures.jsonl import exchange_to_record, record_to_exchange
from facecert.core.files import NEW, replace_with
from facecert.core.jsonsafe import dumps_strict, loads_strict
from facecert.core.model import Exchange
from facecert.core.redact import current as redactor

RECORD = "session.jsonl"
_B64_PIECE = 3 * 256 * 1024  # bytes of body per base64 piece (a multiple of 3: the pieces join seamlessly)
_FLUSH_AT = 1024 * 1024


class FlowRecord:
    """Append-only JSONL of the session's exchanges."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / RECORD
        self.count = 0
        self._fd: int | None = None
        self._unsynced = False

    def open(self) -> FlowRecord:
        self.folder.mkdir(parents=True, exist_ok=True)
        _keep_earlier(self.path)
        self._fd = os.open(self.path, NEW | os.O_APPEND, 0o644)
        return self

    def append(self, exchange: Exchange, sizes: dict[str, int] | None = None) -> None:
        """Write one exchange as one line. The bodies are base64-encoded piece by piece straight into
        the file, so a 20 MB body costs no 27 MB JSON string; a line that fails half-way is cut off
        again, and a torn last line (kill -9 mid-write) is skipped by readers."""
        if self._fd is None:
            raise RuntimeError("the record is not open")
        exchange = redactor().exchange(exchange)  # faces and names never reach the disk (unless kept)
        bodies = {"request_b64": exchange.request_body, "response_b64": exchange.response_body}
        light = dataclasses.replace(
            exchange, request_body=b"", response_body=None if exchange.response_body is None else b""
        )
        record = exchange_to_record(light)  # the format's fields, from the format's own writer
        record["index"] = self.count
        for direction, size in (sizes or {}).items():
            record[f"{'request' if direction == 'request' else 'response'}_size"] = size
        for key in bodies:
            record.pop(key, None)
        start = os.fstat(self._fd).st_size
        out = _Lines(self._fd)
        try:
            out.put(dumps_strict(record)[:-1].encode("utf-8"))  # without its closing brace
            for key, body in bodies.items():
                if body is None:
                    out.put(f', "{key}": null'.encode())
                    continue
                out.put(f', "{key}": "'.encode())
                view = memoryview(body)  # the bytes themselves: a Truncated body's len() is its whole size
                for at in range(0, view.nbytes, _B64_PIECE):
                    out.put(base64.b64encode(view[at : at + _B64_PIECE]))
                out.put(b'"')
            out.put(b"}\n")
            out.flush()
        except BaseException:
            try:
                os.ftruncate(self._fd, start)  # no half line for the next record to be glued to
            except OSError:
                pass  # what failed the write is the error to report, not this
            raise
        self.count += 1
        self._unsynced = True

    def sync(self) -> None:
        """Flush the record to the disk (called about once a second, off the event loop)."""
        fd = self._fd
        if fd is not None and self._unsynced:
            self._unsynced = False
            os.fsync(fd)

    def size(self) -> int:
        return os.fstat(self._fd).st_size if self._fd is not None else 0

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class _Lines:
    """Buffered writes to an unbuffered descriptor: one ``write`` for a small record, pieces of
    about :data:`_FLUSH_AT` for a large one."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def put(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        view = memoryview(self.buffer)
        while view:
            view = view[os.write(self.fd, view) :]
        view.release()
        self.buffer.clear()


def _keep_earlier(path: Path) -> None:
    """Move an earlier run's record aside (the link itself, if it is one)."""
    try:
        stat = path.lstat()
    except FileNotFoundError:
        return
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(stat.st_mtime))
    for n in range(1000):
        aside = path.with_name(f"{path.stem}-{stamp}{f'-{n}' if n else ''}{path.suffix}")
        if not os.path.lexists(aside):
            os.replace(path, aside)
            return
    raise FileExistsError(f"{path}: too many earlier records beside it")


def read_records(path: Path, upto: int | None = None) -> Iterator[dict[str, Any]]:
    """Each complete record of the file (up to byte ``upto``); a torn or unreadable line is skipped."""
    with open(path, "rb") as handle:
        done = 0
        for line in handle:
            done += len(line)
            if upto is not None and done > upto:
                return
            try:
                record = loads_strict(line, allow_surrogates=True)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def write_har(
    record: Path, har: Path, creator: str, judged_with: dict[str, Any] | None = None, upto: int | None = None
) -> int:
    """The HAR of every flow in the record, written entry by entry (atomically replaced); entries written."""
    envelope = dumps_strict(exchanges_to_har([], creator, judged_with))
    head, tail = envelope.split('"entries": []', 1)
    count = 0

    def entries(out: TextIO) -> None:
        nonlocal count
        out.write(head + '"entries": [')
        for item in read_records(record, upto):
            try:
                entry = _entry(item)
            except (KeyError, TypeError, ValueError):
                continue  # not one of our lines
            out.write(("," if count else "") + "\n" + dumps_strict(entry))
            count += 1
        out.write("]" + tail + "\n")

    replace_with(har, entries)
    return count


def _entry(record: dict[str, Any]) -> dict[str, Any]:
    entry = exchange_to_entry(record_to_exchange(record))
    notes = [
        f"{direction} body: {record[key]:,} bytes, only the first {kept:,} kept"
        for direction, key, kept in (
            ("request", "request_size", entry["request"]["bodySize"]),
            ("response", "response_size", entry["response"]["bodySize"]),
        )
        if isinstance(record.get(key), int)
    ]
    if notes:
        entry["comment"] = "; ".join(notes)
        if isinstance(record.get("request_size"), int):
            entry["request"]["bodySize"] = record["request_size"]
        if isinstance(record.get("response_size"), int):
            entry["response"]["bodySize"] = record["response_size"]
    return entry
