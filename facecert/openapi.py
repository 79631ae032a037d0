"""OpenAPI 3.1 of the five device endpoints, built from the same schemas.

Schema files become ``components/schemas`` entries; their absolute ``$ref``s
are rewritten to component references so any OpenAPI tool can resolve them.
"""

from __future__ import annotations

import copy
from typing import Any

from facecert.contract import Contract, get_contract


def _component_name(name: str) -> str:
    return name.replace("/", ".")


def _rewrite(node: Any, contract: Contract, ids: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$schema", "$id"):
                continue
            if key == "$ref" and isinstance(value, str):
                base, _, fragment = value.partition("#")
                if base in ids:
                    value = f"#/components/schemas/{ids[base]}{fragment}"
                elif not base and fragment:
                    raise ValueError("local $ref inside a schema file is not supported by the OpenAPI export")
            out[key] = _rewrite(value, contract, ids)
        _bound_integers(out, contract.limits.max_integer)
        return out
    if isinstance(node, list):
        return [_rewrite(item, contract, ids) for item in node]
    return node


def _bound_integers(node: dict[str, Any], limit: int) -> None:
    """State the engine's integer bound (the contract's limits: I-JSON's ±(2**53-1)) on every
    integer the schemas leave open, so tools generating "valid" messages stay inside it."""
    kind = node.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        node.setdefault("minimum", -limit)
        node.setdefault("maximum", limit)


def build_openapi(contract: Contract | None = None, admin: bool = False) -> dict[str, Any]:
    contract = contract or get_contract()
    if admin:
        from mock_server.openapi import admin_openapi

        return admin_openapi()
    ids = {contract.schema_id(name): _component_name(name) for name in contract.raw}
    schemas = {_component_name(name): _rewrite(copy.deepcopy(contract.raw[name]), contract, ids) for name in contract.raw}
    tasks = [{"$ref": f"#/components/schemas/{_component_name(t.schema)}"} for t in contract.all_tasks.values()]
    schemas["TaskAnswer"] = {"description": "The /taskRequest answer: exactly one task (idleTime when none is queued).",
                             "oneOf": tasks}
    schemas["Error"] = {"type": "object", "description": "facecert mock server error body for a refused message",
                        "properties": {"code": {"type": "integer"}, "log": {"type": "string"},
                                       "findings": {"type": "array", "items": {"type": "object"}}}}
    paths: dict[str, Any] = {}
    for endpoint in contract.all_endpoints.values():
        answer = "TaskAnswer" if endpoint.answer == "tasks" else _component_name(endpoint.answer)
        paths[endpoint.path] = {"post": {
            "operationId": endpoint.name,
            "summary": f"{endpoint.name} ({endpoint.spec}, since V{endpoint.since})",
            "tags": ["device"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{_component_name(endpoint.request)}"}}}},
            "responses": {
                "200": {"description": "answer", "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{answer}"}}}},
                "400": {"description": "message refused (not JSON, wrong shape)", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Face terminal HTTP task protocol (device endpoints)", "version": contract.latest,
                 "description": "Built by facecert from schemas/ (JSON Schema 2020-12). The device is the HTTP "
                                "client; every endpoint is POSTed under the configured server_url."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "http://{server_url}", "variables": {"server_url": {"default": "127.0.0.1:8080"}}}],
        "paths": paths,
        "components": {"schemas": schemas},
    }
