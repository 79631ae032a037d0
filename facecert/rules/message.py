"""Checks on one message: parsing, its schema, and the content the schema
can only annotate (images, size limits, snap_time_ms)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from facecert.contract import Contract, SchemaError
from facecert.model import abbreviate

_RULE_BY_KEYWORD = {
    "required": "MSG-REQUIRED",
    "type": "MSG-TYPE",
    "enum": "MSG-ENUM",
    "const": "MSG-ENUM",
    "minimum": "MSG-RANGE",
    "maximum": "MSG-RANGE",
    "exclusiveMinimum": "MSG-RANGE",
    "exclusiveMaximum": "MSG-RANGE",
    "minLength": "MSG-RANGE",
    "maxLength": "MSG-RANGE",
    "minItems": "MSG-RANGE",
    "maxItems": "MSG-RANGE",
    "pattern": "MSG-FORMAT",
    "format": "MSG-FORMAT",
    "false": "MSG-NOT-ALLOWED",
    "not": "MSG-NOT-ALLOWED",  # `"not": {}` excludes a field (deviceAlarm image unless alarm_type 12)
    "unevaluatedProperties": "MSG-UNKNOWN-FIELD",
}
MAX_DEPTH = 100  # protocol messages nest 4 levels; deeper is an attack or a bug, reported as MSG-NOT-JSON
MAGIC = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",)}


@dataclass
class Issue:
    """A message-level problem before it becomes a Finding (the engine adds where/who)."""

    rule: str
    message: str
    pointer: str = ""
    expected: Any = None
    actual: Any = None


class ParseFailure(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """True when arrays/objects nest deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def parse_body(raw: bytes | None, limit: int, what: str) -> Any:
    """Parse a body as strict JSON, or raise ParseFailure with the reason."""
    if raw is None or len(raw.strip()) == 0:
        raise ParseFailure(Issue("MSG-EMPTY-BODY", f"{what} has an empty body; a JSON object is required",
                                 expected="JSON object", actual="empty body"))
    if len(raw) > limit:
        raise ParseFailure(Issue("MSG-TOO-LARGE", f"{what} body is {len(raw):,} bytes, above the limit of {limit:,}",
                                 expected=f"<= {limit} bytes", actual=len(raw)))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseFailure(Issue("MSG-NOT-JSON", f"{what} body is not UTF-8 text (byte {exc.start}: "
                                 f"{raw[exc.start:exc.start + 1]!r})", expected="UTF-8 JSON", actual="undecodable bytes")) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
        if _nesting_exceeds(value, MAX_DEPTH):
            raise RecursionError  # validators recurse too: jsonschema-rs fails near the interpreter's limit
    except RecursionError:
        raise ParseFailure(Issue("MSG-NOT-JSON", f"{what} body nests too deeply to be a protocol message",
                                 expected="JSON object", actual="deep nesting")) from None
    except ValueError as exc:
        raise ParseFailure(Issue("MSG-NOT-JSON", f"{what} body is not JSON: {exc}",
                                 expected="JSON object", actual=abbreviate(text, 60))) from None
    if not isinstance(value, dict):
        raise ParseFailure(Issue("MSG-NOT-OBJECT", f"{what} body is JSON {type(value).__name__}, not an object",
                                 expected="JSON object", actual=abbreviate(value)))
    return value


def schema_issues(contract: Contract, schema: str, body: Any, version: str, what: str) -> list[Issue]:
    issues = [_issue(contract, schema, error, version, what) for error in contract.errors(schema, body, version)]
    return _one_cause_per_field(issues)


def _one_cause_per_field(issues: list[Issue]) -> list[Issue]:
    """A value of the wrong type also fails its enum/range/pattern; report the
    type alone, since that is the cause a firmware engineer has to fix."""
    typed = {issue.pointer for issue in issues if issue.rule == "MSG-TYPE"}
    consequences = {"MSG-ENUM", "MSG-RANGE", "MSG-FORMAT", "MSG-SCHEMA"}
    return [i for i in issues if not (i.pointer in typed and i.rule in consequences)]


def _issue(contract: Contract, schema: str, error: SchemaError, version: str, what: str) -> Issue:
    rule = _RULE_BY_KEYWORD.get(error.keyword, "MSG-SCHEMA")
    field = error.pointer or "/"
    label = _field_label(contract, schema, error.pointer, version)
    if rule == "MSG-REQUIRED":
        message = f"{what}: required field {field}{label} is missing"
        return Issue(rule, message, error.pointer, expected="present", actual="absent")
    if rule == "MSG-UNKNOWN-FIELD":
        message = f"{what}: field {field} is not defined by the document (protocol V{version}); ignored"
        return Issue(rule, message, error.pointer, expected="a documented field", actual=error.params.get("property"))
    detail = error.message
    if len(detail) > 160:
        detail = detail[:150] + "…"
    message = f"{what}: {field}{label} — {detail}; got {abbreviate(error.value)}"
    return Issue(rule, message, error.pointer, expected=_expected(error), actual=error.value)


def _expected(error: SchemaError) -> Any:
    params = error.params or {}
    for key in ("types", "options", "limit", "pattern", "format", "expected_value", "schema"):
        if key in params:
            return params[key]
    return error.keyword


def _field_label(contract: Contract, schema: str, pointer: str, version: str) -> str:
    node = contract_field(contract, schema, pointer, version)
    description = node.get("description") if node else None
    return f" ({description.split(';')[0][:60]})" if description else ""


def contract_field(contract: Contract, schema: str, pointer: str, version: str) -> dict[str, Any] | None:
    """The schema node that describes the field at ``pointer`` (best effort: properties/items/allOf/$ref)."""
    node: Any = contract.schema(schema, version)
    for part in [p for p in pointer.split("/") if p]:
        node = _child(contract, node, part, version)
        if node is None:
            return None
    return node


def _child(contract: Contract, node: dict[str, Any], part: str, version: str) -> dict[str, Any] | None:
    candidates = [node]
    seen = 0
    while candidates and seen < 50:
        seen += 1
        current = candidates.pop(0)
        if "$ref" in current:
            candidates.append(contract._resolve(current["$ref"], version))
        if part.isdigit() and isinstance(current.get("items"), dict):
            return current["items"]
        props = current.get("properties") or {}
        if part in props:
            return props[part]
        for key in ("allOf", "anyOf", "oneOf"):
            candidates.extend(x for x in current.get(key, []) if isinstance(x, dict))
        for key in ("then", "else"):
            if isinstance(current.get(key), dict):
                candidates.append(current[key])
    return None


def content_issues(contract: Contract, schema: str, body: Any, version: str, what: str) -> tuple[list[Issue], list[str]]:
    """Images that must decode, size limits on serialised objects; also the
    download URLs the message carries (second value)."""
    issues: list[Issue] = []
    downloads: list[str] = []
    for pointer, notes in contract.annotations(schema, body, version):
        value = resolve_pointer(body, pointer)
        media = notes.get("contentMediaType")
        if media and notes.get("contentEncoding") == "base64" and isinstance(value, str):
            issues.extend(_image_issues(value, media, pointer, what))
        limit = notes.get("x-max-serialized-bytes")
        if limit is not None and value is not None:
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            if size > int(limit):
                issues.append(Issue("USERINFO-SIZE", f"{what}: {pointer} is {size} bytes as compact UTF-8 JSON; "
                                    f"the document allows {limit} (长度 {limit}B)", pointer, expected=f"<= {limit} bytes", actual=size))
        if notes.get("x-download") and isinstance(value, str) and value:
            downloads.append(value)
    return issues, downloads


def _image_issues(value: str, media: str, pointer: str, what: str) -> list[Issue]:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        return [Issue("IMG-BASE64", f"{what}: {pointer} is not valid base64 ({exc}); starts {abbreviate(value, 40)}",
                      pointer, expected="base64", actual=abbreviate(value, 40))]
    magic = MAGIC.get(media, ())
    if magic and not any(data.startswith(m) for m in magic):
        return [Issue("IMG-FORMAT", f"{what}: {pointer} decodes to {len(data)} bytes that are not {media} "
                      f"(starts {data[:8].hex(' ')})", pointer, expected=media, actual=data[:8].hex(" "))]
    return []


def snap_time_issues(body: dict[str, Any], what: str) -> list[Issue]:
    """snap_time (s) and snap_time_ms (ms) name the same instant (errata #25)."""
    seconds, millis = body.get("snap_time"), body.get("snap_time_ms")
    if not (isinstance(seconds, int) and isinstance(millis, int)) or isinstance(seconds, bool) or isinstance(millis, bool):
        return []
    if abs(millis / 1000.0 - seconds) >= 1.0 + 1e-9:
        return [Issue("SNAPTIME-MS", f"{what}: snap_time_ms {millis} is {millis / 1000.0 - seconds:+.3f} s away from "
                      f"snap_time {seconds}; they must name the same second", "/snap_time_ms",
                      expected=f"{seconds * 1000}..{seconds * 1000 + 999}", actual=millis)]
    return []


def resolve_pointer(doc: Any, pointer: str) -> Any:
    node = doc
    for part in [p for p in pointer.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node
