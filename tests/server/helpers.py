"""Correct device messages for the server tests, built from the repaired
examples (never hand-written field lists)."""

from __future__ import annotations

import time
from typing import Any

from facecert.contract import get_contract
from facecert.examples import example_for
from facecert.rules.message import resolve_pointer

from mock_server.assets import DEFAULT_FOR_KIND

SCALE = 0.05  # protocol intervals x 0.05: result deadline 6 s, idle 1 s


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
    body.update(device_id=device_id, timestamp=snap, snap_time=snap, snap_time_ms=snap * 1000 + 5,
                frpic_name=f"FACE_0_{snap}_{serial}.jpg")
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
