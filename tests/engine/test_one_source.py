"""One source of truth: protocol facts are read from schemas/ (catalogue.yaml and the schemas) through the
contract's accessors, harness defaults from facecert.core.defaults, and nowhere else.

Each accessor is checked against the catalogue as a file; a catalogue changed in a copy (a renamed idle task,
another task that moves the device, a shorter result deadline) changes what the engine judges and what both
reference peers do; and the hand-written spellings this replaced stay gone from the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from facecert.core import defaults
from facecert.core.contract import Contract, get_contract, schemas_dir
from facecert.core.engine import Engine, EngineConfig
from facecert.core.examples import example_for
from facecert.core.model import Exchange

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0


# ---- a changed copy of the contract -------------------------------------------------------
def changed_schemas(tmp_path: Path, *edits: Callable[[Path], None]) -> Path:
    """A copy of schemas/ (links followed) with ``edits`` applied to it."""
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root, symlinks=False)
    for edit in edits:
        edit(root)
    return root


def _catalogue(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = root / "catalogue.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def rename_idle(new: str) -> Callable[[Path], None]:
    """The idle task called ``new``: its catalogue entry and the const its schema holds."""

    def edit(root: Path) -> None:
        def change(data: dict[str, Any]) -> None:
            data["tasks"] = {(new if k == "idleTime" else k): v for k, v in data["tasks"].items()}

        _catalogue(root, change)
        path = root / "server/tasks/idleTime.schema.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        schema["properties"]["request_type"]["const"] = new
        path.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")

    return edit


def move_with(task: str) -> Callable[[Path], None]:
    """``task`` instead of setPlatformServer sends the device to another server."""

    def change(data: dict[str, Any]) -> None:
        for name, entry in data["tasks"].items():
            entry.pop("moves_device", None)
            if name == task:
                entry["moves_device"] = True

    return lambda root: _catalogue(root, change)


def result_deadline(seconds: float) -> Callable[[Path], None]:
    def change(data: dict[str, Any]) -> None:
        data["timing"]["result_timeout_s"] = seconds

    return lambda root: _catalogue(root, change)


# ---- exchanges by hand ----------------------------------------------------------------------
def poll(at: float, answer: dict[str, Any], device_id: str = "ID00000000000042") -> Exchange:
    body = {**example_for("device/taskRequest"), "device_id": device_id, "time_stamp": int(at)}
    return Exchange(
        "POST",
        "/taskRequest",
        json.dumps(body).encode(),
        200,
        json.dumps(answer).encode(),
        started=at,
        ended=at + 0.004,
        request_headers={"Content-Type": "application/json"},
        response_headers={"Content-Type": "application/json"},
    )


def task(contract: Contract, name: str, rid: int) -> dict[str, Any]:
    return {**example_for(contract.all_tasks[name].schema), "request_id": rid}


def rules(engine: Engine, *exchanges: Exchange) -> list[str]:
    return [f.rule for ex in exchanges for f in engine.feed(ex).findings]


# ---- the accessors say what the files say ---------------------------------------------------
def test_accessors_read_the_catalogue_and_the_schemas() -> None:
    contract = get_contract()
    catalogue = yaml.safe_load((contract.root / "catalogue.yaml").read_text(encoding="utf-8"))
    tasks = catalogue["tasks"]
    assert [contract.idle_task] == [n for n, t in tasks.items() if t.get("idle")]
    assert tasks[contract.idle_task]["result"] is None
    idle_schema = json.loads((contract.root / f"{tasks[contract.idle_task]['schema']}.schema.json").read_text())
    assert contract.idle_fields() == tuple(sorted(set(idle_schema["required"]) - {"request_type"}))
    assert contract.moves_away == {n for n, t in tasks.items() if t.get("moves_device")} == {"setPlatformServer"}
    assert contract.result_deadline_s == catalogue["timing"]["result_timeout_s"] == 120
    assert contract.interval_key(contract.idle_task) == "idle_interval_s"
    assert contract.interval_key("addUser") == contract.interval_key(None) == "task_interval_s"
    answer = json.loads((contract.root / "server/faceRecognitionAnswer.schema.json").read_text())
    assert contract.echo_fields("faceRecognition") == tuple(
        n for n, p in answer["properties"].items() if p.get("x-echo")
    )
    assert contract.echo_fields("faceRecognition") == ("snap_time", "frpic_name")
    assert contract.echo_fields("taskResult") == ()  # the ack echoes nothing
    marks = {
        n: json.loads((contract.root / f"{e.answer}.schema.json").read_text()).get("x-may-be-empty") is True
        for n, e in contract.all_endpoints.items()
        if e.answer != "tasks"
    }
    assert {n for n in contract.all_endpoints if contract.may_answer_empty(n)} == {n for n, m in marks.items() if m}
    assert {n for n, m in marks.items() if m} == {"taskResult", "deviceAlarm", "gpsReport"}  # the ack (errata #18)
    capture = json.loads((contract.root / "device/faceRecognition.schema.json").read_text())
    names = capture["properties"]["car_label"]["x-enum-names"]
    assert contract.enum_names("device/faceRecognition", "/car_label") == {int(k): v for k, v in names.items()}
    assert contract.enum_value("device/faceRecognition", "/car_label", "vehicle") == 4
    assert contract.enum_names("device/faceRecognition", "/car_label", "1.7") == {}  # car_label is V1.8
    with pytest.raises(KeyError):
        contract.enum_value("device/faceRecognition", "/car_label", "spaceship")
    assert contract.enum_value("server/tasks/addUser", "/user_list/*/user_list", "whitelist") == 2
    marked = contract.marked_fields("device/results/getDevStatus", "x-device-value")
    status = json.loads((contract.root / "device/results/getDevStatus.schema.json").read_text())
    assert marked["total_face"] == "face_count" and set(marked) == set(status["properties"])  # its own fields
    assert "user_id" in contract.marked_fields("device/faceRecognition", "x-identification")


def test_defaults_expose_the_contracts_limits_not_a_copy() -> None:
    assert defaults.limits() is get_contract().limits
    assert defaults.max_body_bytes() == get_contract().limits.max_body_bytes
    assert EngineConfig().tolerance == defaults.CADENCE_TOLERANCE
    assert EngineConfig().allowance_s == defaults.CADENCE_ALLOWANCE_S
    assert defaults.TIME_SCALE_MIN <= defaults.DEMO_TIME_SCALE < defaults.TIME_SCALE <= defaults.TIME_SCALE_MAX
    assert defaults.check_time_scale(defaults.TIME_SCALE_MIN) == defaults.TIME_SCALE_MIN
    with pytest.raises(ValueError, match="outside"):
        defaults.check_time_scale(defaults.TIME_SCALE_MIN / 2)
    with pytest.raises(ValueError, match="outside"):
        defaults.check_tolerance(defaults.TOLERANCE_MAX + 0.1)


def test_the_demo_time_scale_is_the_default_unless_the_variable_says_another() -> None:
    env = defaults.DEMO_TIME_SCALE_ENV
    assert defaults.demo_time_scale({}) == defaults.DEMO_TIME_SCALE
    assert defaults.demo_time_scale({env: " "}) == defaults.DEMO_TIME_SCALE
    assert defaults.demo_time_scale({env: "0.025"}) == 0.025
    for bad in ("fast", "nan", "0", "1e9", str(defaults.TIME_SCALE_MIN / 2)):
        with pytest.raises(ValueError, match=f"{env}=.* is no time scale: give a number from 0.0001 to 100"):
            defaults.demo_time_scale({env: bad})


def test_every_command_takes_the_same_time_scale_range() -> None:
    """The CLI options (typer) and the proxy's mitmproxy option accept exactly the defaults' range."""
    from typer.main import get_command

    from facecert.cli import app

    root = get_command(app)
    found = {}
    for path in (("validate",), ("serve",), ("device",), ("proxy",), ("certify", "device"), ("certify", "server")):
        command: Any = root
        for part in path:  # get_command: the peers' and certification's commands are built on first use
            command = command.get_command(click.Context(command), part)
        option = next(p for p in command.params if "--time-scale" in p.opts)
        found[path] = (option.min, option.max)
    assert set(found.values()) == {(defaults.TIME_SCALE_MIN, defaults.TIME_SCALE_MAX)}, found


def test_a_catalogue_with_no_single_idle_task_is_refused(tmp_path: Path) -> None:
    def two_idle(data: dict[str, Any]) -> None:
        data["tasks"]["getDevStatus"]["idle"] = True

    root = changed_schemas(tmp_path, lambda r: _catalogue(r, two_idle))
    with pytest.raises(ValueError, match="exactly one task must be `idle: true`"):
        Contract(root)


# ---- a changed catalogue changes what the engine judges -------------------------------------
def test_the_engine_takes_the_idle_task_from_the_catalogue(tmp_path: Path) -> None:
    contract = Contract(changed_schemas(tmp_path, rename_idle("nothingToDo")))
    assert contract.idle_task == "nothingToDo"
    engine = Engine(EngineConfig(), contract=contract)
    task_gap = contract.timing["task_interval_s"]
    found = rules(
        engine,
        poll(T0, {"request_type": "nothingToDo", "time_stamp": int(T0)}),
        poll(T0 + task_gap, {"request_type": "nothingToDo", "time_stamp": int(T0 + task_gap)}),
    )
    assert "CADENCE-IDLE" in found  # the idle interval (20 s) follows the renamed task, not 5 s
    assert "TASK-UNKNOWN" not in found
    stale = rules(Engine(EngineConfig(), contract=contract), poll(T0, {"request_type": "idleTime", "time_stamp": 1}))
    assert "TASK-UNKNOWN" in stale  # the old name is no task of this contract


def _mark_empty_answer(schema: str, on: bool) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / f"{schema}.schema.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("x-may-be-empty", None)
        if on:
            data["x-may-be-empty"] = True
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    return edit


def test_the_engine_takes_the_answers_that_may_be_empty_from_the_schemas(tmp_path: Path) -> None:
    """An empty 2xx acknowledges where the answer schema says x-may-be-empty (the ack, errata #18), and
    only there: moved to the capture's answer, the ack's empty body becomes MSG-EMPTY-BODY and the capture's
    is accepted."""
    capture = example_for("device/faceRecognition")
    result = {"device_id": capture["device_id"], "request_id": 5, "code": 0}

    def empty_answers(contract: Contract) -> dict[str, list[str]]:
        engine = Engine(EngineConfig(), contract=contract)
        found = {}
        for path, body in (("/taskResult", result), ("/faceRecognition", capture)):
            ex = Exchange("POST", path, json.dumps(body).encode(), 200, b"", started=T0, ended=T0 + 0.1)
            found[path] = [f.rule for f in engine.feed(ex).findings if f.direction == "answer"]
        return found

    assert empty_answers(get_contract()) == {"/taskResult": [], "/faceRecognition": ["MSG-EMPTY-BODY"]}
    moved = changed_schemas(
        tmp_path, _mark_empty_answer("server/ack", False), _mark_empty_answer("server/faceRecognitionAnswer", True)
    )
    assert empty_answers(Contract(moved)) == {"/taskResult": ["MSG-EMPTY-BODY"], "/faceRecognition": []}


def test_the_engine_takes_the_tasks_that_move_the_device_from_the_catalogue(tmp_path: Path) -> None:
    def early_poll_after_set_dev_time(contract: Contract) -> list[str]:
        engine = Engine(EngineConfig(), contract=contract)
        return rules(
            engine, poll(T0, task(contract, "setDevTime", 1)), poll(T0 + 0.5, task(contract, "getDevStatus", 2))
        )

    assert "CADENCE-TASK" in early_poll_after_set_dev_time(get_contract())
    moved = Contract(changed_schemas(tmp_path, move_with("setDevTime")))
    assert moved.moves_away == {"setDevTime"}
    assert "CADENCE-TASK" not in early_poll_after_set_dev_time(moved)  # the device polls another server now


def test_the_engine_takes_the_result_deadline_from_the_catalogue(tmp_path: Path) -> None:
    def missing_after(contract: Contract, seconds: float) -> list[str]:
        engine = Engine(EngineConfig(), contract=contract)
        engine.feed(poll(T0, task(contract, "getDevStatus", 7)))
        return [f.rule for f in engine.check_deadlines(T0 + seconds)]

    assert "RESULT-MISSING" not in missing_after(get_contract(), 40)
    short = Contract(changed_schemas(tmp_path, result_deadline(30)))
    assert short.result_deadline_s == 30
    assert "RESULT-MISSING" in missing_after(short, 40)


# ---- ... and what the reference peers do ------------------------------------------------------
PEERS = textwrap.dedent(
    """
    import json, time
    import httpx
    from facecert.core.examples import example_for
    from facecert.mock_device import Device, DeviceConfig
    from facecert.mock_server import MockServer, ServerConfig
    from facecert.certify.device_session import DeviceRunConfig

    scale = 0.05
    with MockServer(ServerConfig(time_scale=scale)) as srv:
        body = {**example_for("device/taskRequest"), "device_id": "ID00000000000077", "time_stamp": int(time.time())}
        answer = httpx.post(srv.url + "/taskRequest", json=body, timeout=10).json()
        device = Device(DeviceConfig(server=srv.url, device_id="ID00000000000078", time_scale=scale)).start()
        try:
            ok = device.wait_until(lambda: device.stats.idle >= 1, 10.0)
            idle_seen = device.stats.idle
        finally:
            device.stop()
        print(json.dumps({
            "server_idle": answer.get("request_type"),
            "device_idle": idle_seen,
            "server_deadline": srv.platform.result_timeout(),
            "engine_moves_away": sorted(srv.engine.contract.moves_away),
        }))
    """
)


def test_both_peers_follow_a_changed_catalogue(tmp_path: Path) -> None:
    """A contract given by FACECERT_SCHEMAS (a fresh process: the contract is read once per process)."""
    root = changed_schemas(tmp_path, rename_idle("nothingToDo"), move_with("setDevTime"), result_deadline(30))
    env = {**os.environ, "FACECERT_SCHEMAS": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", PEERS], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["server_idle"] == "nothingToDo"  # the mock server answers the renamed idle task
    assert seen["device_idle"] >= 1  # and the device takes it as "nothing to do"
    assert seen["server_deadline"] == pytest.approx(30 * 0.05)
    assert seen["engine_moves_away"] == ["setDevTime"]


# ---- the hand-written facts stay gone -----------------------------------------------------------
CODE = ["facecert", "mock_server", "mock_device", "proxy_addons", "steps"]
OWNERS = {Path("facecert/core/contract.py"), Path("facecert/core/defaults.py")}
# former literals -> why each is gone (the fact now lives in the catalogue, a schema or the defaults module)
FORMER = {
    r"MOVES_AWAY\s*=": "tasks that move the device: catalogue `moves_device`, Contract.moves_away",
    r"(?<![\w.])\"idleTime\"": "the idle task: catalogue `idle`, Contract.idle_task",
    r"tolerance[^\n]*\b0\.25\b|\b0\.25\b[^\n]*tolerance|\"0\.25\"": "cadence tolerance: defaults.CADENCE_TOLERANCE",
    r"\b75(\.0)?\b[^\n]*(deadline|result)|(deadline|result)[^\n]*\b75(\.0)?\b": "result deadline: catalogue timing",
    r"DEFAULT_MAX_BODY": "body bound: the contract's limits (defaults.max_body_bytes)",
    r"min=0\.00001|min=0\.001\b|0\.001, 100\.0": "time-scale bounds: defaults.TIME_SCALE_MIN/MAX",
    r"\(\"snap_time\", \"frpic_name\"\)": "ack echo fields: schema x-echo, Contract.echo_fields",
    r"_CAR_LABEL|\"car_label\", \"car_type\", \"car_color\"": "car_label values: schema x-enum-names",
    r"\"total_face\"|\"main_ver\"": "getDevStatus result fields: schema x-device-value",
    r"\[\"user_list\"\] = 2\b|\"x\" \* 4096": "user_list values and user_info bound: the addUser schema",
    r"\b120(\.0)? if self\.operator": "the operator's wait: defaults.OPERATOR_WAIT_S",
    r"\"server/ack\"": "answers an empty 2xx acknowledges: schema mark x-may-be-empty, Contract.may_answer_empty",
}


def _code_files() -> list[Path]:
    files = []
    for top in CODE:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO)
            if "schemas" not in rel.parts and rel not in OWNERS and "__pycache__" not in rel.parts:
                files.append(path)
    return files


def test_the_former_literals_are_gone_from_the_code() -> None:
    files = _code_files()
    assert len(files) > 50  # the walk found the packages (top-level folders, not the facecert/ links twice)
    left = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, why in FORMER.items():
                if re.search(pattern, line):
                    left.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}  ({why})")
    assert not left, "hand-written protocol facts or defaults:\n" + "\n".join(left)


@pytest.mark.parametrize(
    "line",
    [
        'MOVES_AWAY = frozenset({"setPlatformServer"})',
        'kind = "idle" if task == "idleTime" else "task"',
        "tolerance: float = 0.25",
        "deadline = 75.0  # result",
        "from facecert.mock_server.config import DEFAULT_MAX_BODY",
        '"--time-scale", min=0.001, max=1.0',
        'for name in ("snap_time", "frpic_name"):',
        '_CAR_LABEL = {"pedestrian": 2, "vehicle": 4}',
        '"total_face": total,',
        'body["user_list"][0]["user_list"] = 2',
        "return 120.0 if self.operator.interactive else 1.0",
        'if endpoint.answer == "server/ack" and not (ex.response_body or b"").strip():',
    ],
)
def test_the_guard_sees_each_former_literal(line: str) -> None:
    """The patterns above match the lines they replaced (a guard that matches nothing guards nothing)."""
    assert any(re.search(pattern, line) for pattern in FORMER), line
