"""HAR 1.2 (what mitmproxy, browsers and Charles write) to exchanges and back.

Binary bodies: mitmproxy writes binary response bodies base64 with
``"encoding": "base64"``; we do the same for request bodies (``postData``),
which keeps bytes exact where plain HAR would lose them.

Reading, a request body given only as ``postData.params`` (chrome-har writes JSON
bodies so: the object's members as ``{name, value}`` pairs, an array member as one
pair per element) is rebuilt into the JSON object, and form parameters into a
form body, so they are not read as empty. The rebuild cannot tell a one-element
array from its element, nor see an empty array: chrome-har drops that difference.

Writing, the log carries one page (``pages``, every entry's ``pageref``) and
``browser`` beside ``creator``: optional in HAR 1.2, but HAR libraries such as
haralyzer need them.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

from facecert import __version__
from facecert.core.captures.errors import CaptureError
from facecert.core.files import replace_with
from facecert.core.jsonsafe import dumps_strict, loads_strict
from facecert.core.model import Exchange

PAGE_ID = "facecert"  # the one page every entry we write belongs to


def read_har(path: Path) -> Iterator[Exchange]:
    try:
        data = loads_strict(
            path.read_bytes(), allow_surrogates=True
        )  # a lone surrogate in a header is kept, cleaned on write
    except (UnicodeDecodeError, ValueError) as exc:
        raise CaptureError(f"{path}: not a readable HAR file ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    entries = (
        data.get("log", {}).get("entries") if isinstance(data, dict) and isinstance(data.get("log"), dict) else None
    )
    if not isinstance(entries, list):
        raise CaptureError(f"{path}: JSON but not HAR (no log.entries array)")
    for number, entry in enumerate(entries):
        try:
            yield _entry_to_exchange(entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CaptureError(f"{path}: HAR entry {number} is malformed ({exc.__class__.__name__}: {exc})") from None


def _decode(text: str | None, encoding: str | None) -> bytes:
    if not text:
        return b""
    if encoding == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8", "surrogateescape")


def _post_body(post: dict[str, Any]) -> bytes:
    """The request body: ``text`` as written, else rebuilt from ``params``."""
    if post.get("text") or not post.get("params"):
        return _decode(post.get("text"), post.get("encoding"))
    pairs = [(_text(p["name"], "param name"), p.get("value")) for p in post["params"]]
    if "json" in str(post.get("mimeType") or "").lower():
        # ASCII escapes keep what the sender sent (a lone surrogate stays one, for the engine to judge)
        return json.dumps(_json_object(pairs), separators=(",", ":")).encode("ascii")
    return urlencode([(name, "" if value is None else str(value)) for name, value in pairs]).encode("ascii")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object chrome-har split into pairs: a name given more than once was an array."""
    members: dict[str, list[Any]] = {}
    for name, value in pairs:
        members.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in members.items()}


def _entry_to_exchange(entry: dict[str, Any]) -> Exchange:
    request, response = entry["request"], entry.get("response") or {}
    started = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp()
    total_ms = entry.get("time")
    if not isinstance(total_ms, (int, float)) or isinstance(total_ms, bool) or not 0 <= total_ms < math.inf:
        total_ms = 0  # no usable duration: the exchange ended when it started
    post = request.get("postData") or {}
    content = response.get("content") or {}
    status = response.get("status") or None
    if status is not None and (type(status) is not int or not 0 < status < 1000):
        raise ValueError(f"response status {str(status)[:20]!r} is not an HTTP status")
    url = request["url"]
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    stall_started, stall_ended = _stalls(entry.get("_stall"))
    return Exchange(
        method=request.get("method", "GET"),
        path=path or "/",
        url=url,
        request_body=_post_body(post),
        status=status,
        response_body=_decode(content.get("text"), content.get("encoding")) if status else None,
        started=started,
        ended=started + total_ms / 1000.0,
        request_headers=_headers(request.get("headers")),
        response_headers=_headers(response.get("headers")),
        peer=_text(entry.get("_peer", ""), "_peer"),
        error=None if response.get("_error") is None else _text(response["_error"], "_error"),
        redacted=entry.get("_redacted") is True,
        stall_started=stall_started,
        stall_ended=stall_ended,
    )


def _stalls(value: Any) -> tuple[float, float]:
    """``_stall``: the recorder's stall clock when it stamped the request and the answer (facecert.stalls);
    a HAR from elsewhere has none, and is judged without it."""
    if value is None:
        return 0.0, 0.0
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf for v in value)
    ):
        raise ValueError(f"_stall is two stall clock readings (seconds, 0 or more), not {str(value)[:40]!r}")
    return float(value[0]), float(value[1])


def _headers(items: Any) -> dict[str, str]:
    """HAR headers as a dict of text (anything else is a malformed entry, not a crash later)."""
    return {_text(h["name"], "header name"): _text(h["value"], "header value") for h in items or []}


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is {type(value).__name__}, not text")
    return value


def _body(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"text": base64.b64encode(data).decode("ascii"), "encoding": "base64"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def exchange_to_entry(ex: Exchange, base_url: str = "http://device.invalid") -> dict[str, Any]:
    url = ex.url or (base_url.rstrip("/") + ex.path)
    ended = ex.ended if ex.ended is not None else ex.started
    request = {
        "method": ex.method,
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in ex.request_headers.items()],
        "queryString": [],
        "headersSize": -1,
        "bodySize": len(ex.request_body),
    }
    if ex.request_body or ex.method.upper() == "POST":
        request["postData"] = {"mimeType": ex.request_content_type or "application/json", **_body(ex.request_body)}
    if ex.status is None:
        response: dict[str, Any] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": ex.error or "no answer",
        }
    else:
        body = ex.response_body or b""
        response = {
            "status": ex.status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [{"name": k, "value": v} for k, v in ex.response_headers.items()],
            "content": {"size": len(body), "mimeType": ex.response_content_type, **_body(body)},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": len(body),
        }
    return {
        "startedDateTime": _iso(ex.started),
        "time": round((ended - ex.started) * 1000.0, 3),
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": round((ended - ex.started) * 1000.0, 3), "receive": 0},
        "pageref": PAGE_ID,
        "_peer": ex.peer,
        **({"_redacted": True} if ex.redacted else {}),
        # the recorder's stall clock (facecert.stalls): judged offline as it was live
        **({"_stall": [ex.stall_started, ex.stall_ended]} if ex.stall_started else {}),
        # what went wrong with an answered exchange (an unanswered one says it in response._error)
        **({"comment": ex.error} if ex.error and ex.status is not None else {}),
    }


def exchanges_to_har(
    exchanges: Iterable[Exchange], creator: str = "facecert", judged_with: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``judged_with`` (profile, protocol version, time scale, tolerance) is kept in the
    log's ``_facecert`` member, so ``facecert validate`` judges the file as it was judged live."""
    entries = [exchange_to_entry(ex) for ex in exchanges]
    return _har(entries[0]["startedDateTime"] if entries else _iso(time.time()), creator, judged_with, entries)


def _har(started: str, creator: str, judged_with: dict[str, Any] | None, entries: list[Any]) -> dict[str, Any]:
    page = {
        "startedDateTime": started,
        "id": PAGE_ID,
        "title": creator,
        "pageTimings": {"onContentLoad": -1, "onLoad": -1},
    }
    log: dict[str, Any] = {
        "version": "1.2",
        "creator": {"name": creator, "version": __version__},
        "browser": {"name": creator, "version": __version__},
        "pages": [page],
        "entries": entries,
    }
    if judged_with:
        log["_facecert"] = {"judged_with": judged_with}
    return {"log": log}


def har_text(
    exchanges: Iterable[Exchange], creator: str = "facecert", judged_with: dict[str, Any] | None = None
) -> Iterator[str]:
    """The text of :func:`exchanges_to_har` as strict JSON, piece by piece: one entry at a time is in
    memory, so a session of any length is written (or sent) in the memory of its largest exchange. The
    pieces joined are ``dumps_strict(exchanges_to_har(...))``."""
    items = iter(exchanges)
    first = next(items, None)
    entry = exchange_to_entry(first) if first is not None else None
    started = entry["startedDateTime"] if entry is not None else _iso(time.time())
    head, tail = dumps_strict(_har(started, creator, judged_with, [])).split(_NO_ENTRIES, 1)
    yield head + '"entries": ['
    if entry is not None:
        yield dumps_strict(entry)
        for ex in items:
            yield ", " + dumps_strict(exchange_to_entry(ex))
    yield "]" + tail


_NO_ENTRIES = '"entries": []'  # where the envelope's text takes the entries (dumps_strict's separators)


def read_judged_with(path: Path) -> dict[str, Any] | None:
    """How a HAR that facecert wrote was judged live (None for other HAR files)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    log = data.get("log") if isinstance(data, dict) else None
    meta = log.get("_facecert") if isinstance(log, dict) else None
    settings = meta.get("judged_with") if isinstance(meta, dict) else None
    return settings if isinstance(settings, dict) else None


def write_har(
    exchanges: Iterable[Exchange], path: Path, creator: str = "facecert", judged_with: dict[str, Any] | None = None
) -> Path:
    """The HAR as strict JSON (facecert.core.jsonsafe), never written through a symlink; redacted
    unless the run keeps personal data (facecert.core.redact: ``_redacted`` on each entry)."""
    from facecert.core.redact import current

    def write(out: TextIO) -> None:
        for piece in har_text(current().exchanges(exchanges), creator, judged_with):
            out.write(piece)

    return replace_with(Path(path), write)
