"""Correct device messages for the server tests, built from the repaired
examples (never hand-written field lists)."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

from PIL import Image

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.core.rules.message import resolve_pointer
from facecert.mock_server.assets import DEFAULT_FOR_KIND


def poll_body(device_id: str) -> dict[str, Any]:
    body = example_for("device/taskRequest")
    body.update(device_id=device_id, time_stamp=int(time.time()))
    return body


def result_body(device_id: str, task: dict[str, Any], code: int = 0) -> dict[str, Any]:
    """A correct taskResult for a task (its result example when there is one)."""
    schema = get_contract().all_tasks[task["request_type"]].result
    try:
        body = example_for(schema)
    except KeyError:
        body = example_for("device/taskResult")
    body.update(device_id=device_id, request_id=task["request_id"], code=code)
    return body


def capture_body(device_id: str, serial: int = 0) -> dict[str, Any]:
    body = example_for("device/faceRecognition")
    snap = int(time.time())
    body.update(
        device_id=device_id,
        timestamp=snap,
        snap_time=snap,
        snap_time_ms=snap * 1000 + 5,
        frpic_name=f"FACE_0_{snap}_{serial}.jpg",
    )
    return body


def report_body(endpoint: str, device_id: str) -> dict[str, Any]:
    body = example_for(get_contract().all_endpoints[endpoint].request)
    body.update(device_id=device_id, time_stamp=int(time.time()))
    return body


def set_pointer(doc: Any, pointer: str, value: Any) -> None:
    parts = [p for p in pointer.split("/") if p]
    parent = resolve_pointer(doc, "/" + "/".join(parts[:-1])) if len(parts) > 1 else doc
    key: Any = parts[-1]
    parent[int(key) if isinstance(parent, list) else key] = value


def local_downloads(task: dict[str, Any], asset_url: Any) -> list[str]:
    """Point every download URL of a task at the server's default asset of
    that kind (the examples name abc.com); returns the URLs."""
    contract = get_contract()
    schema = contract.all_tasks[task["request_type"]].schema
    urls = []
    for pointer, notes in list(contract.annotations(schema, task)):
        kind = notes.get("x-download")
        if kind and resolve_pointer(task, pointer):
            url = asset_url(DEFAULT_FOR_KIND[kind])
            set_pointer(task, pointer, url)
            urls.append(url)
    return urls


def errors(findings: list[dict[str, Any]], party: str | None = None) -> set[str]:
    return {f["rule"] for f in findings if f["severity"] == "error" and (party is None or f["party"] == party)}


def strict_json(raw: bytes) -> Any:
    """Parse as RFC 8259 JSON in valid UTF-8: no NaN/Infinity tokens, no lone surrogate escapes."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} is not strict JSON")

    text = raw.decode("utf-8")  # strict: invalid UTF-8 raises
    value = json.loads(text, parse_constant=refuse)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate escape raises here
    return value


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims width×height pixels."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 150, 120)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def with_capture_image(body: dict[str, Any], image: bytes) -> dict[str, Any]:
    """Put ``image`` (base64) in every JPEG field the contract annotates in a capture."""
    contract = get_contract()
    schema = contract.all_endpoints["faceRecognition"].request
    for pointer, notes in list(contract.annotations(schema, body)):
        if notes.get("contentMediaType") == "image/jpeg" and isinstance(resolve_pointer(body, pointer), str):
            set_pointer(body, pointer, base64.b64encode(image).decode())
    return body
