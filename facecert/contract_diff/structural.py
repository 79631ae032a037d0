"""The structural diff of two bundled message schemas: one :class:`Change` per difference
that changes which messages are accepted, with the direction read from the keywords.

Walks both schemas by instance location (``/user_info/*/group``), keyword by
keyword: properties (a field added or removed), required, type, enum and const,
numeric ranges, lengths and item counts, pattern, closed or open objects,
alternatives (anyOf/oneOf), conditions (if/then/else), and any other assertion
keyword as a change both ways. Annotations are compared last and never break
anyone. The direction of a changed pattern cannot be read from the regexes:
it is "both" here and the empirical check (witness.py) says which ways hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from facecert.contract_diff.bundle import ANNOTATIONS, LOWER, UPPER
from facecert.contract_diff.model import BOTH, LOOSENING, NEUTRAL, TIGHTENING, Change

_STRUCTURE = frozenset(
    {
        "properties",
        "required",
        "type",
        "enum",
        "const",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
        "if",
        "then",
        "else",
        "not",
        "pattern",
        "unevaluatedProperties",
        "additionalProperties",
        *LOWER,
        *UPPER,
    }
)
_WORDS = {
    "minimum": "range",
    "maximum": "range",
    "exclusiveMinimum": "range",
    "exclusiveMaximum": "range",
    "minLength": "length",
    "maxLength": "length",
    "minItems": "item count",
    "maxItems": "item count",
    "minProperties": "member count",
    "maxProperties": "member count",
}
# annotations the engine acts on (contract.CONTENT_ANNOTATIONS and their kin): listed, never breaking for
# schema validation, but a person should look (an image check or a download check may change)
_ENGINE_ANNOTATIONS = frozenset(
    {
        "contentMediaType",
        "contentEncoding",
        "x-download",
        "x-file-name",
        "x-personal",
        "x-max-serialized-bytes",
        "format",
    }
)
_PROBE_NOTE = "schema validation unchanged; the engine's content checks read this annotation"


def diff_schemas(message: str, sender: str, old: Any, new: Any) -> list[Change]:
    """Every change between the old and the new schema of one message."""
    return list(_diff(message, sender, old, new, "", ""))


def _diff(message: str, sender: str, old: Any, new: Any, at: str, cond: str) -> Iterator[Change]:
    def change(kind: str, direction: str, before: Any, after: Any, detail: str, where: str = at) -> Change:
        return Change(message, sender, kind, where or "/", before, after, direction, detail, cond)

    if _canon(old) == _canon(new):
        return
    if isinstance(old, bool) or isinstance(new, bool) or not isinstance(old, dict) or not isinstance(new, dict):
        yield change(
            "schema", _bool_direction(old, new), _short(old), _short(new), f"{_short(old)} became {_short(new)}"
        )
        return
    yield from _types(change, old, new)
    yield from _enums(change, old, new)
    yield from _bounds(change, old, new)
    yield from _pattern(change, old, new)
    yield from _object(message, sender, old, new, at, cond, change)
    if "items" in old or "items" in new:
        yield from _diff(message, sender, old.get("items", True), new.get("items", True), f"{at}/*", cond)
    yield from _alternatives(message, sender, old, new, at, cond, change)
    yield from _conditional(message, sender, old, new, at, cond, change)
    for key in sorted((old.keys() | new.keys()) - _STRUCTURE - ANNOTATIONS - _ENGINE_ANNOTATIONS):
        if key.startswith("x-") or _canon(old.get(key)) == _canon(new.get(key)):
            continue
        direction = TIGHTENING if key not in old else LOOSENING if key not in new else BOTH
        yield change(f"keyword {key}", direction, old.get(key), new.get(key), f"{key} {_was(old, new, key)}")
    for key in sorted((old.keys() | new.keys()) & _ENGINE_ANNOTATIONS):
        if _canon(old.get(key)) != _canon(new.get(key)):
            yield Change(
                message,
                sender,
                "engine annotation",
                at or "/",
                old.get(key),
                new.get(key),
                NEUTRAL,
                f"{key} {_was(old, new, key)}",
                cond,
                note=_PROBE_NOTE,
            )
    for key in sorted((old.keys() | new.keys()) & {"description", "title", "default"}):
        if _canon(old.get(key)) != _canon(new.get(key)):
            yield change("annotation", NEUTRAL, old.get(key), new.get(key), f"{key} changed")


def _types(change: Any, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    before, after = _type_set(old), _type_set(new)
    if before == after:
        return
    lost = sorted(t for t in before if not _covered(t, after))
    gained = sorted(t for t in after if not _covered(t, before))
    direction = BOTH if lost and gained else TIGHTENING if lost else LOOSENING if gained else NEUTRAL
    if direction != NEUTRAL:
        yield change(
            "type",
            direction,
            old.get("type"),
            new.get("type"),
            f"type {_show(old.get('type'))} → {_show(new.get('type'))}",
        )


def _type_set(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    if kind is None:
        return {"null", "boolean", "object", "array", "number", "string"}
    return {kind} if isinstance(kind, str) else set(kind)


def _covered(kind: str, kinds: set[str]) -> bool:
    return kind in kinds or (kind == "integer" and "number" in kinds)


def _enums(change: Any, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    before, after = _values(old), _values(new)
    if before is None and after is None:
        return
    if before is None:
        yield change("enum", TIGHTENING, None, after, f"now only {_show(after)}")
        return
    if after is None:
        yield change("enum", LOOSENING, before, None, f"was only {_show(before)}, now any value")
        return
    known_after, known_before = {_canon(v) for v in after}, {_canon(v) for v in before}
    removed = [v for v in before if _canon(v) not in known_after]
    added = [v for v in after if _canon(v) not in known_before]
    if removed:
        yield change("enum", TIGHTENING, removed, None, f"values removed: {_show(removed)}")
    if added:
        yield change("enum", LOOSENING, None, added, f"values added: {_show(added)}")


def _values(node: dict[str, Any]) -> list[Any] | None:
    """The allowed values (enum, or const as an enum of one); None: not limited to a list."""
    if "const" in node:
        return [node["const"]]
    enum = node.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _bounds(change: Any, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in (*LOWER, *UPPER):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        lower = key in LOWER
        if before is None:
            direction = TIGHTENING
        elif after is None:
            direction = LOOSENING
        else:
            direction = TIGHTENING if (after > before) == lower else LOOSENING
        yield change(
            _WORDS[key],
            direction,
            {key: before} if before is not None else None,
            {key: after} if after is not None else None,
            f"{key} {_was(old, new, key)}",
        )


def _pattern(change: Any, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    before, after = old.get("pattern"), new.get("pattern")
    if before == after:
        return
    direction = TIGHTENING if before is None else LOOSENING if after is None else BOTH
    yield change("pattern", direction, before, after, f"pattern {_was(old, new, 'pattern')}")


def _object(
    message: str, sender: str, old: dict[str, Any], new: dict[str, Any], at: str, cond: str, change: Any
) -> Iterator[Change]:
    props_old, props_new = old.get("properties") or {}, new.get("properties") or {}
    closed_old, closed_new = _closed(old), _closed(new)
    for name in props_new.keys() - props_old.keys():
        where = f"{at}/{_escape(name)}"
        if closed_old:
            yield change("field added", LOOSENING, None, _short(props_new[name]), f"{name} may be sent", where)
        elif props_new[name] not in (True, {}):
            yield change(
                "field added", TIGHTENING, None, _short(props_new[name]), f"{name} was anything, now constrained", where
            )
    for name in props_old.keys() - props_new.keys():
        where = f"{at}/{_escape(name)}"
        if closed_new:
            yield change("field removed", TIGHTENING, _short(props_old[name]), None, f"{name} no longer allowed", where)
        elif props_old[name] not in (True, {}):
            yield change(
                "field removed", LOOSENING, _short(props_old[name]), None, f"{name} no longer defined: any value", where
            )
    for name in sorted(props_old.keys() & props_new.keys()):
        yield from _diff(message, sender, props_old[name], props_new[name], f"{at}/{_escape(name)}", cond)
    req_old, req_new = set(old.get("required") or []), set(new.get("required") or [])
    for name in sorted(req_new - req_old):
        yield change("required added", TIGHTENING, None, name, f"{name} must be sent", f"{at}/{_escape(name)}")
    for name in sorted(req_old - req_new):
        yield change("required dropped", LOOSENING, name, None, f"{name} may be left out", f"{at}/{_escape(name)}")
    if closed_old != closed_new and ("properties" in old or "properties" in new):
        direction = TIGHTENING if closed_new else LOOSENING
        yield change(
            "closed" if closed_new else "opened",
            direction,
            closed_old,
            closed_new,
            "fields the schema does not define are " + ("now refused" if closed_new else "now allowed"),
        )


def _closed(node: dict[str, Any]) -> bool:
    return node.get("unevaluatedProperties") is False or node.get("additionalProperties") is False


def _alternatives(
    message: str, sender: str, old: dict[str, Any], new: dict[str, Any], at: str, cond: str, change: Any
) -> Iterator[Change]:
    for key in ("anyOf", "oneOf", "allOf"):
        before, after = old.get(key), new.get(key)
        if _canon(before) == _canon(after):
            continue
        if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
            for number, (a, b) in enumerate(zip(before, after, strict=True)):
                yield from _diff(message, sender, a, b, at, _join(cond, f"{key} alternative {number + 1}"))
            continue
        known_old, known_new = {_canon(x) for x in before or []}, {_canon(x) for x in after or []}
        if key != "allOf" and before and after and known_old < known_new:
            direction = LOOSENING
        elif key != "allOf" and before and after and known_new < known_old:
            direction = TIGHTENING
        else:
            direction = BOTH
        yield change(
            "alternatives",
            direction,
            len(before or []),
            len(after or []),
            f"{key}: {len(before or [])} → {len(after or [])} alternatives",
        )


def _conditional(
    message: str, sender: str, old: dict[str, Any], new: dict[str, Any], at: str, cond: str, change: Any
) -> Iterator[Change]:
    if _canon(old.get("if")) != _canon(new.get("if")):
        if "then" in old or "then" in new or "else" in old or "else" in new:
            yield change("condition", BOTH, _short(old.get("if")), _short(new.get("if")), "the if condition changed")
        return
    when = _condition_text(old.get("if"))
    for key, text in (("then", f"when {when}"), ("else", f"unless {when}")):
        yield from _diff(message, sender, old.get(key, True), new.get(key, True), at, _join(cond, text))
    if _canon(old.get("not")) != _canon(new.get("not")):
        yield change("keyword not", BOTH, _short(old.get("not")), _short(new.get("not")), "not changed")


def _condition_text(node: Any) -> str:
    if isinstance(node, dict):
        parts = []
        for name, schema in (node.get("properties") or {}).items():
            if isinstance(schema, dict) and "const" in schema:
                parts.append(f"{name} = {_show(schema['const'])}")
        if parts:
            return " and ".join(parts)
    return _show(node)


def _bool_direction(old: Any, new: Any) -> str:
    if old is False or new is True or new == {}:
        return LOOSENING
    if new is False or old is True or old == {}:
        return TIGHTENING
    return BOTH


def _was(old: dict[str, Any], new: dict[str, Any], key: str) -> str:
    if key not in old:
        return f"added: {_show(new[key])}"
    if key not in new:
        return f"removed (was {_show(old[key])})"
    return f"{_show(old[key])} → {_show(new[key])}"


def _join(cond: str, more: str) -> str:
    return f"{cond}; {more}" if cond else more


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _short(schema: Any) -> Any:
    """A schema as the output shows it: its type and constraints, not its descriptions."""
    if not isinstance(schema, dict):
        return schema
    return {
        k: v
        for k, v in schema.items()
        if k not in ANNOTATIONS
        and not k.startswith("x-")
        and k not in ("properties", "allOf", "anyOf", "oneOf", "if", "then", "else")
    }


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
