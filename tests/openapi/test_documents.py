"""The OpenAPI documents against the contract and the engine: what the open
document accepts the engine accepts (vendor fields as info, within the
contract's limits), what ``--closed`` adds, the per-task results reachable
from /taskResult, task answers told apart by request_type, the repaired
examples, security and licence. Real validators: jsonschema (2020-12) on the
documents themselves, the engine's judge_message, a real mock server for the
token schemes."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from facecert.core.contract import get_contract
from facecert.core.engine import Engine, judge_message
from facecert.core.examples import example_for, load_examples
from facecert.mock_server import MockServer, ServerConfig
from facecert.mock_server.openapi import admin_openapi
from facecert.openapi import COMPONENT, VENDOR, VENDOR_LEVELS, build_openapi

CONTRACT = get_contract()
OPEN, CLOSED = build_openapi(), build_openapi(closed=True)
DOCUMENT = "urn:facecert:openapi"
VENDOR_FIELD = "x_vendor_extension"  # a name no schema defines


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` with the document's components resolvable (as a tool reads it)."""
    registry = Registry().with_resource(DOCUMENT, Resource.from_contents(document, default_specification=DRAFT202012))
    text = json.dumps(schema).replace('"#/components/', f'"{DOCUMENT}#/components/')
    return Draft202012Validator(json.loads(text), registry=registry)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"{COMPONENT}{name}"}


def request_schema(document: dict[str, Any], endpoint: str) -> dict[str, Any]:
    path = CONTRACT.all_endpoints[endpoint].path
    return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def media_types(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, media type object) of every JSON request body and answer of the device document."""
    for path, operations in document["paths"].items():
        operation = operations["post"]
        yield f"{path} request", operation["requestBody"]["content"]["application/json"]
        for status, answer in operation["responses"].items():
            if "application/json" in answer.get("content", {}):
                yield f"{path} {status}", answer["content"]["application/json"]


def errors(document: dict[str, Any], schema: dict[str, Any], body: Any) -> list[str]:
    return [e.message for e in validator(document, schema).iter_errors(body)]


def engine_errors(kind: str, body: Any) -> set[str]:
    return {f.rule for f in judge_message(Engine(), kind, json.dumps(body).encode()) if f.severity.value == "error"}


@pytest.mark.parametrize("document", [OPEN, CLOSED], ids=["open", "closed"])
def test_every_repaired_example_is_there_and_valid(document: dict[str, Any]) -> None:
    shown: set[str] = set()
    for where, media in media_types(document):
        for name, example in media.get("examples", {}).items():
            assert errors(document, media["schema"], example["value"]) == [], f"{where} example {name}"
            assert example["summary"] and example["description"]
            shown.add(name)
    assert shown == {e.file.removesuffix(".json").replace(".", "-") for e in load_examples()}


@pytest.mark.parametrize("endpoint", list(CONTRACT.all_endpoints))
def test_a_vendor_field_is_accepted_as_the_engine_accepts_it_and_closed_rejects_it(endpoint: str) -> None:
    body = {**example_for(CONTRACT.all_endpoints[endpoint].request), VENDOR_FIELD: {"any": ["json", 1, None]}}
    findings = judge_message(Engine(), endpoint, json.dumps(body).encode())
    assert {(f.rule, f.severity.value) for f in findings} == {("MSG-UNKNOWN-FIELD", "info")}
    assert errors(OPEN, request_schema(OPEN, endpoint), body) == []
    assert errors(CLOSED, request_schema(CLOSED, endpoint), body) != []


def test_vendor_fields_of_the_field_persona_are_accepted() -> None:
    """The catalogue's vendor_extras (what devices in the field add) pass the open document."""
    for endpoint, extras in CONTRACT.vendor_extras.items():
        body = {**example_for(CONTRACT.all_endpoints[endpoint].request), **{name: "x" for name in extras}}
        assert errors(OPEN, request_schema(OPEN, endpoint), body) == [], endpoint


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (CONTRACT.limits.max_integer + 1, "MSG-NUMBER-TOO-LARGE"),
        (-CONTRACT.limits.max_integer - 1, "MSG-NUMBER-TOO-LARGE"),
        ({"deep": [CONTRACT.limits.max_integer + 1]}, "MSG-NUMBER-TOO-LARGE"),
        ("x" * (CONTRACT.limits.max_string_chars + 1), "MSG-STRING-TOO-LONG"),
    ],
)
def test_a_vendor_value_beyond_the_contracts_limits_is_an_error_in_both(value: Any, rule: str) -> None:
    body = {**example_for("device/gpsReport"), VENDOR_FIELD: value}
    assert rule in engine_errors("gpsReport", body)
    assert errors(OPEN, request_schema(OPEN, "gpsReport"), body) != []


@pytest.mark.parametrize(
    "value", [CONTRACT.limits.max_integer, -CONTRACT.limits.max_integer, 2.5, -1.5e-300, "x" * 100]
)
def test_a_vendor_value_within_the_limits_is_accepted_in_both(value: Any) -> None:
    """(Not 2.5e300: JSON Schema reads an integral number as an integer whatever its spelling, and the
    integer bound then refuses what the engine reads as a float; docs/openapi.md.)"""
    body = {**example_for("device/gpsReport"), VENDOR_FIELD: value}
    assert engine_errors("gpsReport", body) == set()
    assert errors(OPEN, request_schema(OPEN, "gpsReport"), body) == []


def test_a_vendor_value_nests_as_deep_as_the_document_states() -> None:
    """VENDOR_LEVELS levels (Prism cannot read a schema that refers to itself, docs/openapi.md): one
    level more is accepted by the engine (up to max_depth) and refused by the document."""

    def nested(levels: int) -> Any:
        return 1 if levels == 1 else [nested(levels - 1)]

    for levels, valid in ((VENDOR_LEVELS, True), (VENDOR_LEVELS + 1, False)):
        body = {**example_for("device/gpsReport"), VENDOR_FIELD: nested(levels)}
        assert engine_errors("gpsReport", body) == set()
        assert (errors(OPEN, request_schema(OPEN, "gpsReport"), body) == []) is valid, levels
    assert VENDOR_LEVELS < CONTRACT.limits.max_depth


def test_only_the_closed_document_keeps_the_contracts_closed_objects() -> None:
    def closings(node: Any) -> int:
        if isinstance(node, dict):
            own = sum(1 for k in ("unevaluatedProperties", "additionalProperties") if node.get(k) is False)
            return own + sum(closings(v) for v in node.values())
        return sum(closings(v) for v in node) if isinstance(node, list) else 0

    def raw(component: str) -> Any:
        """The contract's schema a component was made from: a file, or one of its $defs."""
        for name, schema in CONTRACT.raw.items():
            if component == name.replace("/", "."):
                return schema
            if component.startswith(name.replace("/", ".") + "."):
                return schema["$defs"][component.removeprefix(name.replace("/", ".") + ".")]
        return None  # made by the export (TaskAnswer, TaskResult, Error)

    assert closings(OPEN) == 0
    made = [raw(name) for name in CLOSED["components"]["schemas"]]
    assert closings(CLOSED) == closings(made) > 0
    assert VENDOR in OPEN["components"]["schemas"] and VENDOR not in CLOSED["components"]["schemas"]


@pytest.mark.parametrize("document", [OPEN, CLOSED], ids=["open", "closed"])
def test_task_result_takes_the_generic_and_every_per_task_result(document: dict[str, Any]) -> None:
    results = [t.result for t in CONTRACT.all_tasks.values() if t.result]
    generic = CONTRACT.all_endpoints["taskResult"].request
    schema = request_schema(document, "taskResult")
    alternatives = document["components"]["schemas"][schema["$ref"].removeprefix(COMPONENT)]["anyOf"]
    assert [a["$ref"] for a in alternatives] == [f"{COMPONENT}{n.replace('/', '.')}" for n in [generic, *results]]
    for name in results:
        try:
            body = example_for(name)
        except KeyError:
            continue
        assert errors(document, schema, body) == [], name


def test_a_per_task_result_field_needs_its_alternative_in_the_closed_document() -> None:
    """getLogFile's log_info: the closed generic result alone rejects it (the issue's false rejection)."""
    body = example_for("device/results/getLogFile")
    generic = CONTRACT.all_endpoints["taskResult"].request.replace("/", ".")
    assert errors(CLOSED, component(generic), body) != []
    assert errors(CLOSED, request_schema(CLOSED, "taskResult"), body) == []


def test_the_generic_results_fields_keep_their_shape_in_the_open_document() -> None:
    """A result facecert cannot place (unknown request_id) is judged by the generic form: a broken
    resp_list is an error there, and the open document does not let another alternative hide it."""
    body = {**example_for("device/taskResult"), "resp_list": [{"user_id": "1"}]}
    assert "MSG-REQUIRED" in engine_errors("taskResult", body)
    assert errors(OPEN, request_schema(OPEN, "taskResult"), body) != []


def test_task_answers_are_told_apart_by_request_type() -> None:
    answer = OPEN["components"]["schemas"]["TaskAnswer"]
    mapping = answer["discriminator"]["mapping"]
    assert answer["discriminator"]["propertyName"] == "request_type"
    assert mapping == {t.name: f"{COMPONENT}{t.schema.replace('/', '.')}" for t in CONTRACT.all_tasks.values()}
    broken = example_for("server/tasks/idleTime")
    del broken["time_stamp"]
    found = list(validator(OPEN, component("TaskAnswer")).iter_errors(broken))
    assert "MSG-REQUIRED" in engine_errors("task", broken)
    # one branch speaks (the idleTime one), not a failure per task as a bare oneOf gives
    assert {tuple(e.relative_schema_path)[:2] for e in found} == {("allOf", list(mapping).index("idleTime"))}
    assert errors(OPEN, component("TaskAnswer"), {**broken, "request_type": "reboot"}) != []
    for task in CONTRACT.all_tasks.values():
        assert errors(OPEN, component("TaskAnswer"), example_for(task.schema)) == [], task.name


def test_device_endpoints_need_no_credentials_and_name_the_licence() -> None:
    meta = importlib.metadata.metadata("facecert")
    licence = meta["License-Expression"] or meta["License"]  # the SPDX field since pyproject gives a string
    assert licence
    for document in (OPEN, CLOSED, admin_openapi()):
        assert document["info"]["license"]["identifier"] == licence
        assert document["info"]["contact"]["name"]
    assert all(ops["post"]["security"] == [] for ops in OPEN["paths"].values())


def test_the_control_apis_token_schemes_are_the_ways_the_server_takes_it(tmp_path: Path) -> None:
    document = admin_openapi()
    schemes = document["components"]["securitySchemes"]
    assert {} in document["security"]  # a server started without a token is open
    assert [next(iter(s)) for s in document["security"] if s] == list(schemes)
    token = "t0ken-for-the-test"
    with MockServer(ServerConfig(time_scale=0.05, db=tmp_path / "s.db", admin_token=token)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/_admin/devices").status_code == 401
            for name, scheme in schemes.items():
                if scheme["type"] == "http":
                    bearer = f"{scheme['scheme'].capitalize()} {token}"
                    sent = client.get("/_admin/devices", headers={"Authorization": bearer})
                elif scheme["in"] == "header":
                    sent = client.get("/_admin/devices", headers={scheme["name"]: token})
                else:
                    sent = client.get("/_admin/devices", params={scheme["name"]: token})
                assert sent.status_code == 200, name
                assert client.get("/_admin/devices", headers={"X-Admin-Token": "wrong"}).status_code == 401
