"""The contract itself: metaschema, catalogue, annotations, repaired examples."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from facecert.core.contract import Contract, get_contract
from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.examples import load_examples

CONTRACT = get_contract()
EXAMPLES = load_examples()


@pytest.mark.parametrize("name", sorted(CONTRACT.raw))
def test_schema_passes_the_2020_12_metaschema(name: str) -> None:
    schema = CONTRACT.raw[name]
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def _properties(node, path=""):
    if isinstance(node, dict):
        for key, value in (node.get("properties") or {}).items():
            yield f"{path}/{key}", value
        for key, value in node.items():
            if key not in ("properties", "if"):  # `if` holds conditions, not field definitions
                yield from _properties(value, path)
        for key, value in (node.get("properties") or {}).items():
            yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item, path)


@pytest.mark.parametrize("name", sorted(CONTRACT.raw))
def test_every_field_has_description_and_version(name: str) -> None:
    schema = CONTRACT.raw[name]
    if not name.startswith("common"):
        assert {"title", "description", "x-since", "x-spec"} <= schema.keys(), name
    for path, prop in _properties(schema):
        if prop is False or prop == {"not": {}} or not isinstance(prop, dict) or set(prop) <= {"not", "$ref"}:
            continue
        if "$ref" in prop and "description" not in prop:
            continue  # described where it is defined
        if set(prop) <= {"x-download", "format", "contentEncoding", "contentMediaType", "pattern", "anyOf", "type"}:
            continue  # conditional refinement (if/then) of a field described elsewhere
        assert "description" in prop and "x-since" in prop, f"{name}{path} lacks description or x-since: {prop}"


def test_catalogue_names_existing_schemas() -> None:
    for endpoint in CONTRACT.all_endpoints.values():
        assert endpoint.request in CONTRACT.raw
        assert endpoint.answer == "tasks" or endpoint.answer in CONTRACT.raw
    assert len(CONTRACT.all_tasks) == 14
    for task in CONTRACT.all_tasks.values():
        assert task.schema in CONTRACT.raw
        assert task.result is None or task.result in CONTRACT.raw
        assert CONTRACT.raw[task.schema]["properties"]["request_type"]["const"] == task.name
    assert CONTRACT.all_tasks["idleTime"].result is None
    assert set(CONTRACT.timing) >= {"idle_interval_s", "task_interval_s", "gps_min_interval_s", "gps_min_distance_m"}


def test_every_task_and_result_has_a_repaired_example() -> None:
    covered = {example.schema for example in EXAMPLES}
    for task in CONTRACT.all_tasks.values():
        assert task.schema in covered, task.name
    for endpoint in CONTRACT.all_endpoints.values():
        assert endpoint.request in covered


@pytest.mark.parametrize("backend", ["rs", "py"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.file for e in EXAMPLES])
def test_repaired_example_is_valid(example, backend: str) -> None:
    engine = Engine(EngineConfig(), contract=get_contract() if backend == "rs" else Contract(backend="py"))
    findings = judge_message(engine, example.schema, json.dumps(example.body).encode())
    assert findings == [], [f.line() for f in findings]


def test_examples_record_their_repairs() -> None:
    repaired = [e for e in EXAMPLES if e.repairs]
    assert len(repaired) >= 15  # almost no example of the document is valid JSON (NOTES #1)


def test_errata_covers_all_27_notes() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "errata.md").read_text(encoding="utf-8")
    for number in range(1, 28):
        assert f"## {number}." in text or f"## {number} " in text or f"### {number}." in text, number
    assert text.count("Decision") >= 27
