"""Our JSONL exchange format: one exchange per line, bodies base64 (exact bytes).

    {"method": "POST", "path": "/taskRequest", "url": "...", "status": 200,
     "started": 1700000000.1, "ended": 1700000000.2, "peer": "10.0.0.5",
     "request_headers": {...}, "response_headers": {...},
     "request_b64": "...", "response_b64": "...", "error": null}
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from facecert.captures.errors import CaptureError
from facecert.model import Exchange


def exchange_to_record(ex: Exchange) -> dict[str, Any]:
    return {
        "index": ex.index, "method": ex.method, "path": ex.path, "url": ex.url, "status": ex.status,
        "started": ex.started, "ended": ex.ended, "peer": ex.peer,
        "request_headers": ex.request_headers, "response_headers": ex.response_headers,
        "request_b64": base64.b64encode(ex.request_body).decode("ascii"),
        "response_b64": None if ex.response_body is None else base64.b64encode(ex.response_body).decode("ascii"),
        "error": ex.error,
    }


def record_to_exchange(record: dict[str, Any]) -> Exchange:
    response = record.get("response_b64")
    return Exchange(
        method=record["method"], path=record["path"], url=record.get("url", ""), status=record.get("status"),
        request_body=base64.b64decode(record.get("request_b64") or ""),
        response_body=None if response is None else base64.b64decode(response),
        started=float(record.get("started") or 0.0), ended=record.get("ended"), peer=record.get("peer", ""),
        request_headers=record.get("request_headers") or {}, response_headers=record.get("response_headers") or {},
        error=record.get("error"),
    )


def read_jsonl(path: Path) -> Iterator[Exchange]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield record_to_exchange(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise CaptureError(f"{path}:{number}: not a facecert JSONL exchange ({exc.__class__.__name__}: "
                                   f"{str(exc)[:100]})") from None


def write_jsonl(exchanges: Iterable[Exchange], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for ex in exchanges:
            handle.write(json.dumps(exchange_to_record(ex)) + "\n")
    return path
