"""OpenAPI 3.1 of the five device endpoints, built from the same schemas.

Schema files become ``components/schemas`` entries; their absolute ``$ref``s
are rewritten to component references so any OpenAPI tool can resolve them.

The default document accepts what the engine accepts: a field the document
does not define is a vendor extension the engine reports as info
(MSG-UNKNOWN-FIELD), so ``unevaluatedProperties: false`` becomes "any value
within the contract's limits" (``VendorValue``) and an OpenAPI tool does not
reject valid field traffic. ``closed=True`` keeps the contract's closed
objects (a strict document: every unknown field rejected).

A taskResult does not name its task, so ``/taskResult`` takes any of the
generic result and the per-task results (``anyOf``: a body is valid when one
of them accepts it; the engine judges it by the task its request_id names).
Task answers are told apart by ``request_type`` (a discriminator, and an
``if``/``then`` per task for validators that ignore it). The repaired examples
(schemas/examples) are the media types' ``examples``. See docs/openapi.md.
"""

from __future__ import annotations

import copy
import importlib.metadata
from typing import Any

from facecert.core.contract import Contract, get_contract
from facecert.core.defaults import DEFAULT_LISTEN
from facecert.core.examples import Example, load_examples

# the keywords that close an object; the open document drops them (vendor fields are info, not errors)
CLOSING = ("unevaluatedProperties", "additionalProperties")
DISCRIMINATOR = "request_type"  # the member naming a task (every task schema requires it as a const)
REQUEST_ID = "request_id"  # the member naming a task instance
PACKAGE = "facecert"
COMPONENT = "#/components/schemas/"
VENDOR = "VendorValue"  # the component an undefined member's value must match in the open document
VENDOR_LEVELS = 4  # levels of a vendor value the open document bounds (see _vendor_values)
METADATA = frozenset({"title", "description", "$comment"})  # with x-*: keywords that do not make a schema


def _component_name(name: str) -> str:
    return name.replace("/", ".")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENT + _component_name(name)}


def _component_ref(component: str, fragment: str) -> str:
    """A reference into a schema file, as a component reference: a ``$defs`` entry is a component of
    its own (``common.deviceId``), so linters see which definitions the messages use."""
    parts = fragment.split("/")
    if len(parts) > 2 and parts[1] == "$defs":
        return "/".join([f"{COMPONENT}{component}.{parts[2]}", *parts[3:]])
    return f"{COMPONENT}{component}{fragment}"


def _rewrite(node: Any, contract: Contract, ids: dict[str, str], closed: bool) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$schema", "$id"):
                continue
            if not closed and key in CLOSING and value is False:
                out[key] = {"$ref": COMPONENT + VENDOR}  # accepted (MSG-UNKNOWN-FIELD, info) within the engine's limits
                continue
            if key == "$ref" and isinstance(value, str):
                base, _, fragment = value.partition("#")
                if base in ids:
                    value = _component_ref(ids[base], fragment)
                elif not base and fragment:
                    raise ValueError("local $ref inside a schema file is not supported by the OpenAPI export")
            out[key] = _rewrite(value, contract, ids, closed)
        _bound_integers(out, contract.limits.max_integer)
        _declare_required(out)
        return out
    if isinstance(node, list):
        return [_rewrite(item, contract, ids, closed) for item in node]
    return node


def _bound_integers(node: dict[str, Any], limit: int) -> None:
    """State the engine's integer bound (the contract's limits: I-JSON's ±(2**53-1)) on every
    integer the schemas leave open, so tools generating "valid" messages stay inside it."""
    kind = node.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        node.setdefault("minimum", -limit)
        node.setdefault("maximum", limit)


def _declare_required(node: dict[str, Any]) -> None:
    """A branch (``then``, an ``anyOf`` item) that requires a field its parent defines names it in
    its own ``properties`` too, as the empty schema: the same constraint, and OpenAPI linters
    (Redocly's no-required-schema-properties-undefined) see every required field declared."""
    required = node.get("required")
    if not isinstance(required, list) or "type" in node:
        return  # a typed schema is a message or an object of its own: its fields are its own business
    properties = node.setdefault("properties", {})
    for name in required:
        properties.setdefault(name, {})


def _vendor_values(contract: Contract) -> dict[str, Any]:
    """Any JSON value within the bounds the engine puts on every value of a message (the contract's
    limits): an undefined member is accepted as a vendor extension, but an integer beyond
    ±(2**53-1) or an over-long string is an error wherever it stands. One component per level of
    nesting (``VendorValue``, ``VendorValue.2``, ...), not a schema that refers to itself: Prism's
    bundler breaks every self-reference (its request validation then silently stops) and copies
    each level once per reference, so a vendor value may nest VENDOR_LEVELS levels deep, where the
    engine allows the contract's max_depth (docs/openapi.md)."""
    limits = contract.limits
    levels = {}
    for depth in range(1, VENDOR_LEVELS + 1):
        level: dict[str, Any] = {
            "type": ["null", "boolean", "integer", "number", "string"],
            "maxLength": limits.max_string_chars,
            "if": {"type": "integer"},
            "then": {"minimum": -limits.max_integer, "maximum": limits.max_integer},
        }
        if depth < VENDOR_LEVELS:
            inner = {"$ref": COMPONENT + _vendor_level(depth + 1)}
            level.update(
                type=[*level["type"], "array", "object"],
                maxItems=limits.max_members,
                items=inner,
                maxProperties=limits.max_members,
                additionalProperties=inner,
            )
        levels[_vendor_level(depth)] = level
    levels[VENDOR]["description"] = (
        "A member the document does not define: a vendor extension, accepted (facecert "
        "reports it as MSG-UNKNOWN-FIELD, info) when its value keeps the contract's "
        "limits."
    )
    return levels


def _vendor_level(depth: int) -> str:
    return VENDOR if depth == 1 else f"{VENDOR}.{depth}"


def _examples(examples: list[Example]) -> dict[str, Any]:
    """Media-type ``examples``: the repaired examples of the document, named by file."""
    return {
        example.file.removesuffix(".json").replace(".", "-"): {
            "summary": f"{example.spec} ({example.file})",
            "description": "Repaired from the protocol document: " + "; ".join(example.repairs)
            if example.repairs
            else "As printed in the protocol document.",
            "value": example.body,
        }
        for example in examples
    }


def _content(schema: dict[str, Any], examples: list[Example]) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = _examples(examples)
    return {"application/json": media}


def project_info(title: str, version: str, description: str) -> dict[str, Any]:
    """The ``info`` object: licence and version from the package's own metadata (pyproject.toml)."""
    meta = importlib.metadata.metadata(PACKAGE)
    licence = meta.get("License-Expression") or meta.get("License") or "UNLICENSED"
    return {
        "title": title,
        "version": version,
        "description": description,
        "license": {"name": licence, "identifier": licence},
        "contact": {"name": f"{PACKAGE} {meta['Version']} maintainers (the harness that wrote this document)"},
    }


def _file_components(contract: Contract, closed: bool) -> dict[str, Any]:
    """Every schema file as a component, its ``$defs`` as components beside it; a file that is only
    definitions (common) adds no component of its own."""
    ids = {contract.schema_id(name): _component_name(name) for name in contract.raw}
    schemas: dict[str, Any] = {}
    for name in contract.raw:
        schema = _rewrite(copy.deepcopy(contract.raw[name]), contract, ids, closed)
        for key, definition in schema.pop("$defs", {}).items():
            schemas[f"{_component_name(name)}.{key}"] = definition
        if any(key not in METADATA and not key.startswith("x-") for key in schema):
            schemas[_component_name(name)] = schema
    if not closed:
        schemas.update(_vendor_values(contract))
    return schemas


def _used(node: Any, found: set[str]) -> set[str]:
    """The component names ``node`` references (directly)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENT):
            found.add(ref.removeprefix(COMPONENT).split("/")[0])
        for value in node.values():
            _used(value, found)
    elif isinstance(node, list):
        for item in node:
            _used(item, found)
    return found


def _by_request_type(description: str, mapping: dict[str, str]) -> dict[str, Any]:
    """One of several task schemas, chosen by ``request_type``: the discriminator for OpenAPI tools
    that read it, and an ``if``/``then`` per task for JSON Schema validators that do not (Prism's): a
    wrong task is then reported against its own schema only, not as every alternative's failures."""
    return {
        "description": f"{description} Told apart by `{DISCRIMINATOR}`.",
        "type": "object",
        "required": [DISCRIMINATOR],
        "properties": {DISCRIMINATOR: {"enum": list(mapping)}},
        "allOf": [
            {"if": {"properties": {DISCRIMINATOR: {"const": name}}, "required": [DISCRIMINATOR]}, "then": {"$ref": ref}}
            for name, ref in mapping.items()
        ],
        "discriminator": {"propertyName": DISCRIMINATOR, "mapping": mapping},
    }


def _reachable(schemas: dict[str, Any], roots: set[str]) -> set[str]:
    """The components ``roots`` reference, directly or through others, and the roots."""
    reached = set(roots)
    todo = list(reached)
    while todo:
        for name in _used(schemas.get(todo.pop()), set()) - reached:
            reached.add(name)
            todo.append(name)
    return reached


def _prune(schemas: dict[str, Any], paths: dict[str, Any]) -> None:
    """Drop what no endpoint uses (e.g. common's userId, schema files of the contract that are not
    messages): a document lists what it uses."""
    reached = _reachable(schemas, _used(paths, set()))
    for name in set(schemas) - reached:
        del schemas[name]


def queued_task_components(contract: Contract | None = None) -> dict[str, Any]:
    """The tasks a platform can queue (all but idleTime) as components for the control API's document
    (``QueuedTask`` and what it references), open as the device document is. ``request_id`` is left
    out: the mock server assigns it and replaces any the caller gives."""
    contract = contract or get_contract()
    schemas = _file_components(contract, closed=False)
    tasks = [t for t in contract.all_tasks.values() if t.name != contract.idle_task]
    out: dict[str, Any] = {}
    for task in tasks:
        schema = copy.deepcopy(schemas[_component_name(task.schema)])
        schema.get("properties", {}).pop(REQUEST_ID, None)
        schema["required"] = [name for name in schema.get("required", []) if name != REQUEST_ID]
        out[f"queued.{task.name}"] = schema
    out["QueuedTask"] = {
        "description": f"A task to queue, told apart by `{DISCRIMINATOR}`; the server assigns {REQUEST_ID}.",
        "oneOf": [{"$ref": f"{COMPONENT}queued.{t.name}"} for t in tasks],
        "discriminator": {
            "propertyName": DISCRIMINATOR,
            "mapping": {t.name: f"{COMPONENT}queued.{t.name}" for t in tasks},
        },
    }
    merged = {**schemas, **out}
    return {name: _without_format(merged[name]) for name in sorted(_reachable(merged, set(out)))}


def _without_format(node: Any) -> Any:
    """The schema without ``format``: an annotation in JSON Schema 2020-12 that the engine does not assert
    (the mock server queues a task whose URL matches its pattern, RFC 3986 or not), while fuzzers hold
    a document to it."""
    if isinstance(node, dict):
        return {
            key: _without_format(value)
            for key, value in node.items()
            if not (key == "format" and isinstance(value, str))
        }  # (a property named format is a dict)
    if isinstance(node, list):
        return [_without_format(item) for item in node]
    return node


def _schemas(contract: Contract, closed: bool) -> dict[str, Any]:
    schemas = _file_components(contract, closed)
    tasks = contract.all_tasks.values()
    schemas["TaskAnswer"] = _by_request_type(
        "The /taskRequest answer: exactly one task (idleTime when none is queued).",
        {t.name: _ref(t.schema)["$ref"] for t in tasks},
    )
    generic = contract.all_endpoints["taskResult"].request
    results = [generic, *dict.fromkeys(t.result for t in tasks if t.result)]
    schemas["TaskResult"] = {
        "description": "A /taskResult body. It does not name its task, so it is valid when the generic result "
        "or the result of any task accepts it; facecert judges it by the task its request_id "
        "names (its own schema)."
        + (
            ""
            if closed
            else " Open objects: the generic result's own "
            "fields (resp_list, resp_type) keep their shape whatever the task, as facecert judges a "
            "result whose task it does not know by the generic form."
        ),
        "anyOf": [_ref(name) for name in results],
    }
    if not closed:
        schemas["TaskResult"]["allOf"] = [_ref(generic)]
    schemas["Error"] = {
        "type": "object",
        "description": "facecert mock server error body for a refused message",
        "properties": {
            "code": {"type": "integer"},
            "log": {"type": "string"},
            "findings": {"type": "array", "items": {"type": "object"}},
        },
    }
    _prune(schemas, _paths(contract))
    return schemas


def _responses(answer: dict[str, Any], examples: list[Example]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "200": {"description": "answer", "content": _content(answer, examples)},
        "400": {"description": "message refused (not JSON, wrong shape); the findings say why", "content": error},
        "413": {"description": "body larger than the contract's limit (MSG-TOO-LARGE)", "content": error},
        "5XX": {"description": "only while a fault mode or misbehaviour is set on purpose (control API)"},
    }


def _paths(contract: Contract) -> dict[str, Any]:
    examples = load_examples()

    def of(*names: str) -> list[Example]:
        return [e for e in examples if e.schema in names]

    tasks = [t.schema for t in contract.all_tasks.values()]
    paths: dict[str, Any] = {}
    for endpoint in contract.all_endpoints.values():
        if endpoint.answer == "tasks":
            answer, answer_examples = {"$ref": "#/components/schemas/TaskAnswer"}, of(*tasks)
        else:
            answer, answer_examples = _ref(endpoint.answer), of(endpoint.answer)
        if endpoint.name == "taskResult":
            request = {"$ref": "#/components/schemas/TaskResult"}
            request_examples = of(endpoint.request, *(t.result for t in contract.all_tasks.values() if t.result))
        else:
            request, request_examples = _ref(endpoint.request), of(endpoint.request)
        paths[endpoint.path] = {
            "post": {
                "operationId": endpoint.name,
                "summary": f"{endpoint.name} ({endpoint.spec}, since V{endpoint.since})",
                "tags": ["device"],
                "security": [],  # the protocol has no authentication (a device sends no credentials)
                "requestBody": {"required": True, "content": _content(request, request_examples)},
                "responses": _responses(answer, answer_examples),
            }
        }
    return paths


def build_openapi(contract: Contract | None = None, closed: bool = False) -> dict[str, Any]:
    """The device endpoints' document (``closed``: unknown fields rejected). The control API's is the
    mock server's own (``facecert.mock_server.openapi.admin_openapi``): it describes a peer, not the contract."""
    contract = contract or get_contract()
    strictness = (
        "Closed objects: a field the document does not define is rejected (`facecert openapi --closed`)."
        if closed
        else "Open objects: a field the document does not define is accepted, as facecert does (it reports "
        "it as MSG-UNKNOWN-FIELD, info); `facecert openapi --closed` rejects it."
    )
    return {
        "openapi": "3.1.0",
        "info": project_info(
            "Face terminal HTTP task protocol (device endpoints)",
            contract.latest,
            "Built by facecert from schemas/ (JSON Schema 2020-12). The device is the HTTP client; every endpoint "
            f"is POSTed under the configured server_url. {strictness}",
        ),
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [
            {
                "url": "http://{server_url}",
                "description": "the platform server (server_url)",
                "variables": {"server_url": {"default": DEFAULT_LISTEN}},
            }
        ],
        "tags": [{"name": "device", "description": "what the device sends, and the server's answers"}],
        "paths": _paths(contract),
        "components": {"schemas": _schemas(contract, closed)},
    }
