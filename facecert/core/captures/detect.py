"""Tell capture formats apart by their first bytes, not by file name."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from facecert.core.captures.errors import CaptureError
from facecert.core.captures.flows import read_flows
from facecert.core.captures.har import read_har
from facecert.core.captures.jsonl import read_jsonl
from facecert.core.model import Exchange

FORMATS = ("har", "flows", "jsonl", "message")


# how facecert's JSONL exchange records begin (facecert/core/captures/jsonl.py writes index first)
_JSONL_RECORD = re.compile(rb'\{\s*"index"\s*:\s*-?\d+\s*,\s*"method"\s*:\s*"')


def sniff_format(path: Path) -> str:
    try:
        head = Path(path).open("rb").read(4096)
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read ({exc.strerror})") from None
    stripped = head.lstrip()
    if not stripped:
        raise CaptureError(f"{path}: empty file")
    if stripped[:1] == b"{":
        first_line = stripped.split(b"\n", 1)[0]
        try:
            record = json.loads(first_line)
            if isinstance(record, dict) and {"method", "path"} <= record.keys():
                return "jsonl"
        except ValueError:
            if _JSONL_RECORD.match(stripped):  # a first record longer than the sniffed head (a capture)
                return "jsonl"
        if b'"log"' in head and (b'"entries"' in head or b'"version"' in head or b'"creator"' in head):
            return "har"
        return "message"
    if stripped[:1].isdigit() and b":" in stripped[:12]:
        return "flows"  # tnetstring: "<length>:<payload>"
    if stripped[:1] == b"[":
        return "message"
    raise CaptureError(
        f"{path}: not a capture facecert can read (expected HAR, mitmproxy flows, facecert JSONL or a JSON message)"
    )


def read_capture(path: Path, fmt: str | None = None) -> Iterator[Exchange]:
    fmt = fmt or sniff_format(path)
    if fmt == "har":
        return read_har(Path(path))
    if fmt == "flows":
        return read_flows(Path(path))
    if fmt == "jsonl":
        return read_jsonl(Path(path))
    raise CaptureError(f"{path}: a single message, not a capture: tell facecert what it is with --as")
