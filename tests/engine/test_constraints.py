"""Every constraint of every schema, broken one at a time.

The cases are generated from the schemas and the repaired examples: for each
field of each example's schema, a mutation that breaks exactly one constraint
(required, type, enum/const, minimum/maximum, length, pattern) must produce
exactly the rule id that constraint maps to, at that field's pointer, and
nothing else of error severity. The unmutated example passes (test_contract).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.examples import load_examples
from facecert.core.model import Severity

CONTRACT = get_contract()
WRONG_TYPE = {
    "integer": "not-a-number",
    "number": "not-a-number",
    "string": 12345,
    "object": 1,
    "array": 1,
    "boolean": "x",
}
PATTERN_CANDIDATES = ["!! not valid !!", "a/b", "../../x.php", "x", "99:99-99:99", "ftp://example.invalid/x", "-"]


def effective(node: dict[str, Any]) -> dict[str, Any]:
    """Merge a node with its $ref target and allOf parts (not conditionals)."""
    merged: dict[str, Any] = {"properties": {}, "required": []}
    stack = [node]
    while stack:
        current = stack.pop()
        if "$ref" in current:
            stack.append(CONTRACT._resolve(current["$ref"], None))
        stack.extend(part for part in current.get("allOf", []) if isinstance(part, dict))
        for key, value in current.items():
            if key == "properties":
                for name, prop in value.items():
                    merged["properties"].setdefault(name, {}).update(_flatten(prop))
            elif key == "required":
                merged["required"] += value
            elif key not in ("allOf", "$ref") and key not in merged:
                merged[key] = value
    return merged


def _flatten(prop: Any) -> dict[str, Any]:
    if not isinstance(prop, dict):
        return {}
    out = dict(prop)
    if "$ref" in prop:
        target = _flatten(CONTRACT._resolve(prop["$ref"], None))
        out = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return out


def mutations(schema_name: str, body: dict[str, Any]) -> Iterator[tuple[str, str, Any, str]]:
    """(case id, pointer, mutated body, expected rule)."""
    yield from _walk(effective(CONTRACT.schema(schema_name)), body, "", lambda b: b)


def _walk(node: dict[str, Any], value: dict[str, Any], base: str, root) -> Iterator[tuple[str, str, Any, str]]:
    props, required = node["properties"], set(node["required"])
    for name, prop in props.items():
        pointer = f"{base}/{name}"

        def with_value(new: Any, name: str = name, delete: bool = False):
            def apply(body: Any) -> Any:
                target = _target(body, base)
                if delete:
                    target.pop(name, None)
                else:
                    target[name] = new
                return body

            return apply

        if name not in value:
            continue  # only fields the example carries: an added field may be excluded by a condition
        if name in required:
            yield f"{pointer}:required", pointer, with_value(None, delete=True), "MSG-REQUIRED"
        kind = prop.get("type")
        if isinstance(kind, str) and kind in WRONG_TYPE:
            yield f"{pointer}:type", pointer, with_value(WRONG_TYPE[kind]), "MSG-TYPE"
        if "enum" in prop:
            options = prop["enum"]
            bad = (
                (max(o for o in options if isinstance(o, int)) + 1000)
                if any(isinstance(o, int) for o in options)
                else "zzz-not-an-option"
            )
            yield f"{pointer}:enum", pointer, with_value(bad), "MSG-ENUM"
        if "const" in prop and name != "request_type":
            bad = prop["const"] + 1000 if isinstance(prop["const"], int) else "zzz-not-the-constant"
            yield f"{pointer}:const", pointer, with_value(bad), "MSG-ENUM"
        step = 1 if kind == "integer" else 0.5
        if "minimum" in prop and "enum" not in prop:
            yield f"{pointer}:minimum", pointer, with_value(prop["minimum"] - step), "MSG-RANGE"
        if "maximum" in prop and "enum" not in prop:
            yield f"{pointer}:maximum", pointer, with_value(prop["maximum"] + step), "MSG-RANGE"
        if prop.get("minLength", 0) >= 1:
            yield f"{pointer}:minLength", pointer, with_value(""), "MSG-RANGE"
        if "maxLength" in prop:
            yield f"{pointer}:maxLength", pointer, with_value("x" * (prop["maxLength"] + 1)), "MSG-RANGE"
        if "pattern" in prop:
            bad = next(
                (
                    c
                    for c in PATTERN_CANDIDATES
                    if len(c) >= prop.get("minLength", 0) and re.search(prop["pattern"], c) is None
                ),
                None,
            )
            if bad is not None:
                yield f"{pointer}:pattern", pointer, with_value(bad), "MSG-FORMAT"
        current = value.get(name)
        if (
            isinstance(current, dict)
            and prop.get("properties") is not None
            or (isinstance(current, dict) and "$ref" in prop)
        ):
            yield from _walk(effective(prop), current, pointer, root)
        if (
            isinstance(current, list)
            and current
            and isinstance(current[0], dict)
            and isinstance(prop.get("items"), dict)
        ):
            yield from _walk(effective(prop["items"]), current[0], f"{pointer}/0", root)


def _target(body: Any, base: str) -> Any:
    node = body
    for part in [p for p in base.split("/") if p]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _condition_fields(schema: dict[str, Any]) -> set[str]:
    """Fields named in an `if`: breaking them also flips what the branch allows."""
    found: set[str] = set()
    for key, value in schema.items():
        if key == "if" and isinstance(value, dict):
            found |= set(value.get("properties", {})) | set(value.get("required", []))
        elif isinstance(value, dict):
            found |= _condition_fields(value)
    return found


def _cascades(example) -> bool:
    """The vehicle alarm: breaking alarm_type also makes its image not allowed (a second, true finding)."""
    return bool(_condition_fields(CONTRACT.schema(example.schema)) & {"alarm_type"}) and "image" in example.body


CASES = [
    pytest.param(example.schema, pointer, apply, rule, example.body, id=f"{example.file}{case}")
    for example in load_examples()
    for case, pointer, apply, rule in mutations(example.schema, example.body)
    if not (_cascades(example) and pointer == "/alarm_type")
]


def test_enough_cases_were_generated() -> None:
    assert len(CASES) > 300
    rules = {case.values[3] for case in CASES}
    assert rules == {"MSG-REQUIRED", "MSG-TYPE", "MSG-ENUM", "MSG-RANGE", "MSG-FORMAT"}


@pytest.mark.parametrize("schema, pointer, apply, rule, body", CASES)
def test_broken_constraint_fires_exactly_its_rule(schema: str, pointer: str, apply, rule: str, body: Any) -> None:
    mutated = apply(copy.deepcopy(body))
    engine = Engine(EngineConfig())
    findings = judge_message(engine, schema, json.dumps(mutated).encode())
    errors = [f for f in findings if f.severity is Severity.ERROR]
    assert {f.rule for f in errors} == {rule}, [f.line() for f in errors]
    assert any(f.pointer == pointer for f in errors), [f.line() for f in errors]
