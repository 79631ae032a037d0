"""Schemathesis hooks for fuzzing the mock server (loaded with
``SCHEMATHESIS_HOOKS=tests.hostile.schemathesis_hooks``).

Two things an OpenAPI document cannot say, supplied here so the checks stay
meaningful instead of being switched off:

- **Images.** A member annotated ``contentMediaType: image/jpeg`` must hold a
  decodable JPEG (IMG-FORMAT, IMG-BASE64); a schema-driven generator can only
  produce random strings. In a body generated as *valid*, every member the
  contract annotates as an image gets a real image of that media type, so
  ``positive_data_acceptance`` judges the rest of the message. The same for
  a task queued through the control API (``POST /_admin/devices/{id}/tasks``,
  checked by the engine too). Negative bodies are left as generated.
- **Sizes.** A member annotated ``x-max-serialized-bytes`` (addUser's
  user_info: 256 bytes as compact UTF-8 JSON, USERINFO-SIZE) is trimmed to
  fit in a body generated as valid: a schema can bound members and lengths,
  not the bytes of a serialisation.
- **Relations.** snap_time and snap_time_ms name the same second
  (SNAPTIME-MS): in a valid body whose two disagree, snap_time is set from
  snap_time_ms.
- **The port.** ``POST /_admin/faults`` with an ``outage`` in mode ``refuse``
  closes the listening socket for ``duration`` seconds: documented, and it
  would leave the fuzzer talking to a closed port. Such bodies are dropped;
  every other fault is sent as generated.
"""

from __future__ import annotations

import base64
import functools
import io
import json
from typing import Any

import schemathesis
from PIL import Image
from schemathesis.core.parameters import ParameterLocation

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.core.rules.message import resolve_pointer, snap_time_issues

ENQUEUE = "/_admin/devices/{device_id}/tasks"  # the control API call that queues a task


@functools.cache
def image_for(media_type: str) -> str:
    """Base64 of a small real image of the media type (the contract's own
    example JPEG; a drawn PNG)."""
    if media_type == "image/jpeg":
        return str(example_for("device/faceRecognition")["image"])
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 160, 120)).save(out, media_type.split("/", 1)[1].upper())
    return base64.b64encode(out.getvalue()).decode()


def _schema_for(path: str) -> str | None:
    for endpoint in get_contract().all_endpoints.values():
        if path.endswith(endpoint.path):
            return endpoint.request
    return None


def _message(path: str, body: Any) -> tuple[str, Any] | None:
    """(schema, message) of a generated body: a device message, or the task it queues."""
    if path == ENQUEUE:
        task = body.get("task") if isinstance(body, dict) and body.get("raw") is not True else None
        name = task.get("request_type") if isinstance(task, dict) else None
        known = get_contract().all_tasks.get(name) if isinstance(name, str) else None
        return (known.schema, task) if known else None
    schema = _schema_for(path)
    return (schema, body) if schema is not None and isinstance(body, dict) else None


def _set(doc: Any, pointer: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    parent = resolve_pointer(doc, "/" + "/".join(parts[:-1])) if len(parts) > 1 else doc
    key: Any = parts[-1]
    parent[int(key) if isinstance(parent, list) else key] = value


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    target = _message(case.operation.path, case.body)
    if target is None or case.meta is None or case.meta.is_negative_at(ParameterLocation.BODY):
        return case
    schema, body = target
    for pointer, notes in list(get_contract().annotations(schema, body)):
        media = notes.get("contentMediaType", "")
        if media.startswith("image/"):
            _set(body, pointer, image_for(media))
        if "x-max-serialized-bytes" in notes:
            _trim(resolve_pointer(body, pointer), int(notes["x-max-serialized-bytes"]))
    if snap_time_issues(body, ""):
        body["snap_time"] = body["snap_time_ms"] // 1000
    return case


def _trim(value: Any, limit: int) -> None:
    """Drop an object's last members until its compact UTF-8 JSON fits in ``limit`` bytes (the
    annotated objects have no required members)."""
    while isinstance(value, dict) and value and _size(value) > limit:
        value.pop(next(reversed(value)))


def _size(value: Any) -> int:
    """Bytes of compact UTF-8 JSON, as the engine counts them (USERINFO-SIZE)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """A case, not a body: the coverage phase runs filter_case and map_case only (not filter_body)."""
    if case.operation.path != "/_admin/faults" or case.operation.method.upper() != "POST":
        return True
    body = case.body
    return not (isinstance(body, dict) and body.get("kind") == "outage" and body.get("mode") == "refuse")
