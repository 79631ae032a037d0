"""One message's schema made self-contained: every ``$ref`` replaced by what it points to,
and ``allOf`` parts merged into their parent where that keeps the meaning.

The structural diff then compares what a message must look like, not how the
schemas happen to be split into files (moving a definition into common.schema.json
is no change), and generators that fetch no remote references
(hypothesis-jsonschema) can work on the result.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from facecert.contract_diff.model import Side

ANNOTATIONS = frozenset(
    {
        "description",
        "title",
        "$comment",
        "examples",
        "default",
        "x-since",
        "x-spec",
        "$schema",
        "$id",
        "$anchor",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
MAX_DEPTH = 64  # our messages nest 4 deep; a $ref cycle stops here, the $ref kept as it is


class Conflict(Exception):
    """Two parts of an allOf that cannot be merged into one schema without changing its meaning."""


def bundled(side: Side, name: str) -> Any:
    """The message schema ``name`` of ``side``, self-contained (a deep copy)."""
    schema = side.contract.schema(name, side.version)
    return _resolve(side, schema, side.contract.schema_id(name), 0)


def _resolve(side: Side, node: Any, base: str, depth: int) -> Any:
    if isinstance(node, list):
        return [_resolve(side, item, base, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if depth > MAX_DEPTH:
        return copy.deepcopy(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key in ("properties", "$defs", "patternProperties", "dependentSchemas") and isinstance(value, dict):
            out[key] = {k: _resolve(side, v, base, depth + 1) for k, v in value.items()}
        elif key in ANNOTATIONS or key in ("enum", "const", "required") or key.startswith("x-"):
            out[key] = copy.deepcopy(value)
        else:
            out[key] = _resolve(side, value, base, depth + 1)
    out.pop("$defs", None)  # reached through the $refs that use them
    ref = node.get("$ref")
    if isinstance(ref, str):
        target, target_base = _target(side, ref, base)
        if target is None:
            out["$ref"] = ref  # not ours to resolve: compared as written
            return out
        resolved = _resolve(side, target, target_base, depth + 1)
        siblings = _flatten(out)
        try:
            return merge(resolved, siblings)
        except Conflict:
            return {**{k: v for k, v in siblings.items() if k in ANNOTATIONS}, "allOf": [resolved, siblings]}
    return _flatten(out)


def _target(side: Side, ref: str, base: str) -> tuple[Any, str]:
    """What ``ref`` points to (relative to the document ``base``), and that document's id."""
    doc, _, fragment = ref.partition("#")
    doc = doc or base
    if not doc.startswith(("http://", "https://")):  # relative to the referring document
        doc = base.rsplit("/", 1)[0] + "/" + doc
    for name in side.contract.raw:
        if side.contract.schema_id(name) == doc:
            node: Any = side.contract.schema(name, side.version)
            for part in [p for p in fragment.split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(node, dict) or part not in node:
                    return None, doc
                node = node[part]
            return node, doc
    return None, doc


def _flatten(node: dict[str, Any]) -> dict[str, Any]:
    """Merge ``allOf`` parts into the node where they merge cleanly; the rest stay in ``allOf``."""
    parts = node.pop("allOf", None)
    if not isinstance(parts, list):
        return node
    kept = []
    for part in parts:
        try:
            node = merge(part, node) if isinstance(part, dict) else node
        except Conflict:
            kept.append(part)
            continue
        if not isinstance(part, dict):
            kept.append(part)
    if kept:
        node["allOf"] = kept
    return node


def merge(inner: Any, outer: dict[str, Any]) -> Any:
    """One schema meaning both ``inner`` and ``outer`` (allOf of the two); the outer's
    annotations win. Raises :class:`Conflict` where one schema cannot say both."""
    if inner is True or inner == {}:
        return outer
    if inner is False:
        return False
    if not isinstance(inner, dict):
        raise Conflict(inner)
    out = copy.deepcopy(inner)
    for key, value in outer.items():
        if key not in out or key in ANNOTATIONS or key.startswith("x-"):
            out[key] = value
        elif key == "properties":
            merged = dict(out[key])
            for prop, schema in value.items():
                merged[prop] = merge(merged[prop], schema) if prop in merged else schema
            out[key] = merged
        elif key == "required":
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key in LOWER:
            out[key] = max(out[key], value)
        elif key in UPPER:
            out[key] = min(out[key], value)
        elif key == "type":
            out[key] = _types_meet(out[key], value)
        elif key == "enum":
            out[key] = [v for v in out[key] if _canon(v) in {_canon(x) for x in value}]
        elif _canon(out[key]) != _canon(value):
            raise Conflict(key)
    if "unevaluatedProperties" in inner and "properties" in outer:
        raise Conflict("unevaluatedProperties")  # the inner part closes over its own properties only
    return out


def _types_meet(a: Any, b: Any) -> Any:
    left = {a} if isinstance(a, str) else set(a)
    right = {b} if isinstance(b, str) else set(b)
    both = (left & right) | (
        {"integer"} if ("integer" in left and "number" in right) or ("number" in left and "integer" in right) else set()
    )
    if not both:
        raise Conflict("type")
    return sorted(both)[0] if len(both) == 1 else sorted(both)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def for_generator(schema: Any) -> Any:
    """The bundled schema as a generator reads it: draft-07 words only. ``unevaluatedProperties``
    (2020-12) becomes ``additionalProperties`` where the node lists its properties itself (after
    bundling: every node of ours), our ``x-`` annotations and the content words go. Only the
    generator's yield depends on this: every instance is judged by the real validator."""
    if isinstance(schema, list):
        return [for_generator(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-") or key in ("contentMediaType", "contentEncoding", "$comment", "examples", "format"):
            continue
        if key == "unevaluatedProperties":
            if "allOf" not in schema and "anyOf" not in schema and "oneOf" not in schema and "if" not in schema:
                out["additionalProperties"] = for_generator(value)
            continue
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {k: for_generator(v) for k, v in value.items()}
        elif key in ("enum", "const", "required"):
            out[key] = value
        else:
            out[key] = for_generator(value)
    return out
