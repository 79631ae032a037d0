"""The empirical check of a contract diff: for every change, a concrete message that one
side accepts and the other refuses, found by trying instances, judged by the real validators.

Instances come from two places, tried in this order:

1. **the repaired examples** of the document (``schemas/examples``) fitted to the
   accepting side (fields that side does not know removed, missing ones filled), with
   the changed field replaced by candidates: the values the change removed or added,
   the bounds either side of a moved range, values of a type one side lost, the field
   deleted, and values generated from the accepting side's schema of that field;
2. **whole messages generated** from the accepting side's bundled schema.

Generation uses hypothesis-jsonschema when it is installed (``pip install facecert[test]``;
it reads draft-07, so the bundled schema is translated first, bundle.for_generator) and a
small built-in generator otherwise. Either way a candidate only counts when the contract's
own validator (jsonschema-rs, as the engine uses it) accepts the whole message on one side
and refuses it on the other with an error at the changed place. A tightening needs a
message the old side accepts and the new one refuses; a loosening the reverse; a change
both ways needs both; a neutral change must show none.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import yaml

from facecert.contract_diff.bundle import LOWER, UPPER, bundled, for_generator
from facecert.contract_diff.model import BOTH, NEUTRAL, TIGHTENING, Change, Side, Witness, directions_of

MAX_TRIES = 400  # candidate messages per change and direction: bounded, whatever the schemas
SAMPLES = 30  # values generated per schema
PROBE_FIELD = "facecert_probe"
_TYPE_VALUES: dict[str, list[Any]] = {
    "integer": [0, 1, 7, -1],
    "number": [0.5, 1.5, -2.25],
    "string": ["", "a", "0"],
    "boolean": [True, False],
    "null": [None],
    "array": [[]],
    "object": [{}],
}
_DELETE = object()  # candidate: the field left out


def generator_name() -> str:
    """Which generator makes the instances (for the report)."""
    return "hypothesis-jsonschema" if _hypothesis() is not None else "built-in"


def check_changes(changes: list[Change], old: Side, new: Side) -> None:
    """Look for a witness of every change, each way its direction needs; record what was found."""
    finder = Finder(old, new)
    for change in changes:
        for direction in directions_of(change.direction):
            witness, tried = finder.find(change, direction)
            change.tried += tried
            if witness is not None:
                change.witnesses.append(witness)
        _settle(change)


def _settle(change: Change) -> None:
    """A pattern or a condition changed both ways by the schemas may hold one way only: the
    witnesses say which. A neutral change that shows a witness was misread: it breaks."""
    found = sorted({w.direction for w in change.witnesses})
    if change.direction == NEUTRAL and found:
        change.static_direction, change.direction = NEUTRAL, found[0] if len(found) == 1 else BOTH
        change.note = "the schemas looked equivalent here, but a message tells them apart"
    elif change.direction == BOTH and len(found) == 1 and change.kind in ("pattern", "condition", "alternatives"):
        change.static_direction, change.direction = BOTH, found[0]
        change.note = f"only the {found[0]} was shown by a message; the other way none of {change.tried} tried"
    elif not change.confirmed:
        missing = sorted(set(directions_of(change.direction)) - set(found))
        change.note = (
            f"no message shows the {' or '.join(missing)} among {change.tried} tried: review this change by hand"
        )


class Finder:
    """Witness search between two sides (fitted examples and generated values cached per side)."""

    def __init__(self, old: Side, new: Side) -> None:
        self.old, self.new = old, new
        self._bases: dict[tuple[int, str], list[tuple[str, Any]]] = {}
        self._samples: dict[tuple[int, str, str], list[Any]] = {}

    def sides(self, direction: str) -> tuple[Side, Side]:
        """(accepting, refusing) for a one-way search."""
        return (self.old, self.new) if direction == TIGHTENING else (self.new, self.old)

    def find(self, change: Change, direction: str) -> tuple[Witness | None, int]:
        if change.kind in ("task added", "task removed", "endpoint added", "endpoint removed"):
            return self.catalogue_witness(change, direction)
        accepting, refusing = self.sides(direction)
        if change.message not in accepting.contract.raw or change.message not in refusing.contract.raw:
            return None, 0
        tried = 0
        for instance, method, known in self.candidates(change, accepting, refusing):
            tried += 1
            if tried > MAX_TRIES:
                return None, MAX_TRIES
            witness = self.judge(change, direction, instance, method, known, accepting, refusing)
            if witness is not None:
                return witness, tried
        return None, tried

    def judge(
        self,
        change: Change,
        direction: str,
        instance: Any,
        method: str,
        known: set[tuple[str, str]],
        accepting: Side,
        refusing: Side,
    ) -> Witness | None:
        """A witness when the accepting side takes the whole message and the refusing side
        refuses it at the changed place with an error the unchanged example did not have."""
        if accepting.contract.errors(change.message, instance, accepting.version, limit=1):
            return None
        errors = refusing.contract.errors(change.message, instance, refusing.version, limit=50)
        place = _concrete(change.pointer)
        # an error at the changed place or inside it counts; one above it (a condition, the root) only
        # when the unchanged example did not have it already
        related = [
            e
            for e in errors
            if _related(e.pointer, change.pointer)
            and (e.pointer == place or e.pointer.startswith(place + "/") or (e.keyword, e.pointer) not in known)
        ]
        if not related:
            return None
        first = related[0]
        return Witness(
            direction,
            instance,
            accepting.label,
            refusing.label,
            {"keyword": first.keyword, "pointer": first.pointer, "message": first.message[:300]},
            method,
        )

    # ---- candidates --------------------------------------------------------
    def candidates(
        self, change: Change, accepting: Side, refusing: Side
    ) -> Iterator[tuple[Any, str, set[tuple[str, str]]]]:
        """(message, how it was made, the refusing side's errors on the unchanged example)."""
        pointer = _concrete(change.pointer)
        values = list(self.values(change, accepting, refusing))
        if change.kind in ("closed", "opened"):
            pointer = f"{pointer}/{PROBE_FIELD}"
        for file, base in self.bases(change.message, accepting):
            known = {
                (e.keyword, e.pointer)
                for e in refusing.contract.errors(change.message, base, refusing.version, limit=50)
            }
            for value in values:
                mutated = _put(base, pointer, value)
                if mutated is not None:
                    what = "left out" if value is _DELETE else f"= {_brief(value)}"
                    yield mutated, f"repaired example {file} with {pointer or '/'} {what}", known
        for instance in self.samples_of(accepting, change.message, ""):
            yield instance, f"generated from the {accepting.label} schema", set()

    def values(self, change: Change, accepting: Side, refusing: Side) -> Iterator[Any]:
        """Candidate values for the changed field, the likeliest first."""
        kind = change.kind
        if kind in ("closed", "opened"):
            yield from (1, "x")
            return
        if kind in ("required added", "required dropped"):
            yield _DELETE
        if kind == "enum":
            yield from (change.old or []) + (change.new or [])
        here_a = _at(bundled(accepting, change.message), change.pointer)
        here_r = _at(bundled(refusing, change.message), change.pointer)
        if kind in ("range", "length", "item count", "member count"):
            yield from _boundaries(here_a, here_r)
        if kind == "type":
            lost = _types(here_a) - _types(here_r)
            for name in sorted(lost) or sorted(_TYPE_VALUES):
                yield from _TYPE_VALUES.get(name, [])
        yield from self.samples_of(accepting, change.message, change.pointer)
        for values in _TYPE_VALUES.values():
            yield from values
        yield _DELETE

    def bases(self, message: str, side: Side) -> list[tuple[str, Any]]:
        """The repaired examples of this message, fitted to the side (those that fit)."""
        key = (id(side), message)
        if key not in self._bases:
            fitted = (
                (file, fit(side, message, body, self.samples_of)) for file, body in examples(side).get(message, [])
            )
            self._bases[key] = [(file, body) for file, body in fitted if body is not None]
        return self._bases[key]

    def samples_of(self, side: Side, message: str, pointer: str) -> list[Any]:
        """Values generated from the side's schema of the value at ``pointer`` ("" the whole message)."""
        key = (id(side), message, pointer)
        if key not in self._samples:
            self._samples[key] = generate(_at(bundled(side, message), pointer), SAMPLES)
        return self._samples[key]

    # ---- tasks and endpoints ----------------------------------------------------
    def catalogue_witness(self, change: Change, direction: str) -> tuple[Witness | None, int]:
        """A task or an endpoint one side has: its example, accepted there, while the other side
        has no such task (or endpoint) at its version."""
        accepting, refusing = self.sides(direction)
        if change.kind.startswith("task"):
            name = str(change.new if change.kind.endswith("added") else change.old)
            task = accepting.contract.tasks(accepting.version).get(name)
            if task is None or name in refusing.contract.tasks(refusing.version):
                return None, 0
            schema, endpoint, refusal = (
                task.schema,
                "taskRequest",
                {
                    "keyword": "request_type",
                    "pointer": "/request_type",
                    "message": f"{name} is not a task of protocol V{refusing.version} ({refusing.label})",
                },
            )
        else:
            path = change.new if change.kind.endswith("added") else change.old
            found = [e for e in accepting.contract.endpoints(accepting.version).values() if e.path == path]
            if not found or any(e.path == path for e in refusing.contract.endpoints(refusing.version).values()):
                return None, 0
            schema, endpoint, refusal = (
                found[0].request,
                found[0].name,
                {
                    "keyword": "endpoint",
                    "pointer": "",
                    "message": f"no endpoint {path} in protocol V{refusing.version} ({refusing.label})",
                },
            )
        candidates = [(body, f"repaired example {file}") for file, body in self.bases(schema, accepting)]
        candidates += [
            (body, f"generated from the {accepting.label} schema") for body in self.samples_of(accepting, schema, "")
        ]
        for tried, (body, method) in enumerate(candidates[:MAX_TRIES], start=1):
            if not accepting.contract.errors(schema, body, accepting.version, limit=1):
                return Witness(
                    direction, body, accepting.label, refusing.label, refusal, method, endpoint=endpoint
                ), tried
        return None, min(len(candidates), MAX_TRIES)


# ---- examples and fitting --------------------------------------------------------
def examples(side: Side) -> dict[str, list[tuple[str, Any]]]:
    """schema name -> [(file, body)] of the side's repaired examples (none if it has no index)."""
    return _examples(str(side.contract.root))


@functools.lru_cache(maxsize=8)
def _examples(root: str) -> dict[str, list[tuple[str, Any]]]:
    from pathlib import Path

    folder = Path(root) / "examples"
    try:
        index = yaml.safe_load((folder / "index.yaml").read_text(encoding="utf-8")) or []
    except OSError:
        return {}
    out: dict[str, list[tuple[str, Any]]] = {}
    for item in index:
        try:
            body = json.loads((folder / item["file"]).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.setdefault(str(item.get("schema")), []).append((str(item["file"]), body))
    return out


def fit(
    side: Side, message: str, body: Any, samples: Callable[[Side, str, str], list[Any]], rounds: int = 8
) -> Any | None:
    """The example made valid for this side, or None: fields it does not know removed, missing
    required ones filled and values it refuses replaced with generated values (an example is
    written for the latest version of our contract, not for this side)."""
    body = copy.deepcopy(body)
    replaced: dict[str, int] = {}  # pointer -> samples tried there
    for _ in range(rounds):
        errors = side.contract.errors(message, body, side.version, limit=50)
        if not errors:
            return body
        progressed = False
        for error in errors:
            if error.keyword == "unevaluatedProperties":
                body, done = _removed(body, error.pointer)
            elif error.pointer:
                choices = samples(side, message, _abstract(error.pointer))
                start = replaced.get(error.pointer, 0)
                mutated = _put(body, error.pointer, choices[start]) if start < len(choices) else None
                replaced[error.pointer] = start + 1
                body, done = (mutated, True) if mutated is not None else (body, False)
            else:
                continue
            progressed = progressed or done
        if not progressed:
            return None
    return None


# ---- generation ------------------------------------------------------------------
def _hypothesis() -> Any:
    try:
        import hypothesis_jsonschema
    except ImportError:
        return None
    return hypothesis_jsonschema


def generate(schema: Any, count: int) -> list[Any]:
    """Up to ``count`` values of ``schema`` (deterministic: the same schema, the same values)."""
    module = _hypothesis()
    if module is not None:
        try:
            return _with_hypothesis(module, for_generator(schema), count)
        except Exception:  # noqa: BLE001 - a construct the generator cannot read: the built-in one tries
            pass
    return list(_builtin(schema, depth=0))[:count]


def _with_hypothesis(module: Any, schema: Any, count: int) -> list[Any]:
    from hypothesis import HealthCheck, Phase, given, settings

    out: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(module.from_schema(schema))
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return _unique(out)


def _builtin(schema: Any, depth: int) -> Iterator[Any]:
    """Simple values of a schema, read from its keywords (no search): enum and const values,
    bounds, a string of the minimum length, an object with its required fields."""
    if not isinstance(schema, dict) or depth > 8:
        yield from ([] if schema is False else [0, "a"])
        return
    if "const" in schema:
        yield schema["const"]
        return
    if isinstance(schema.get("enum"), list):
        yield from schema["enum"]
        return
    for branch in schema.get("anyOf") or schema.get("oneOf") or []:
        yield from _builtin(branch, depth + 1)
    kinds = sorted(_types(schema)) if "type" in schema else ["string", "integer"]
    for kind in kinds:
        if kind in ("integer", "number"):
            bounds: dict[str, Any] = schema  # (a dict of Any: mypy reads the nested get as Any | None)
            low = bounds.get("minimum", bounds.get("exclusiveMinimum", 0))
            high = bounds.get("maximum", bounds.get("exclusiveMaximum", low + 10))
            yield from _unique(
                [
                    v
                    for v in (low, high, (low + high) // 2 if kind == "integer" else (low + high) / 2)
                    if _in_bounds(schema, v)
                ]
            )
        elif kind == "string":
            yield "a" * max(1, int(schema.get("minLength", 1)))
        elif kind == "boolean":
            yield True
        elif kind == "array":
            item = next(iter(_builtin(schema.get("items", {}), depth + 1)), 0)
            yield [item] * max(1, int(schema.get("minItems", 1)))
        elif kind == "object":
            props = schema.get("properties") or {}
            yield {
                name: next(iter(_builtin(props.get(name, {}), depth + 1)), "a") for name in schema.get("required", [])
            }
        elif kind == "null":
            yield None


def _in_bounds(schema: dict[str, Any], value: float) -> bool:
    return (
        value >= schema.get("minimum", -math.inf)
        and value <= schema.get("maximum", math.inf)
        and value > schema.get("exclusiveMinimum", -math.inf)
        and value < schema.get("exclusiveMaximum", math.inf)
    )


def _boundaries(accepting: Any, refusing: Any) -> Iterator[Any]:
    """Values at and beside both sides' bounds: where a moved range shows."""
    if not isinstance(accepting, dict) or not isinstance(refusing, dict):
        return
    kinds = _types(accepting)
    numbers: list[float] = []
    for node in (accepting, refusing):
        for key in (*LOWER, *UPPER):
            if isinstance(node.get(key), (int, float)):
                numbers.append(node[key])
    around = sorted({n + d for n in numbers for d in (-1, 0, 1)} | {(a + b) / 2 for a in numbers for b in numbers})
    for n in around:
        if "integer" in kinds and float(n).is_integer():
            yield int(n)
        if "number" in kinds:
            yield n
        if "string" in kinds and float(n).is_integer() and 0 <= n <= 4096:
            yield "a" * int(n)
        if "array" in kinds and float(n).is_integer() and 0 <= n <= 256:
            item = accepting.get("items") if isinstance(accepting.get("items"), dict) else {}
            sample = next(iter(_builtin(item, 1)), 0)
            yield [copy.deepcopy(sample) for _ in range(int(n))]


def _types(schema: Any) -> set[str]:
    if not isinstance(schema, dict) or "type" not in schema:
        return set(_TYPE_VALUES)
    kind = schema["type"]
    kinds = {kind} if isinstance(kind, str) else set(kind)
    return kinds | ({"integer"} if "number" in kinds else set())


def _unique(values: Iterable[Any]) -> list[Any]:
    seen, out = set(), []
    for value in values:
        key = json.dumps(value, sort_keys=True, default=repr)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


# ---- pointers ----------------------------------------------------------------------
def _parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]] if pointer not in ("", "/") else []


def _concrete(pointer: str) -> str:
    """A change's place (``*`` for any item) as a place in one message (the first item)."""
    return "/".join("0" if p == "*" else p for p in pointer.split("/")) if pointer != "/" else ""


def _abstract(pointer: str) -> str:
    """A place in a message as a place in the schema (array indexes become ``*``)."""
    return "/".join("*" if p.isdigit() else p for p in pointer.split("/"))


def _related(error: str, change: str) -> bool:
    """An error at the changed place, inside it, or at an object holding it (a condition, an alternative)."""
    concrete = _concrete(change)
    return (
        not concrete
        or error == concrete
        or error.startswith(concrete + "/")
        or concrete.startswith(error + "/")
        or error == ""
    )


def _at(schema: Any, pointer: str) -> Any:
    """The schema of the value at an instance place (through properties, items, and the
    alternatives and conditions that define it); {} where no schema says."""
    node = schema
    for part in _parts(pointer):
        node = _child(node, part)
        if node is None:
            return {}
    return node


def _child(node: Any, part: str) -> Any:
    if not isinstance(node, dict):
        return None
    if part == "*" or part.isdigit():
        if "items" in node:
            return node["items"]
    elif part in (node.get("properties") or {}):
        return node["properties"][part]
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key) or []:
            found = _child(branch, part)
            if found is not None:
                return found
    for key in ("then", "else"):
        found = _child(node.get(key), part)
        if found is not None:
            return found
    return None


def _put(instance: Any, pointer: str, value: Any) -> Any | None:
    """A copy of ``instance`` with ``value`` at ``pointer`` (``_DELETE``: the member removed);
    missing objects and arrays on the way are made. None where the place cannot exist."""
    out = copy.deepcopy(instance)
    parts = _parts(pointer)
    if not parts:
        return None if value is _DELETE else copy.deepcopy(value)
    node = out
    for part, following in zip(parts[:-1], parts[1:], strict=True):
        made: Any = [] if following.isdigit() else {}
        if isinstance(node, dict):
            node = node.setdefault(part, made)
        elif isinstance(node, list) and part.isdigit():
            index = int(part)
            while len(node) <= index:
                node.append(copy.deepcopy(made))
            node = node[index]
        else:
            return None
    last = parts[-1]
    if isinstance(node, dict):
        if value is _DELETE:
            node.pop(last, None)  # left out: whether it was there or not
        else:
            node[last] = copy.deepcopy(value)
        return out
    if isinstance(node, list) and last.isdigit():
        index = int(last)
        if value is _DELETE:
            return None
        while len(node) <= index:
            node.append(copy.deepcopy(value))
        node[index] = copy.deepcopy(value)
        return out
    return None


def _removed(instance: Any, pointer: str) -> tuple[Any, bool]:
    mutated = _put(instance, pointer, _DELETE)
    return (mutated, True) if mutated is not None else (instance, False)


def _brief(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "…"
