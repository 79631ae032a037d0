"""OpenAPI 3.1 of the mock server's control API (``/_admin``), separate from
the device endpoints' document (``facecert openapi``). Fault kinds,
misbehaviours, bounds and the tasks that can be queued come from the tables
and the contract the server itself checks against, so the document says what
the server does (Schemathesis holds it to that: tests/hostile)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from facecert.core.contract import get_contract
from facecert.core.defaults import DEFAULT_LISTEN
from facecert.core.model import PARTIES
from facecert.mock_server.bounds import MAX_LIMIT, MAX_THUMBNAIL
from facecert.mock_server.faults import ERROR_STATUSES, FAULT_KINDS, MAX_DELAY_S, MAX_DURATION_S, OUTAGE_MODES
from facecert.mock_server.misbehaviours import MISBEHAVIOURS
from facecert.mock_server.store import SQLITE_INT
from facecert.openapi import PACKAGE, project_info, queued_task_components

_OBJ = {"type": "object"}
_LIST = {"type": "array", "items": {"type": "object"}}


def _responses(status: str, media: str, schema: Any, body: bool, checked: bool, missing: str | None) -> dict[str, Any]:
    """Every answer an operation can give: its own, the guard's and the token's, and the refusals."""
    responses: dict[str, Any] = {
        status: {"description": "ok", "content": {media: {"schema": schema or _OBJ}}},
        "401": {"$ref": "#/components/responses/Unauthorised"},
        "403": {"$ref": "#/components/responses/Forbidden"},
    }
    if missing:
        responses["404"] = {"$ref": "#/components/responses/NotFound", "description": missing}
    if body:
        responses["413"] = {"$ref": "#/components/responses/TooLarge"}
        responses["415"] = {"$ref": "#/components/responses/NotJson"}
    if body or checked:
        responses["422"] = {"$ref": "#/components/responses/Rejected"}
    return responses


def _op(
    op_id: str,
    summary: str,
    schema: Any = None,
    status: str = "200",
    body: Any = None,
    params: list[dict[str, Any]] | None = None,
    media: str = "application/json",
    missing: str | None = None,
) -> dict[str, Any]:
    """One operation. ``missing``: why it may answer 404. A query parameter with bounds is checked
    (422 outside them)."""
    checked = any(p["in"] == "query" and p["schema"].keys() & {"enum", "anyOf"} for p in params or [])
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["admin"],
        "responses": _responses(status, media, schema, body is not None, checked, missing),
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        operation["parameters"] = params
    return operation


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_DEVICE_Q = _query("device_id", {"type": "string"}, "only this device's (absent or empty: every device)")


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter the server reads as absent when it is empty (``?limit=``, as a form sends it)."""
    return {"anyOf": [schema, {"const": ""}]}


_LIMIT_Q = _query(
    "limit",
    _or_empty({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
    "the newest N (absent or empty: all); outside the bounds 422",
)


def _fault_shapes() -> dict[str, Any]:
    """POST /faults: one shape per kind (each takes its own parameters only: any other member is 422)."""
    endpoints = list(get_contract().all_endpoints)
    shared = {
        "device_id": {"type": ["string", "null"], "description": "one device; null or absent: every device"},
        "endpoints": {
            "type": ["array", "null"],
            "items": {"enum": endpoints},
            "description": "only these endpoints; null, absent or empty: every endpoint",
        },
        "duration": {
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "maximum": MAX_DURATION_S,
            "description": "seconds; null or absent: until cleared",
        },
    }
    own: dict[str, dict[str, Any]] = {
        "mode": {"enum": list(OUTAGE_MODES)},
        "delay": {"type": "number", "minimum": 0, "maximum": MAX_DELAY_S, "description": "seconds (not scaled)"},
        "status": {"type": "integer", "minimum": ERROR_STATUSES[0], "maximum": ERROR_STATUSES[1]},
        "body": {"type": "string", "description": "sent as UTF-8 (no lone surrogates)"},
    }
    shapes: dict[str, Any] = {}
    for kind, (defaults, text) in FAULT_KINDS.items():
        properties = {
            "kind": {"const": kind},
            **shared,
            **{name: {**own[name], "default": value} for name, value in defaults.items()},
        }
        shapes[kind] = {
            "type": "object",
            "description": text,
            "required": ["kind"],
            "properties": properties,
            "additionalProperties": False,
        }
    shapes["outage"]["if"] = {"properties": {"mode": {"const": "refuse"}}, "required": ["mode"]}
    shapes["outage"]["then"] = {
        "description": "mode refuse closes the port for everyone: no device_id or endpoints, and a duration",
        "required": ["duration"],
        "properties": {
            "device_id": {"type": "null"},
            "endpoints": {"anyOf": [{"type": "null"}, {"maxItems": 0}]},
            "duration": {"type": "number"},
        },
    }
    return shapes


def _fault_body() -> dict[str, Any]:
    refs = {kind: f"#/components/schemas/fault.{kind}" for kind in FAULT_KINDS}
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "kind", "mapping": refs},
    }


def _enqueue_body() -> dict[str, Any]:
    """POST /devices/{id}/tasks: a task of the contract (checked by the engine), or anything with raw."""
    return {
        "anyOf": [
            {
                "type": "object",
                "required": ["task"],
                "description": "checked: 422 with findings when it breaks the contract",
                "properties": {"task": {"$ref": "#/components/schemas/QueuedTask"}, "raw": {"const": False}},
            },
            {
                "type": "object",
                "required": ["task", "raw"],
                "description": "queued as given, unchecked (robustness tests): any JSON value, even text",
                "properties": {"task": {}, "raw": {"const": True}},
            },
        ]
    }


def _paths() -> dict[str, Any]:
    return {
        "/_admin/devices": {
            "get": _op("listDevices", "Devices seen: first/last seen, versions, measured cadence", _LIST)
        },
        "/_admin/devices/{device_id}/queue": {
            "get": _op(
                "readQueue", "Queued and awaiting-result tasks of a device", _LIST, params=[_path_param("device_id")]
            )
        },
        "/_admin/devices/{device_id}/tasks": {
            "post": _op(
                "enqueueTask",
                "Queue a task for a device (request_id generated); 422 with findings when it breaks the contract",
                {"type": "object", "properties": {"request_id": {}, "device_id": {"type": "string"}}},
                status="201",
                body=_enqueue_body(),
                params=[_path_param("device_id")],
            )
        },
        "/_admin/tasks": {"get": _op("listTasks", "Every task and its state", _LIST, params=[_DEVICE_Q])},
        "/_admin/results": {"get": _op("listResults", "taskResults received", _LIST, params=[_DEVICE_Q])},
        "/_admin/captures": {
            "get": _op("listCaptures", "faceRecognition captures", _LIST, params=[_DEVICE_Q, _LIMIT_Q])
        },
        "/_admin/captures/{capture_id}/image": {
            "get": _op(
                "captureImage",
                "The capture's JPEG (?size=N for a thumbnail)",
                {"type": "string", "format": "binary"},
                media="image/jpeg",
                missing="no such capture, or it has no image",
                params=[
                    _path_param("capture_id", {"type": "integer", "minimum": 1, "maximum": SQLITE_INT[1]}),
                    _query(
                        "size",
                        _or_empty({"type": "integer", "minimum": 1, "maximum": MAX_THUMBNAIL}),
                        "a thumbnail of at most N pixels a side (absent or empty: the capture as stored)",
                    ),
                ],
            )
        },
        "/_admin/alarms": {"get": _op("listAlarms", "deviceAlarm messages", _LIST, params=[_DEVICE_Q])},
        "/_admin/gps": {"get": _op("listGps", "gpsReport messages", _LIST, params=[_DEVICE_Q])},
        "/_admin/downloads": {
            "get": _op(
                "listDownloads",
                "Asset downloads: who, what, when, bytes, completed or aborted",
                _LIST,
                params=[_LIMIT_Q],
            )
        },
        "/_admin/findings": {
            "get": _op(
                "listFindings",
                "Findings of the engine",
                _LIST,
                params=[
                    _DEVICE_Q,
                    _query("party", {"enum": [*PARTIES, ""]}, "who broke the rule (absent or empty: both)"),
                    _LIMIT_Q,
                ],
            )
        },
        "/_admin/exchanges": {
            "get": _op(
                "listExchanges",
                "Exchanges (parsed bodies; raw bytes are in the HAR)",
                _LIST,
                params=[_DEVICE_Q, _LIMIT_Q],
            )
        },
        "/_admin/faults": {
            "get": _op("listFaults", "Active faults and the fault kinds"),
            "post": _op("setFault", "Set a fault mode for a device or all", status="201", body=_fault_body()),
            "delete": _op("clearFaults", "Clear faults (?device_id= for one device's)", params=[_DEVICE_Q]),
        },
        "/_admin/misbehaviours": {
            "get": _op("listMisbehaviours", "; ".join(f"{m.name} -> {m.rule}" for m in MISBEHAVIOURS.values()), _LIST)
        },
        "/_admin/misbehaviours/{name}": {
            "put": _op(
                "setMisbehaviour",
                "Turn a misbehaviour on or off (`{}` turns it on)",
                body={"type": "object", "properties": {"on": {"type": "boolean", "default": True}}},
                missing="no misbehaviour of that name",
                params=[_path_param("name", {"enum": list(MISBEHAVIOURS)})],
            )
        },
        "/_admin/assets": {"get": _op("listAssets", "Downloadable files and their URLs", _LIST)},
        "/_admin/export.har": {"get": _op("exportHar", "The session as HAR 1.2 (facecert validate accepts it)")},
        "/_admin/overview": {"get": _op("overview", "Everything the live page shows")},
        "/_admin/openapi.json": {"get": _op("openapi", "This document")},
    }


def _error(description: str, findings: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {"error": {"type": "string"}}
    if findings:
        properties["findings"] = _LIST
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object", "properties": properties}}},
    }


def admin_openapi() -> dict[str, Any]:
    schemas = {f"fault.{kind}": shape for kind, shape in _fault_shapes().items()}
    return {
        "openapi": "3.1.0",
        "info": project_info(
            "facecert mock server control API",
            importlib.metadata.version(PACKAGE),
            "JSON control API of the mock platform server, under the same path prefix as the device endpoints. "
            "Without an admin token (`facecert serve --admin-token`) it is open to this machine; with one, send "
            "it as `Authorization: Bearer TOKEN`, `X-Admin-Token` or `?token=`. A browser's cross-site request "
            "or a foreign Host is refused (403), a write needs a JSON Content-Type (415).",
        ),
        "servers": [{"url": f"http://{DEFAULT_LISTEN}", "description": "facecert serve (its --host and --port)"}],
        "tags": [{"name": "admin", "description": "queue tasks, set faults, read what the server saw"}],
        "paths": _paths(),
        "components": {
            "schemas": {**schemas, **queued_task_components()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the admin token"},
                "header": {"type": "apiKey", "in": "header", "name": "X-Admin-Token", "description": "the admin token"},
                "query": {"type": "apiKey", "in": "query", "name": "token", "description": "the admin token"},
            },
            "responses": {
                "Unauthorised": _error("the server has an admin token and it is missing or wrong"),
                "Forbidden": _error("a browser's cross-site request, or a Host that is not this server's name"),
                "NotFound": _error("not found"),
                "TooLarge": _error("the body is larger than the server's max_body"),
                "NotJson": _error("a write without Content-Type: application/json"),
                "Rejected": _error(
                    "refused: a parameter out of its bounds, a body that is not JSON or breaks its "
                    "schema, a task that breaks the contract (with findings)",
                    findings=True,
                ),
            },
        },
        # no token configured: open ({}); with one, any of the three ways of sending it
        "security": [{}, {"bearer": []}, {"header": []}, {"query": []}],
    }
