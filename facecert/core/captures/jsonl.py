"""Our JSONL exchange format: one exchange per line, bodies base64 (exact bytes).

{"method": "POST", "path": "/taskRequest", "url": "...", "status": 200,
 "started": 1700000000.1, "ended": 1700000000.2, "peer": "10.0.0.5",
 "request_headers": {...}, "response_headers": {...},
 "request_b64": "...", "response_b64": "...", "error": null}
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from facecert.core.captures.errors import CaptureError
from facecert.core.files import replace_with
from facecert.core.jsonsafe import dumps_strict, loads_strict
from facecert.core.model import Exchange


def exchange_to_record(ex: Exchange) -> dict[str, Any]:
    return {
        "index": ex.index,
        "method": ex.method,
        "path": ex.path,
        "url": ex.url,
        "status": ex.status,
        "started": ex.started,
        "ended": ex.ended,
        "peer": ex.peer,
        "request_headers": ex.request_headers,
        "response_headers": ex.response_headers,
        "request_b64": base64.b64encode(ex.request_body).decode("ascii"),
        "response_b64": None if ex.response_body is None else base64.b64encode(ex.response_body).decode("ascii"),
        "error": ex.error,
        **({"redacted": True} if ex.redacted else {}),
        # the recorder's stall clock (facecert.stalls): a capture judged offline is judged as it was live
        **({"stall_started": ex.stall_started, "stall_ended": ex.stall_ended} if ex.stall_started else {}),
    }


def record_to_exchange(record: dict[str, Any]) -> Exchange:
    """One record as an exchange; a field of the wrong type is a ValueError here, not a crash while judging."""
    _check(record)
    response = record.get("response_b64")
    return Exchange(
        method=record["method"],
        path=record["path"],
        url=record.get("url", ""),
        status=record.get("status"),
        request_body=_b64decode(record.get("request_b64") or ""),
        response_body=None if response is None else _b64decode(response),
        started=_seconds("started", record.get("started")) or 0.0,
        ended=_seconds("ended", record.get("ended")),
        peer=record.get("peer", ""),
        request_headers=record.get("request_headers") or {},
        response_headers=record.get("response_headers") or {},
        error=record.get("error"),
        redacted=record.get("redacted") is True,
        stall_started=_stall("stall_started", record.get("stall_started")),
        stall_ended=_stall("stall_ended", record.get("stall_ended")),
    )


def _seconds(key: str, value: int | float | None) -> float | None:
    """A time in seconds as a float. JSON's integers have no bound: one past a double's range (a
    hostile or broken recorder's) is a ValueError, the capture's error, not an OverflowError."""
    if value is None:
        return None
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{key} is no number of seconds (an integer of {len(str(value))} digits)") from None


def _stall(key: str, value: int | float | None) -> float:
    """A stall clock reading: a finite number of seconds, 0 or more (absent: 0.0, the tap did not count)."""
    seconds = _seconds(key, value)
    if seconds is None:
        return 0.0
    if not 0 <= seconds < math.inf:
        raise ValueError(f"a stall clock reading is seconds, 0 or more, not {value!r}")
    return seconds


_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "path": (str,),
    "url": (str,),
    "status": (int, type(None)),
    "started": (int, float, type(None)),
    "ended": (int, float, type(None)),
    "peer": (str,),
    "request_headers": (dict, type(None)),
    "response_headers": (dict, type(None)),
    "request_b64": (str, type(None)),
    "response_b64": (str, type(None)),
    "error": (str, type(None)),
    "redacted": (bool,),
    "stall_started": (int, float, type(None)),
    "stall_ended": (int, float, type(None)),
}


_FIELD_TYPES = tuple(_TYPES.items())
_TEXT = {str}
_ABSENT = object()


def _b64decode(text: str) -> bytes:
    """``base64.b64decode(text)`` (not validating, as before), without its Python wrapper."""
    try:
        return binascii.a2b_base64(text)
    except ValueError:
        return base64.b64decode(text)  # its own error (a non-ASCII text, bad padding), as before


_CHECKED: set[tuple[Any, ...]] = set()  # record layouts whose fields passed


def _check(record: Any) -> None:
    if not isinstance(record, dict):
        raise ValueError("a record is a JSON object")
    get = record.get
    # the keys and the type of each value decide the loop below: a layout that passed passes again
    layout = (*record, *map(type, record.values()))
    if layout not in _CHECKED:
        for key, types in _FIELD_TYPES:
            value = get(key, _ABSENT)
            if value is not _ABSENT and type(value) not in types:
                raise ValueError(f"{key} is {type(value).__name__}")
        if len(_CHECKED) < 256:  # a writer has a layout or two; a hand-made file a few more
            _CHECKED.add(layout)
    for key in ("request_headers", "response_headers"):
        headers = get(key)
        if headers:
            kinds = set(map(type, headers))  # names and values (JSON has no str subclass): no Python call each
            kinds.update(map(type, headers.values()))
            if kinds != _TEXT:
                raise ValueError(f"{key} holds a name or value that is not text")


def read_jsonl(path: Path) -> Iterator[Exchange]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line or line.isspace():  # what strip() empties (the ASCII whitespace), without a copy
                continue
            try:
                yield _line_to_exchange(line)
            except (ValueError, KeyError, TypeError) as exc:
                raise CaptureError(
                    f"{path}:{number}: not a facecert JSONL exchange ({exc.__class__.__name__}: {str(exc)[:100]})"
                ) from None


class _Record(msgspec.Struct, gc=False):
    """A record as msgspec decodes and checks it in one pass: the types of ``_TYPES`` (an ``int`` field
    takes no ``true``, a text field no ``null``, headers only text), bodies decoded from base64."""

    method: str
    path: str
    url: str = ""
    status: int | None = None
    started: int | float | None = None
    ended: int | float | None = None
    peer: str = ""
    request_headers: dict[str, str] | None = None
    response_headers: dict[str, str] | None = None
    request_b64: bytes | None = None
    response_b64: bytes | None = None
    error: str | None = None
    redacted: bool = False
    stall_started: int | float | None = None
    stall_ended: int | float | None = None


_RECORD = msgspec.json.Decoder(_Record)


def _line_to_exchange(line: bytes) -> Exchange:
    """One line as an exchange. msgspec reads a line into a typed record several times faster than
    ``loads_strict`` followed by :func:`record_to_exchange`, and as they do: it refuses NaN, Infinity
    and a float beyond a double, keeps an integer of any size and the last of repeated keys, and takes
    only strictly padded base64 (a subset of what ``a2b_base64`` reads, decoded alike). It refuses a
    lone surrogate, which ``loads_strict`` keeps (a recorder writes what a peer sent), and anything
    else it cannot type: a line msgspec refuses, or whose stall clock is refused, is read again by
    ``loads_strict`` and :func:`record_to_exchange`, whose reading and error are the ones that count."""
    try:
        record = _RECORD.decode(line)
        # positionally, in the order of Exchange's fields (a third of the cost of 15 keywords); the slow
        # path below names them, and tests/engine/test_fast_reading.py holds the two paths' exchanges equal
        return Exchange(
            record.method,
            record.path,
            record.request_b64 or b"",
            record.status,
            record.response_b64,
            float(record.started or 0.0),  # (past a double: OverflowError, read again below)
            None if record.ended is None else float(record.ended),
            record.request_headers or {},
            record.response_headers or {},
            record.peer,
            record.url,
            -1,
            record.error,
            record.redacted,
            0.0 if record.stall_started is None else _stall("stall_started", record.stall_started),
            0.0 if record.stall_ended is None else _stall("stall_ended", record.stall_ended),
        )
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, OverflowError):
        return record_to_exchange(loads_strict(line, allow_surrogates=True))


def write_jsonl(exchanges: Iterable[Exchange], path: Path) -> Path:
    """One strict JSON line per exchange (facecert.core.jsonsafe), never written through a symlink;
    redacted unless the run keeps personal data (facecert.core.redact)."""
    from facecert.core.redact import current

    def lines(out: Any) -> None:
        for ex in current().exchanges(exchanges):
            out.write(dumps_strict(exchange_to_record(ex)) + "\n")

    return replace_with(Path(path), lines)
