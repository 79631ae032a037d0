"""Schemathesis hooks for fuzzing the mock server (loaded with
``SCHEMATHESIS_HOOKS=tests.hostile.schemathesis_hooks``).

Two things an OpenAPI document cannot say, supplied here so the checks stay
meaningful instead of being switched off:

- **Images.** A member annotated ``contentMediaType: image/jpeg`` must hold a
  decodable JPEG (IMG-FORMAT, IMG-BASE64); a schema-driven generator can only
  produce random strings. In a body generated as *valid*, every member the
  contract annotates as an image gets a real image of that media type, so
  ``positive_data_acceptance`` judges the rest of the message. Negative
  bodies are left as generated.
- **The port.** ``POST /_admin/faults`` with an ``outage`` in mode ``refuse``
  closes the listening socket for ``duration`` seconds: documented, and it
  would leave the fuzzer talking to a closed port. Such bodies are dropped;
  every other fault is sent as generated.
"""

from __future__ import annotations

import base64
import functools
import io
from typing import Any

import schemathesis
from PIL import Image
from schemathesis.core.parameters import ParameterLocation

from facecert.contract import get_contract
from facecert.examples import example_for
from facecert.rules.message import resolve_pointer


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


def _set(doc: Any, pointer: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    parent = resolve_pointer(doc, "/" + "/".join(parts[:-1])) if len(parts) > 1 else doc
    key: Any = parts[-1]
    parent[int(key) if isinstance(parent, list) else key] = value


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    schema = _schema_for(case.operation.path)
    body = case.body
    if schema is None or not isinstance(body, dict) or case.meta is None \
            or case.meta.is_negative_at(ParameterLocation.BODY):
        return case
    for pointer, notes in list(get_contract().annotations(schema, body)):
        media = notes.get("contentMediaType", "")
        if media.startswith("image/"):
            _set(body, pointer, image_for(media))
    return case


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    operation = context.operation
    if operation is None or operation.path != "/_admin/faults" or operation.method.upper() != "POST":
        return True
    return not (isinstance(body, dict) and body.get("kind") == "outage" and body.get("mode") == "refuse")
