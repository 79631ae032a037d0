"""The contract: the catalogue and the schemas of ``schemas/``, loaded once.

Schemas are cut down to a protocol version (fields, enum values, tasks and
endpoints introduced later disappear) and compiled once per (schema, version)
into a cache. Validation goes through jsonschema-rs (see
docs/architecture.md for the measurement behind that choice); the pure-Python
``jsonschema`` backend is kept for the benchmark and as a fallback.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from facecert.core.versions import parse_version, since_ok

ID_BASE = "https://facecert.local/schemas/"
# Annotations the engine acts on beyond validation: images, downloads, size limits, and file names
# (x-file-name: a field a peer builds file paths from, so a value that breaks its pattern is a path).
CONTENT_ANNOTATIONS = frozenset({"contentMediaType", "x-download", "x-max-serialized-bytes", "x-file-name"})
# x-personal: "biometric" (a face or body picture) or "identity" (a name, a number that names a person):
# what the writers redact (facecert/core/redact.py); judging ignores it, it always sees the real bytes.
PERSONAL_ANNOTATION = "x-personal"
PERSONAL_KINDS = frozenset({"biometric", "identity"})
# x-echo: true on a property of an answer schema: the answer repeats the request's value of that name
# (faceRecognition's snap_time and frpic_name, errata #19): the engine's ACK-ECHO and the server's answer read it.
ECHO_ANNOTATION = "x-echo"
# x-may-be-empty: true on an answer schema: an empty 2xx body is that answer too (the acknowledgement, errata #18)
EMPTY_ANSWER_ANNOTATION = "x-may-be-empty"
# x-enum-names: {"<value>": "<name>"} on an enum property: what each value means, for a peer that must pick one
# by meaning (the device's car_label for a pedestrian capture); judging never reads it.
ENUM_NAMES_ANNOTATION = "x-enum-names"
_KIND_TO_KEYWORD = {
    "Constant": "const",
    "FalseSchema": "false",
    "OneOfNotValid": "oneOf",
    "OneOfMultipleValid": "oneOf",
}


def schemas_dir() -> Path:
    """The contract's folder: ``FACECERT_SCHEMAS`` when set (judge with another contract, e.g. an older
    checkout's ``schemas/``), else the schemas packaged with facecert (``facecert/schemas``)."""
    env = os.environ.get("FACECERT_SCHEMAS")
    if env:
        return Path(env)
    return Path(str(resources.files("facecert") / "schemas"))


@dataclass
class SchemaError:
    """A schema violation in library-neutral form."""

    keyword: str  # the JSON Schema keyword that failed: required, type, enum, ...
    pointer: str  # JSON pointer into the instance (for required: the missing field)
    message: str
    value: Any = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """Bounds on one message (catalogue ``limits:``): a body beyond one is
    refused before it is judged, so the work one message costs stays bounded
    whatever a peer sends. Each bound names its rule in catalogue.yaml."""

    max_body_bytes: int
    max_depth: int
    max_members: int  # members of one object, items of one array
    max_values: int  # values in the whole message
    max_string_chars: int  # outside content fields (contentMediaType), which only the body bound limits
    max_number_chars: int  # characters of one number literal
    max_integer: int  # largest |integer| that is not reported
    max_findings_per_rule: int  # per message; the rest are counted into one finding
    max_schema_errors: int  # per message; schema violations past it are counted, not listed

    def with_changes(self, **changes: int | None) -> Limits:
        """A copy with the given bounds replaced (None keeps the default)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    since: str
    spec: str
    request: str
    answer: str


@dataclass(frozen=True)
class Task:
    name: str
    since: str
    spec: str
    schema: str
    result: str | None
    idle: bool = False  # catalogue `idle: true`: the answer meaning "nothing to do" (idleTime)
    moves_device: bool = False  # catalogue `moves_device: true`: the device polls another server after it


class Contract:
    """Catalogue + schemas for every protocol version, with compiled validators cached."""

    def __init__(self, root: Path | None = None, backend: str = "rs") -> None:
        self.root = Path(root) if root else schemas_dir()
        self.backend = backend
        catalogue = yaml.safe_load((self.root / "catalogue.yaml").read_text(encoding="utf-8"))
        self.versions: list[str] = [str(v) for v in catalogue["protocol"]["versions"]]
        self.latest = max(self.versions, key=parse_version)
        self.all_endpoints = {
            name: Endpoint(
                name=name,
                path=e["path"],
                since=str(e["since"]),
                spec=e.get("spec", ""),
                request=e["request"],
                answer=e["answer"],
            )
            for name, e in catalogue["endpoints"].items()
        }
        self.all_tasks = {
            name: Task(
                name=name,
                since=str(t["since"]),
                spec=t.get("spec", ""),
                schema=t["schema"],
                result=t.get("result"),
                idle=bool(t.get("idle", False)),
                moves_device=bool(t.get("moves_device", False)),
            )
            for name, t in catalogue["tasks"].items()
        }
        idle = [t for t in self.all_tasks.values() if t.idle]
        if len(idle) != 1 or idle[0].result is not None:
            raise ValueError(
                f"{self.root / 'catalogue.yaml'}: exactly one task must be `idle: true`, with `result: null` "
                f"(found {[t.name for t in idle]})"
            )
        self.timing: dict[str, float] = {k: float(v) for k, v in (catalogue.get("timing") or {}).items()}
        self.limits = Limits(**{k: int(v) for k, v in catalogue["limits"].items()})
        # endpoint -> vendor field -> how its value is made (catalogue `vendor_extras`, NOTES.md field traffic)
        self.vendor_extras: dict[str, dict[str, dict[str, Any]]] = catalogue.get("vendor_extras") or {}
        self.raw: dict[str, dict[str, Any]] = {}
        for path in sorted(self.root.rglob("*.schema.json")):
            name = path.relative_to(self.root).as_posix().removesuffix(".schema.json")
            self.raw[name] = json.loads(path.read_text(encoding="utf-8"))
        self._validators: dict[tuple[str, str], Any] = {}
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._registries: dict[str, Any] = {}
        self._structure_registries: dict[str, Any] = {}
        # per version and per schema, computed once (the engine asks for every message it judges)
        self._checked_versions: set[str] = set()
        self._tasks_by_version: dict[str, dict[str, Task]] = {}
        self._endpoints_by_version: dict[str, dict[str, Endpoint]] = {}
        self._required: dict[tuple[str, str], frozenset[str]] = {}
        self._annotated: dict[tuple[str, frozenset[str]], bool] = {}
        self._annotation_memo: dict[tuple[Any, ...], list[tuple[str, dict[str, Any]]]] = {}
        self._echo_fields: dict[tuple[str, str], tuple[str, ...]] = {}
        self._empty_answers: dict[str, bool] = {}

    # ---- catalogue -------------------------------------------------------
    def check_version(self, version: str | None) -> str:
        version = version or self.latest
        if isinstance(version, str) and version in self._checked_versions:
            return version
        parse_version(version)
        if parse_version(version) > parse_version(self.latest) or parse_version(version) < parse_version(
            self.versions[0]
        ):
            raise ValueError(f"protocol version {version} is outside {self.versions[0]}..{self.latest}")
        if isinstance(version, str):
            self._checked_versions.add(version)
        return version

    def endpoints(self, version: str | None = None) -> dict[str, Endpoint]:
        version = self.check_version(version)
        if version not in self._endpoints_by_version:
            self._endpoints_by_version[version] = {
                n: e for n, e in self.all_endpoints.items() if since_ok(e.since, version)
            }
        return dict(self._endpoints_by_version[version])  # a copy: the caller may change it

    def tasks(self, version: str | None = None) -> dict[str, Task]:
        version = self.check_version(version)
        if version not in self._tasks_by_version:
            self._tasks_by_version[version] = {n: t for n, t in self.all_tasks.items() if since_ok(t.since, version)}
        return dict(self._tasks_by_version[version])  # a copy: the caller may change it

    def endpoint_for_path(self, path: str) -> Endpoint | None:
        """Match a request path (with any server_url prefix and query) to an endpoint."""
        exact = self._endpoint_paths.get(path)  # an endpoint's own path: what the match below gives it
        if exact is not None:
            return exact
        return self._match_path(path)

    @functools.cached_property
    def _endpoint_paths(self) -> dict[str, Endpoint]:
        return {e.path: found for e in self.all_endpoints.values() if (found := self._match_path(e.path))}

    def _match_path(self, path: str) -> Endpoint | None:
        bare = path.split("?", 1)[0].rstrip("/")
        for endpoint in self.all_endpoints.values():
            if bare == endpoint.path or bare.endswith(endpoint.path):
                return endpoint
        return None

    # ---- protocol facts the peers act on (docs/architecture.md, "Adding a field, a task or a rule") ----
    @property
    def idle_task(self) -> str:
        """The answer that means "nothing to do" (catalogue `idle: true`: idleTime); it gets no result."""
        return next(name for name, task in self.all_tasks.items() if task.idle)

    def idle_fields(self, version: str | None = None) -> tuple[str, ...]:
        """The idle task's required fields besides ``request_type`` (idleTime: ``time_stamp``, the server time)."""
        schema = self.all_tasks[self.idle_task].schema
        return tuple(sorted(self.required_fields(schema, version) - {"request_type"}))

    @functools.cached_property
    def moves_away(self) -> frozenset[str]:
        """Tasks after which the device polls another server (catalogue `moves_device: true`:
        setPlatformServer, errata #22): this server cannot time its next poll."""
        return frozenset(name for name, task in self.all_tasks.items() if task.moves_device)

    def interval_key(self, task: str | None) -> str:
        """The catalogue ``timing`` key of the wait after an answer carrying ``task``."""
        return "idle_interval_s" if task == self.idle_task else "task_interval_s"

    @property
    def result_deadline_s(self) -> float:
        """How long a device may take to post a task's result, at time scale 1 (timing.result_timeout_s)."""
        return self.timing["result_timeout_s"]

    def echo_fields(self, endpoint: str, version: str | None = None) -> tuple[str, ...]:
        """Fields the answer to ``endpoint`` must echo from its request (schema mark ``x-echo``:
        faceRecognition's snap_time and frpic_name, errata #19), in schema order."""
        key = (endpoint, version or self.latest)
        found = self._echo_fields.get(key)
        if found is None:
            schema = self.schema(self.all_endpoints[endpoint].answer, version)
            props = (schema.get("properties") or {}).items()
            found = self._echo_fields[key] = tuple(name for name, prop in props if prop.get(ECHO_ANNOTATION))
        return found

    def may_answer_empty(self, endpoint: str) -> bool:
        """Whether an empty 2xx body answers ``endpoint`` as well as its answer schema's object (schema
        mark ``x-may-be-empty``: the acknowledgement of taskResult, deviceAlarm and gpsReport, errata #18)."""
        found = self._empty_answers.get(endpoint)
        if found is None:
            answer = self.all_endpoints[endpoint].answer
            found = self._empty_answers[endpoint] = self.raw.get(answer, {}).get(EMPTY_ANSWER_ANNOTATION) is True
        return found

    def enum_values(self, schema: str, pointer: str, version: str | None = None) -> list[Any]:
        """The ``enum`` of the property at ``pointer`` (``/a/b``: properties a, then b) of a message schema,
        following ``$ref`` and ``allOf``; [] when it has none."""
        node = self.property_schema(schema, pointer, version)
        return list(node.get("enum") or ([node["const"]] if "const" in node else []))

    def enum_names(self, schema: str, pointer: str, version: str | None = None) -> dict[Any, str]:
        """Value -> name of the property's ``enum`` (schema mark ``x-enum-names``, e.g. car_label 2 -> "pedestrian"),
        for the values the version has."""
        node = self.property_schema(schema, pointer, version)
        names = node.get(ENUM_NAMES_ANNOTATION) or {}
        return {value: names[str(value)] for value in node.get("enum") or [] if str(value) in names}

    def enum_value(self, schema: str, pointer: str, name: str, version: str | None = None) -> Any:
        """The value ``x-enum-names`` calls ``name`` (car_label "vehicle" -> 4); KeyError when none is."""
        for value, value_name in self.enum_names(schema, pointer, version).items():
            if value_name == name:
                return value
        raise KeyError(f"{schema}#{pointer}: no enum value named {name!r}")

    def marked_fields(self, schema: str, mark: str, version: str | None = None) -> dict[str, Any]:
        """Top-level properties of a message schema (allOf parts included) carrying the annotation ``mark``,
        with its value, in schema order: e.g. ``x-identification`` (who a capture's person is)."""
        props = self.property_schema(schema, "", version).get("properties") or {}
        return {name: prop[mark] for name, prop in props.items() if isinstance(prop, dict) and mark in prop}

    def property_schema(self, schema: str, pointer: str, version: str | None = None) -> dict[str, Any]:
        """The schema of the property at ``pointer`` (``/a/b``; ``/a/*``: the items of array a) of a message
        schema, its ``$ref`` chain and ``allOf`` parts merged; {} when the schema has no such property."""
        node: dict[str, Any] = self.schema(schema, version)
        for part in [p for p in pointer.split("/") if p]:
            node = self._merged(node, version)
            node = (node.get("items") if part == "*" else (node.get("properties") or {}).get(part)) or {}
        return self._merged(node, version)

    def _merged(self, node: dict[str, Any], version: str | None) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for _ in range(10):  # a $ref chain is short; a cycle must not loop
            for part in node.get("allOf", []):
                for key, value in self._merged(part, version).items():
                    if key == "properties":
                        merged.setdefault("properties", {}).update(value)
                    elif key == "required":
                        merged["required"] = sorted(set(merged.get("required", [])) | set(value))
                    else:
                        merged.setdefault(key, value)
            for key, value in node.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = sorted(set(merged.get("required", [])) | set(value))
                elif key not in ("$ref", "allOf"):
                    merged.setdefault(key, value)
            if "$ref" not in node:
                break
            node = self._resolve(node["$ref"], version)
        return merged

    def result_schema(self, task: str | None) -> str:
        result = self.all_tasks[task].result if task and task in self.all_tasks else None
        return result or self.all_endpoints["taskResult"].request

    # ---- schemas ---------------------------------------------------------
    def schema(self, name: str, version: str | None = None) -> dict[str, Any]:
        version = self.check_version(version)
        key = (name, version)
        if key not in self._schemas:
            self._schemas[key] = _cut_to_version(self.raw[name], version)
        return self._schemas[key]

    def schema_id(self, name: str) -> str:
        return self.raw[name].get("$id", ID_BASE + name + ".schema.json")

    def _registry(self, version: str) -> Any:
        if version not in self._registries:
            resources = [(self.schema_id(n), self.schema(n, version)) for n in self.raw]
            self._registries[version] = jsonschema_rs.Registry(resources)
        return self._registries[version]

    def validator(self, name: str, version: str | None = None) -> Any:
        version = self.check_version(version)
        key = (name, version)
        if key not in self._validators:
            if self.backend == "rs":
                self._validators[key] = jsonschema_rs.validator_for(
                    self.schema(name, version), registry=self._registry(version), validate_formats=False
                )
            else:
                self._validators[key] = _python_validator(self, name, version)
        return self._validators[key]

    def errors(
        self, name: str, instance: Any, version: str | None = None, limit: int | None = None
    ) -> list[SchemaError]:
        """The violations of ``instance``; at most ``limit`` of them (the validator stops there)."""
        validator = self.validator(name, version)
        convert = _from_rs if self.backend == "rs" else _from_py
        found = (err for e in validator.iter_errors(instance) for err in convert(e))
        return list(itertools.islice(found, limit))

    @functools.cached_property
    def content_fields(self) -> frozenset[str]:
        """Names of the properties whose schema carries ``contentMediaType``
        (base64 images, log files): bulk content, bounded by the body limit
        rather than by ``max_string_chars``."""
        return frozenset(prop_name for prop_name, prop in self._all_properties() if self._media_type(prop))

    @functools.cached_property
    def personal_names(self) -> dict[str, tuple[str, bool]]:
        """Property name -> (its ``x-personal`` kind, whether every property of that name is
        marked so): a writer's fallback for a member no schema mark reaches (an unknown
        message, a picture where the schema forbids one)."""
        kinds: dict[str, set[str | None]] = {}
        for prop_name, prop in self._all_properties():
            kinds.setdefault(prop_name, set()).add(prop.get(PERSONAL_ANNOTATION))
        found: dict[str, tuple[str, bool]] = {}
        for prop_name, marks in kinds.items():
            named = sorted(m for m in marks if m in PERSONAL_KINDS)
            if named:
                found[prop_name] = (named[0], marks <= PERSONAL_KINDS)
        return found

    def _all_properties(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (name, schema) of a ``properties`` member anywhere in every schema file."""
        stack: list[Any] = list(self.raw.values())
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                for prop_name, prop in (node.get("properties") or {}).items():
                    if isinstance(prop, dict):
                        yield prop_name, prop
                stack.extend(node.values())

    def _media_type(self, node: dict[str, Any]) -> str | None:
        for _ in range(10):  # a $ref chain is short; a cycle must not loop
            if "contentMediaType" in node or "$ref" not in node:
                return node.get("contentMediaType")
            node = self._resolve(node["$ref"], None)
        return None

    def annotations(
        self, name: str, instance: Any, version: str | None = None, keys: frozenset[str] = CONTENT_ANNOTATIONS
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(instance pointer, annotations) pairs that the schema attaches to the message.

        Only computed for schemas that carry one of ``keys`` (by default the content
        annotations: images, downloads, size limits): the rest have nothing to say here.
        """
        for pointer, notes in self.annotations_seen(name, instance, version, keys):
            yield pointer, dict(notes)  # a copy: the memo's own must not change

    def annotations_seen(
        self, name: str, instance: Any, version: str | None = None, keys: frozenset[str] = CONTENT_ANNOTATIONS
    ) -> Sequence[tuple[str, Mapping[str, Any]]]:
        """:meth:`annotations`, as the memo keeps them: for a caller that only reads them (the engine judges
        every capture with them; a copy of each cost as much as finding them)."""
        if not self._has_annotations(name, keys):
            return ()
        version = self.check_version(version)
        # Without an `if` (the one keyword whose assertions the structure-only schema keeps) what the
        # evaluation finds depends on the message's shape alone: keys, nesting, scalar types. Messages of
        # one shape (every capture of a device, say) are then evaluated once.
        shape = None if self._has_annotations(name, _CONDITIONS) else _shape(instance)
        memo_key = (name, version, keys, shape)
        found = self._annotation_memo.get(memo_key) if shape is not None else None
        if found is None:
            validator = self._annotation_validator(name, version)
            merged: dict[str, dict[str, Any]] = {}
            for unit in validator.evaluate(instance).annotations():
                value = unit["annotations"]
                location = unit["schemaLocation"]
                pointer = unit["instanceLocation"]
                if isinstance(value, dict):
                    merged.setdefault(pointer, {}).update(value)
                else:
                    keyword = location.rsplit("/", 1)[-1]
                    merged.setdefault(pointer, {})[keyword] = value
            found = [(pointer, notes) for pointer, notes in merged.items() if keys & notes.keys()]
            if shape is not None:
                if len(self._annotation_memo) >= _ANNOTATION_MEMO:
                    self._annotation_memo.clear()
                self._annotation_memo[memo_key] = found
        return found

    def personal_fields(self, name: str, instance: Any, version: str | None = None) -> dict[str, str]:
        """Pointer -> "biometric" | "identity" for the fields of this message that the schema
        marks ``x-personal``: the faces and the names a writer must not put on disk. Conditional
        marks follow the message (addUser's image_content is biometric only as base64)."""
        found: dict[str, str] = {}
        for pointer, notes in self.annotations(name, instance, version, frozenset({PERSONAL_ANNOTATION})):
            kind = notes.get(PERSONAL_ANNOTATION)
            if kind in PERSONAL_KINDS:
                found[pointer] = kind
        return found

    def file_name_pointers(self, name: str, instance: Any, version: str | None = None) -> set[str]:
        """Pointers of the fields the schema declares bare file names (``x-file-name``): a value
        there that breaks its pattern is a path, which the peer must refuse (errata #28)."""
        return {pointer for pointer, notes in self.annotations(name, instance, version) if notes.get("x-file-name")}

    def _annotation_validator(self, name: str, version: str) -> Any:
        """A validator over the structure only (assertions stripped): a schema
        drops its annotations when it fails, and an image must still be checked
        in a message that lacks a field or has a wrong type elsewhere."""
        key = ("annotations:" + name, version)
        if key not in self._validators:
            if version not in self._structure_registries:
                self._structure_registries[version] = jsonschema_rs.Registry(
                    [(self.schema_id(n), _structure_only(self.schema(n, version))) for n in self.raw]
                )
            self._validators[key] = jsonschema_rs.validator_for(
                _structure_only(self.schema(name, version)), registry=self._structure_registries[version]
            )
        return self._validators[key]

    def has_content_annotations(self, name: str) -> bool:
        """Whether :meth:`annotations` can find anything for a message of schema ``name`` (the content
        marks: images, downloads, size limits, file names); when not, it yields nothing for any message."""
        return self._has_annotations(name, CONTENT_ANNOTATIONS)

    def _has_annotations(self, name: str, keys: frozenset[str]) -> bool:
        """Whether validating a message against ``name`` can meet one of ``keys``: a subschema reachable
        from its root carries one, following each ``$ref`` to the node it names (in any schema file),
        not into ``$defs`` nobody refers to: every schema refers to common.schema.json, whose image and
        file-name definitions only a few use. A ``$ref`` or ``$id`` this cannot follow counts as yes."""
        if (name, keys) not in self._annotated:
            self._annotated[name, keys] = self._reaches(name, keys)
        return self._annotated[name, keys]

    def _reaches(self, name: str, keys: frozenset[str]) -> bool:
        by_id = {self.schema_id(n): n for n in self.raw}
        stack: list[tuple[Any, str]] = [(self.raw[name], name)]
        seen: set[int] = set()
        while stack:
            node, owner = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, list):
                stack.extend((item, owner) for item in node)
                continue
            if not isinstance(node, dict):
                continue
            if keys & node.keys() or ("$id" in node and node is not self.raw[owner]):
                return True
            for key, value in node.items():
                if key == "$ref":
                    target = self._raw_target(value, owner, by_id)
                    if target is None:
                        return True
                    stack.append(target)
                elif key not in _NOT_SUBSCHEMAS:
                    stack.append((value, owner))
        return False

    def _raw_target(self, ref: Any, owner: str, by_id: dict[str, str]) -> tuple[Any, str] | None:
        """The raw node a ``$ref`` in schema ``owner`` names, with the schema holding it; None if unknown."""
        if not isinstance(ref, str):
            return None
        base, _, fragment = urllib.parse.urljoin(self.schema_id(owner), ref).partition("#")
        target = by_id.get(base)
        if target is None:
            return None
        node: Any = self.raw[target]
        for part in [p for p in fragment.split("/") if p]:
            part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node, target

    def required_fields(self, name: str, version: str | None = None) -> set[str]:
        """Top-level required fields of a message schema (including allOf parts)."""
        version = self.check_version(version)
        key = (name, version)
        if key not in self._required:
            schema = self.schema(name, version)
            found = set(schema.get("required", []))
            for part in schema.get("allOf", []):
                target = self._resolve(part.get("$ref"), version) if "$ref" in part else part
                found |= set(target.get("required", []))
            self._required[key] = frozenset(found)
        return set(self._required[key])  # a copy: the caller may change it

    def _resolve(self, ref: str | None, version: str | None) -> dict[str, Any]:
        if not ref:
            return {}
        base, _, fragment = ref.partition("#")
        for name in self.raw:
            if self.schema_id(name) == base:
                node: Any = self.schema(name, version)
                for part in [p for p in fragment.split("/") if p]:
                    node = node[part]
                return node
        return {}


_CONDITIONS = frozenset({"if"})
_ANNOTATION_MEMO = 4096  # shapes remembered per contract (then forgotten all at once)
_SHAPE_VALUES = 512  # a message with more values is evaluated each time (its shape costs as much)


class _TooBig(Exception):
    pass


def _shape(value: Any) -> Any:
    """What an evaluation without conditions can see of a message: its keys in order, its nesting and
    the type of each scalar (None past _SHAPE_VALUES values or 32 levels)."""
    seen = 0

    def walk(node: Any, depth: int) -> Any:
        nonlocal seen
        items = node.values() if type(node) is dict else node
        types = tuple(map(type, items))  # the common case, flat: no Python call per member
        seen += len(types)
        if seen > _SHAPE_VALUES or depth > 32:
            raise _TooBig
        if dict in types or list in types:
            types = tuple(walk(item, depth + 1) if type(item) in (dict, list) else type(item) for item in items)
        return (dict, tuple(node), types) if type(node) is dict else (list, types)

    if type(value) not in (dict, list):
        return type(value)

    try:
        return walk(value, 0)
    except _TooBig:
        return None


# Members whose values are data or definitions, not subschemas evaluated in place: a walk for what
# validation can meet skips them ($defs are reached through the $ref that names them).
_NOT_SUBSCHEMAS = frozenset({"$defs", "definitions", "enum", "const", "examples", "default"})


def _cut_to_version(schema: dict[str, Any], version: str) -> dict[str, Any]:
    """Drop every property, required entry and enum value introduced after ``version``."""
    cut = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                gone = [k for k, v in props.items() if isinstance(v, dict) and not since_ok(v.get("x-since"), version)]
                for key in gone:
                    del props[key]
                if gone and isinstance(node.get("required"), list):
                    node["required"] = [r for r in node["required"] if r not in gone]
            enum_since = node.get("x-enum-since")
            if isinstance(enum_since, dict) and isinstance(node.get("enum"), list):
                node["enum"] = [v for v in node["enum"] if since_ok(enum_since.get(str(v)), version)]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(cut)
    return cut


_ASSERTIONS = frozenset(
    {
        "required",
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "unevaluatedProperties",
        "additionalProperties",
        "not",
        "dependentRequired",
    }
)


def _structure_only(schema: Any, in_condition: bool = False) -> Any:
    """The schema with its assertions removed (kept inside `if`, which must still
    choose a branch): evaluating it never fails, so every annotation survives."""
    if schema is False:
        return True
    if isinstance(schema, list):
        return [_structure_only(item, in_condition) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in _ASSERTIONS and not in_condition:
            continue
        if (
            key in ("enum", "const", "required", "x-enum-since")
            or key.startswith("x-")
            or key in ("description", "title")
        ):
            out[key] = value
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: _structure_only(v, in_condition) for k, v in value.items()}
        elif key == "oneOf" and not in_condition:
            out["anyOf"] = _structure_only(value, in_condition)  # stripped branches all match: oneOf would fail
        else:
            out[key] = _structure_only(value, in_condition or key == "if")
    return out


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _from_rs(error: Any) -> list[SchemaError]:
    kind_name = type(error.kind).__name__
    keyword = _KIND_TO_KEYWORD.get(kind_name, kind_name[:1].lower() + kind_name[1:])
    base = _pointer(error.instance_path)
    if keyword == "required":
        prop = error.kind.property
        return [SchemaError("required", f"{base}/{prop}", error.message, None, {"property": prop})]
    if keyword in ("unevaluatedProperties", "additionalProperties"):
        unexpected = getattr(error.kind, "unexpected", None) or []
        return [
            SchemaError("unevaluatedProperties", f"{base}/{p}", error.message, None, {"property": p})
            for p in unexpected
        ]
    params = {}
    try:
        params = dict(error.kind.as_dict())
    except Exception:  # noqa: BLE001 - params are decoration only
        params = {}
    return [SchemaError(keyword, base, error.message, error.instance, params)]


def _python_validator(contract: Contract, name: str, version: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (contract.schema_id(n), Resource.from_contents(contract.schema(n, version))) for n in contract.raw
    )
    return Draft202012Validator(contract.schema(name, version), registry=registry)


def _from_py(error: Any) -> list[SchemaError]:
    keyword = error.validator
    base = _pointer(error.absolute_path)
    if keyword == "required":
        prop = error.message.split("'")[1] if "'" in error.message else ""
        return [SchemaError("required", f"{base}/{prop}", error.message, None, {"property": prop})]
    if keyword in ("unevaluatedProperties", "additionalProperties"):
        extra = [k for k in (error.instance or {}) if f"'{k}'" in error.message]
        return [
            SchemaError("unevaluatedProperties", f"{base}/{p}", error.message, None, {"property": p}) for p in extra
        ]
    if keyword in ("anyOf", "oneOf", "allOf", "if") and error.context:
        # python-jsonschema nests branch errors; report the deepest, as jsonschema-rs would the combinator
        return [SchemaError(keyword, base, error.message, error.instance, {})]
    return [SchemaError(str(keyword), base, error.message, error.instance, {"schema": error.validator_value})]


@functools.cache
def get_contract(backend: str = "rs") -> Contract:
    """The process-wide contract (schemas are read and compiled once)."""
    return Contract(backend=backend)
