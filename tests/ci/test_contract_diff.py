"""`facecert contract diff`: our own versions 1.3 → 2.0, and one hand-made schema edit per kind
of change (in a copy of schemas/), each classified by direction and by who it breaks, with a
counterexample found for every breaking one and none for the compatible ones."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from facecert.contract_diff import Side, diff_contracts
from facecert.core.contract import Contract, schemas_dir


def edited(tmp_path: Path, edit: Callable[[Path], None]) -> Path:
    """A copy of our schemas/ with one edit applied."""
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root)
    edit(root)
    return root


def schema_edit(name: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / f"{name}.schema.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")

    return apply


def catalogue_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "catalogue.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    return apply


def prop(name: str, field: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node = data["properties"][field] if name != "common" else data["$defs"][field]
        for key, value in values.items():
            if value is None:
                node.pop(key, None)
            else:
                node[key] = value

    return change


def _add_field(data: dict[str, Any]) -> None:
    data["properties"]["uptime_s"] = {
        "description": "Seconds since boot",
        "x-since": "0.9",
        "type": "integer",
        "minimum": 0,
    }


def _new_task(data: dict[str, Any]) -> None:
    data["tasks"]["reboot"] = {
        "since": "0.9",
        "spec": "§9",
        "schema": "server/tasks/getDevStatus",
        "result": "device/results/getDevStatus",
    }


def _new_endpoint(data: dict[str, Any]) -> None:
    data["endpoints"]["heartbeat"] = {
        "path": "/heartbeat",
        "since": "0.9",
        "spec": "§9",
        "request": "device/taskRequest",
        "answer": "server/ack",
    }


def _reword(data: dict[str, Any]) -> None:
    data["properties"]["device_name"]["description"] = "The name the installer gave the device"


MAC_COLON_ONLY = "^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"
WIDER_TIME = "^([0-9]|[01][0-9]|2[0-3]):[0-5][0-9]-([0-9]|[01][0-9]|2[0-3]):[0-5][0-9]$"
# (edit, message, kind, pointer, direction, who it breaks)
EDITS = {
    "field added": (
        schema_edit("device/taskRequest", _add_field),
        "device/taskRequest",
        "field added",
        "/uptime_s",
        "loosening",
        ["server"],
    ),
    "field removed": (
        schema_edit("server/tasks/setScreenSave", lambda d: d["properties"].pop("interval_time")),
        "server/tasks/setScreenSave",
        "field removed",
        "/interval_time",
        "tightening",
        ["server"],
    ),
    "required added": (
        schema_edit("device/taskRequest", lambda d: d["required"].append("lib_ai_version")),
        "device/taskRequest",
        "required added",
        "/lib_ai_version",
        "tightening",
        ["device"],
    ),
    "required dropped": (
        schema_edit("device/taskRequest", lambda d: d["required"].remove("device_name")),
        "device/taskRequest",
        "required dropped",
        "/device_name",
        "loosening",
        ["server"],
    ),
    "type narrowed": (
        schema_edit("server/tasks/SetFaceConfig", prop("", "LivenessThreshold", type="integer", maximum=1)),
        "server/tasks/SetFaceConfig",
        "type",
        "/LivenessThreshold",
        "tightening",
        ["server"],
    ),
    "type replaced": (
        schema_edit("device/faceRecognition", prop("", "user_name", type="integer")),
        "device/faceRecognition",
        "type",
        "/user_name",
        "both",
        ["device", "server"],
    ),
    "enum value removed": (
        schema_edit("server/tasks/SetFaceConfig", prop("", "SnapMode", enum=[0, 1, 2, 3])),
        "server/tasks/SetFaceConfig",
        "enum",
        "/SnapMode",
        "tightening",
        ["server"],
    ),
    "enum value added": (
        schema_edit("device/faceRecognition", prop("", "mask", enum=[0, 6, 7])),
        "device/faceRecognition",
        "enum",
        "/mask",
        "loosening",
        ["server"],
    ),
    "range tightened": (
        schema_edit("server/tasks/setScreenSave", prop("", "start_time", minimum=20)),
        "server/tasks/setScreenSave",
        "range",
        "/start_time",
        "tightening",
        ["server"],
    ),
    "range loosened": (
        schema_edit("server/tasks/SetFaceConfig", prop("", "FaceQuality", maximum=20)),
        "server/tasks/SetFaceConfig",
        "range",
        "/FaceQuality",
        "loosening",
        ["device"],
    ),
    "length tightened": (
        schema_edit("device/gpsReport", prop("", "device_id", minLength=20)),
        "device/gpsReport",
        "length",
        "/device_id",
        "tightening",
        ["device"],
    ),
    "pattern tightened (shared definition)": (
        schema_edit("common", prop("common", "deviceMac", pattern=MAC_COLON_ONLY)),
        "device/deviceAlarm",
        "pattern",
        "/device_mac",
        "tightening",
        ["device"],
    ),
    # the regexes alone cannot say which way a replaced pattern goes: the messages do (one-digit hours now allowed)
    "pattern replaced by a wider one": (
        schema_edit("server/tasks/setScreenSave", prop("", "display_time", pattern=WIDER_TIME)),
        "server/tasks/setScreenSave",
        "pattern",
        "/display_time",
        "loosening",
        ["device"],
    ),
    "closed object opened": (
        schema_edit("device/deviceAlarm", lambda d: d.pop("unevaluatedProperties")),
        "device/deviceAlarm",
        "opened",
        "/",
        "loosening",
        ["server"],
    ),
    "task added": (
        catalogue_edit(_new_task),
        "server/tasks/getDevStatus",
        "task added",
        "/request_type",
        "loosening",
        ["device"],
    ),
    "task removed": (
        catalogue_edit(lambda d: d["tasks"].pop("faceCmd")),
        "server/tasks/faceCmd",
        "task removed",
        "/request_type",
        "tightening",
        ["server"],
    ),
    "endpoint added": (
        catalogue_edit(_new_endpoint),
        "device/taskRequest",
        "endpoint added",
        "/heartbeat",
        "loosening",
        ["server"],
    ),
    "endpoint removed": (
        catalogue_edit(lambda d: d["endpoints"].pop("gpsReport")),
        "device/gpsReport",
        "endpoint removed",
        "/gpsReport",
        "tightening",
        ["device"],
    ),
    "description reworded": (
        schema_edit("device/taskRequest", _reword),
        "device/taskRequest",
        "annotation",
        "/device_name",
        "neutral",
        [],
    ),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_each_kind_of_edit_is_classified_and_shown(tmp_path: Path, name: str) -> None:
    edit, message, kind, pointer, direction, breaks = EDITS[name]
    diff = diff_contracts(Side.load(None, None, "ours"), Side.load(edited(tmp_path, edit), None, "edited"))
    found = [c for c in diff.changes if c.message == message and c.kind == kind and c.pointer == pointer]
    assert len(found) == 1, [(c.message, c.kind, c.pointer) for c in diff.changes]
    change = found[0]
    assert (change.direction, change.breaks) == (direction, breaks), change.to_dict()
    assert change.confirmed, change.to_dict()
    if name.startswith("pattern replaced"):  # "both" from the schemas, one way from the messages
        assert change.static_direction == "both" and "only the loosening" in change.note
    if breaks:  # every breaking change carries a message that shows it, judged by the real validators
        wanted = {"tightening": ["tightening"], "loosening": ["loosening"], "both": ["loosening", "tightening"]}
        assert sorted(w.direction for w in change.witnesses) == wanted[direction]
        for witness in change.witnesses:
            accepting, refusing = (diff.old, diff.new) if witness.direction == "tightening" else (diff.new, diff.old)
            schema = _schema_of(accepting, change, witness)
            assert accepting.contract.errors(schema, witness.instance, accepting.version) == []
            if not change.kind.startswith(("task", "endpoint")):
                assert refusing.contract.errors(change.message, witness.instance, refusing.version)
            if not change.kind.startswith("endpoint"):  # an endpoint's place is its path, not a field
                assert witness.error["pointer"].startswith(pointer.rstrip("/"))
    else:  # compatible: nothing either way among the messages tried
        assert change.witnesses == [] and change.tried > 0
    if "shared" not in name:  # one edit, one message (the shared definition: see the next test)
        assert all(c.message == message for c in diff.changes), [(c.message, c.kind) for c in diff.changes]


def _schema_of(side: Side, change: Any, witness: Any) -> str:
    if change.kind.startswith("endpoint"):
        return side.contract.endpoints(side.version)[witness.endpoint].request
    return change.message


def test_a_shared_definition_change_shows_in_every_message_that_uses_it(tmp_path: Path) -> None:
    edit = schema_edit("common", prop("common", "deviceMac", pattern=MAC_COLON_ONLY))
    diff = diff_contracts(Side.load(None, None, "ours"), Side.load(edited(tmp_path, edit), None, "edited"))
    hit = {c.message for c in diff.changes}
    assert hit == {"device/taskRequest", "device/deviceAlarm", "device/gpsReport"}, hit
    assert all(c.kind == "pattern" and c.breaks == ["device"] and c.confirmed for c in diff.changes)
    example = diff.changes[0].witnesses[0]
    assert "-" in json.dumps(example.instance)  # a "-" separated MAC: the old pattern took it, the new one does not


def test_an_unrelated_copy_has_no_change(tmp_path: Path) -> None:
    diff = diff_contracts(Side.load(None, None), Side.load(edited(tmp_path, lambda root: None), None))
    assert diff.changes == [] and diff.messages >= 25


def test_our_versions_1_3_to_2_0() -> None:
    diff = diff_contracts(Side.load(None, "1.3"), Side.load(None, "2.0"))
    by = {(c.message, c.kind, c.pointer): c for c in diff.changes}
    # x-since 1.6, required: 1.3 devices do not send it (they break), servers must now accept it
    assert by[("device/deviceAlarm", "required added", "/device_ip")].breaks == ["device"]
    assert by[("device/deviceAlarm", "field added", "/device_ip")].breaks == ["server"]
    # x-enum-since {"12": "1.4"}: a value servers must now accept
    assert by[("device/deviceAlarm", "enum", "/alarm_type")].new == [12]
    # tasks since 1.7 and 1.9: servers may send them, devices must carry them out
    assert {m for (m, k, _) in by if k == "task added"} == {"server/tasks/faceCmd", "server/tasks/SetFaceConfig"}
    assert by[("device/faceRecognition", "field added", "/eva_age")].direction == "loosening"
    assert all(c.confirmed and c.witnesses for c in diff.changes)
    alarm = by[("device/deviceAlarm", "required added", "/device_ip")].witnesses[0]
    assert "device_ip" not in alarm.instance and alarm.accepted_by == "1.3" and alarm.refused_by == "2.0"
    assert Contract().errors("device/deviceAlarm", alarm.instance, "1.3") == []


def facecert(*args: str) -> Any:
    """The command in this process (typer's runner: exit code and stdout as a shell sees them)."""
    from typer.testing import CliRunner

    from facecert.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_outputs_and_fail_on(tmp_path: Path) -> None:
    run = facecert("contract", "diff", "--from", "1.3", "--to", "2.0", "--json")
    assert run.exit_code == 0, run.output
    data = json.loads(run.stdout)
    assert data["counts"]["breaking"] == len(data["changes"]) > 0 and data["counts"]["unconfirmed"] == 0
    assert all(c["counterexamples"] for c in data["changes"])
    run = facecert("contract", "diff", "--from", "1.3", "--to", "2.0", "--markdown", "--fail-on", "breaking")
    assert run.exit_code == 1
    assert run.stdout.startswith("### facecert contract diff: 1.3 → 2.0") and "```json" in run.stdout
    assert "| `device/deviceAlarm` | required added" in run.stdout
    reworded = edited(tmp_path, schema_edit("device/taskRequest", _reword))
    run = facecert("contract", "diff", "--new", str(reworded), "--fail-on", "breaking")
    assert run.exit_code == 0, run.stdout  # a reworded description breaks nobody
    assert "annotation" in run.stdout and "nobody" in run.stdout
    broken = edited(tmp_path / "broken", schema_edit("device/taskRequest", prop("", "device_name", pattern="([")))
    run = facecert("contract", "diff", "--new", str(broken))
    assert run.exit_code == 2 and "error:" in run.stdout, run.stdout
    run = facecert("contract", "diff", "--old", str(tmp_path / "nowhere"))
    assert run.exit_code == 2 and "error:" in run.stdout
    assert run.exception is None or isinstance(run.exception, SystemExit)  # a line, never a traceback


def test_without_hypothesis_jsonschema_the_examples_and_the_builtin_generator_suffice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facecert.contract_diff import witness

    monkeypatch.setattr(witness, "_hypothesis", lambda: None)
    assert witness.generator_name() == "built-in"
    diff = diff_contracts(Side.load(None, "1.3"), Side.load(None, "2.0"))
    assert diff.changes and all(c.confirmed for c in diff.changes)
    for name in ("range tightened", "type replaced", "enum value removed", "description reworded"):
        edit, message, kind, pointer, direction, breaks = EDITS[name]
        root = edited(tmp_path / name.replace(" ", "-"), edit)
        found = [
            c for c in diff_contracts(Side.load(None, None), Side.load(root, None)).changes if c.pointer == pointer
        ]
        assert [(c.direction, c.breaks, c.confirmed) for c in found] == [(direction, breaks, True)], name


def test_hypothesis_jsonschema_makes_the_field_values() -> None:
    """Scalar field schemas (a pattern here) come from hypothesis-jsonschema, valid ones, the same each time."""
    import re

    from facecert.contract_diff.witness import generate

    pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
    values = generate({"type": "string", "pattern": pattern}, 20)
    assert len(values) > 5 and all(re.match(pattern, v) for v in values)
    assert generate({"type": "string", "pattern": pattern}, 20) == values
