"""OpenAPI 3.1 of the mock server's control API (``/_admin``), separate from
the device endpoints' document (``facecert openapi``). Fault kinds and
misbehaviours are listed from their tables."""

from __future__ import annotations

from typing import Any

from mock_server.faults import FAULT_KINDS, OUTAGE_MODES
from mock_server.misbehaviours import MISBEHAVIOURS

_OBJ = {"type": "object"}
_LIST = {"type": "array", "items": {"type": "object"}}


def _op(op_id: str, summary: str, schema: Any = None, status: str = "200", body: Any = None,
        params: list[dict[str, Any]] | None = None, media: str = "application/json") -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id, "summary": summary, "tags": ["admin"],
        "responses": {status: {"description": "ok", "content": {media: {"schema": schema or _OBJ}}},
                      "401": {"$ref": "#/components/responses/Unauthorised"}},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        operation["responses"]["422"] = {"$ref": "#/components/responses/Rejected"}
    if params:
        operation["parameters"] = params
    return operation


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


_DEVICE_Q = {"name": "device_id", "in": "query", "required": False, "schema": {"type": "string"}}


def admin_openapi() -> dict[str, Any]:
    fault_body = {
        "type": "object", "required": ["kind"],
        "properties": {
            "kind": {"enum": list(FAULT_KINDS),
                     "description": "; ".join(f"{k}: {d}" for k, (_, d) in FAULT_KINDS.items())},
            "device_id": {"type": ["string", "null"], "description": "one device; null or absent: every device"},
            "endpoints": {"type": ["array", "null"], "items": {"type": "string"},
                          "description": "only these endpoints"},
            "duration": {"type": ["number", "null"], "description": "seconds; absent: until cleared"},
            "mode": {"enum": list(OUTAGE_MODES)}, "delay": {"type": "number"}, "status": {"type": "integer"},
            "body": {"type": "string"},
        },
    }
    enqueue_body = {"type": "object", "required": ["task"], "properties": {
        "task": {"description": "the task (a JSON object checked against the contract; with raw, anything, even text)"},
        "raw": {"type": "boolean", "default": False, "description": "queue as given, unchecked (robustness tests)"}}}
    paths = {
        "/_admin/devices": {"get": _op("listDevices", "Devices seen: first/last seen, versions, measured cadence",
                                       _LIST)},
        "/_admin/devices/{device_id}/queue": {"get": _op("readQueue", "Queued and awaiting-result tasks of a device",
                                                         _LIST, params=[_path_param("device_id")])},
        "/_admin/devices/{device_id}/tasks": {"post": _op(
            "enqueueTask", "Queue a task for a device (request_id generated); 422 with findings when it breaks the "
            "contract", {"type": "object", "properties": {"request_id": {}, "device_id": {"type": "string"}}},
            status="201", body=enqueue_body, params=[_path_param("device_id")])},
        "/_admin/tasks": {"get": _op("listTasks", "Every task and its state", _LIST, params=[_DEVICE_Q])},
        "/_admin/results": {"get": _op("listResults", "taskResults received", _LIST, params=[_DEVICE_Q])},
        "/_admin/captures": {"get": _op("listCaptures", "faceRecognition captures", _LIST, params=[_DEVICE_Q])},
        "/_admin/captures/{capture_id}/image": {"get": _op(
            "captureImage", "The capture's JPEG (?size=N for a thumbnail)", {"type": "string", "format": "binary"},
            media="image/jpeg", params=[_path_param("capture_id", {"type": "integer"}),
                                        {"name": "size", "in": "query", "schema": {"type": "integer"}}])},
        "/_admin/alarms": {"get": _op("listAlarms", "deviceAlarm messages", _LIST, params=[_DEVICE_Q])},
        "/_admin/gps": {"get": _op("listGps", "gpsReport messages", _LIST, params=[_DEVICE_Q])},
        "/_admin/downloads": {"get": _op("listDownloads", "Asset downloads: who, what, when, bytes, completed or "
                                                          "aborted", _LIST)},
        "/_admin/findings": {"get": _op("listFindings", "Findings of the engine", _LIST, params=[
            _DEVICE_Q, {"name": "party", "in": "query", "schema": {"enum": ["device", "server"]}}])},
        "/_admin/exchanges": {"get": _op("listExchanges", "Exchanges (parsed bodies; raw bytes are in the HAR)",
                                         _LIST, params=[_DEVICE_Q, {"name": "limit", "in": "query",
                                                                    "schema": {"type": "integer"}}])},
        "/_admin/faults": {
            "get": _op("listFaults", "Active faults and the fault kinds"),
            "post": _op("setFault", "Set a fault mode for a device or all", status="201", body=fault_body),
            "delete": _op("clearFaults", "Clear faults (?device_id= for one device's)", params=[_DEVICE_Q]),
        },
        "/_admin/misbehaviours": {"get": _op("listMisbehaviours", "; ".join(
            f"{m.name} -> {m.rule}" for m in MISBEHAVIOURS.values()), _LIST)},
        "/_admin/misbehaviours/{name}": {"put": _op(
            "setMisbehaviour", "Turn a misbehaviour on or off", body={
                "type": "object", "properties": {"on": {"type": "boolean"}}},
            params=[_path_param("name", {"enum": list(MISBEHAVIOURS)})])},
        "/_admin/assets": {"get": _op("listAssets", "Downloadable files and their URLs", _LIST)},
        "/_admin/export.har": {"get": _op("exportHar", "The session as HAR 1.2 (facecert validate accepts it)")},
        "/_admin/overview": {"get": _op("overview", "Everything the live page shows")},
        "/_admin/openapi.json": {"get": _op("openapi", "This document")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "facecert mock server control API", "version": "0.1.0",
                 "description": "JSON control API of the mock platform server, under the same path prefix as the "
                                "device endpoints. When the server has an admin token, send it as "
                                "`Authorization: Bearer TOKEN`, `X-Admin-Token` or `?token=`."},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "header": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"}},
            "responses": {
                "Unauthorised": {"description": "admin token missing or wrong", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}},
                "Rejected": {"description": "refused (e.g. a task that breaks the contract)", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "error": {"type": "string"}, "findings": _LIST}}}}},
            },
        },
        "security": [{}, {"bearer": []}, {"header": []}],
    }
