"""Everything we write is strict JSON (RFC 8259, valid UTF-8, no NaN or
Infinity, no lone surrogate), whatever hostile content it quotes: the
jsonsafe helpers, findings, HAR, JSONL, ``validate --json`` and the JUnit
text. Outputs are read back with a parser that refuses what JSON refuses."""

from __future__ import annotations

import io
import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from facecert.core.captures import CaptureError, read_capture, write_har, write_jsonl
from facecert.core.defaults import CADENCE_TOLERANCE, TIME_SCALE
from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.examples import example_for
from facecert.core.hostile import BREAKERS, break_body
from facecert.core.jsonsafe import SAFE_INTEGER, dumps_strict, loads_strict, printable, strict_value
from facecert.core.model import Exchange, Finding, Severity
from facecert.samples import ConversationBuilder
from facecert.validate import run_validate

HOSTILE: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "big": 2**70,
    "-big": -(2**70),
    "safe": SAFE_INTEGER,
    "lone": "a\udfffb",
    "\udc80key": 1,
    "pair": "😀",
    "control": "\x00\x1b[2J",
    "bytes": b"\xff",
    "tuple": (1, 2),
    "nested": [{"deep": [math.nan, "\ud800"]}],
    7: "int key",
}


def strict_parse(text: str | bytes) -> Any:
    """A parser that accepts only strict JSON: no NaN/Infinity, no lone surrogate, valid UTF-8."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    raw.decode("utf-8")  # valid UTF-8, or UnicodeDecodeError
    return loads_strict(raw)


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_dumps_strict_writes_strict_json(ensure_ascii: bool) -> None:
    text = dumps_strict(HOSTILE, ensure_ascii=ensure_ascii)
    back = strict_parse(text)
    assert back["nan"] == "NaN" and back["inf"] == "Infinity" and back["-inf"] == "-Infinity"
    assert back["big"] == 2**70 and back["lone"] == "a\ufffdb" and "\ufffdkey" in back
    assert back["pair"] == "😀" and back["control"] == "\x00\x1b[2J" and back["7"] == "int key"
    assert back["nested"] == [{"deep": ["NaN", "\ufffd"]}] and back["tuple"] == [1, 2]


def test_unsafe_integers_as_text() -> None:
    back = strict_parse(dumps_strict(HOSTILE, unsafe_ints_as_text=True))
    assert back["big"] == str(2**70) and back["-big"] == str(-(2**70)) and back["safe"] == SAFE_INTEGER


def test_plain_values_take_the_fast_path_unchanged() -> None:
    value = {"a": [1, 2.5, None, True, "é"], "b": {"c": "😀"}}
    assert dumps_strict(value, indent=2) == json.dumps(value, ensure_ascii=False, indent=2)
    assert strict_value(value) == value


@pytest.mark.parametrize(
    "raw", [b'{"a": NaN}', b"[Infinity]", b"[-Infinity]", b"[1e400]", b'["\\udfff"]', b'{"\\ud800": 1}']
)
def test_loads_strict_refuses_what_json_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads_strict(raw)


def test_printable_escapes_controls_and_surrogates() -> None:
    assert printable("ok é 😀") == "ok é 😀"
    assert printable("\x1b[2J\x00\udfff\x85") == "\\x1b[2J\\x00\\udfff\\x85"


def test_findings_are_strict_json() -> None:
    finding = Finding(
        "MSG-TYPE", Severity.ERROR, "got \udfff", pointer="/\udfff\x00", expected=math.inf, actual=HOSTILE
    )
    back = strict_parse(json.dumps(finding.to_dict(), allow_nan=False, ensure_ascii=False))
    assert back["expected"] == "Infinity" and back["actual"]["big"] == str(2**70)
    assert finding.line().isprintable()  # no control character or lone surrogate reaches a terminal or a report


def hostile_exchanges() -> list[Exchange]:
    """A conversation whose bodies break every bound, with hostile headers and peers."""
    builder = ConversationBuilder()
    builder.poll(example_for("server/tasks/idleTime"))
    alarm = example_for("device/deviceAlarm")
    for rule in sorted(BREAKERS):
        builder._post("/deviceAlarm", break_body(rule, alarm), {"code": 0})
    for raw in (
        b'{"device_id": NaN}',
        b'{"x": 1e400}',
        json.dumps({**alarm, "\x00\x1b[2J": 1}).encode(),
        b"\xff\xfe not utf-8",
    ):
        builder._post("/deviceAlarm", raw, {"code": 0})
    builder._post("/deviceAlarm", alarm, {"code": 0}).response_body = b'{"code": Infinity}'
    for exchange in builder.exchanges:
        exchange.request_headers["X-Odd"] = "\udcff\x00"  # what surrogateescape makes of a raw 0xFF header byte
        exchange.peer = "\udcfe"
    builder.exchanges[-1].status = None
    builder.exchanges[-1].error = "reset \udcff"
    return builder.exchanges


@pytest.mark.parametrize("writer, name", [(write_har, "hostile.har"), (write_jsonl, "hostile.jsonl")])
def test_captures_are_written_as_strict_json_and_read_back(tmp_path: Path, writer, name: str) -> None:
    exchanges = hostile_exchanges()
    path = writer(exchanges, tmp_path / name)
    text = path.read_bytes()
    if name.endswith(".har"):
        strict_parse(text)
    else:
        for line in text.splitlines():
            strict_parse(line)
    back = list(read_capture(path))
    assert [ex.request_body for ex in back] == [ex.request_body for ex in exchanges]  # bodies exact
    assert back[0].request_headers["X-Odd"] == "\ufffd\x00"


def test_validate_json_and_junit_are_strict_on_a_hostile_capture(tmp_path: Path) -> None:
    capture = write_jsonl(hostile_exchanges(), tmp_path / "hostile.jsonl")
    out = io.StringIO()
    junit = tmp_path / "junit.xml"
    code = run_validate(
        [capture],
        profile="strict",
        version=None,
        tolerance=CADENCE_TOLERANCE,
        time_scale=TIME_SCALE,
        as_kind=None,
        json_out=True,
        junit=junit,
        show_info=True,
        console=Console(file=out, width=200),
    )
    summary = strict_parse(out.getvalue())
    assert code == 1 and summary["verdict"] == "fail"
    assert set(BREAKERS) | {"MSG-NOT-FINITE", "MSG-NOT-JSON"} <= {f["rule"] for f in summary["findings"]}
    assert ET.parse(junit).getroot().tag == "testsuites"


def test_judging_a_hostile_message_quotes_it_strictly() -> None:
    raw = json.dumps({**example_for("device/taskRequest"), "time_stamp": 2**70, "device_id": 1e300}).encode()
    findings = judge_message(Engine(EngineConfig()), "taskRequest", raw)
    for finding in findings:
        strict_parse(json.dumps(finding.to_dict(), allow_nan=False))
    assert {f.to_dict()["actual"] for f in findings if f.rule == "MSG-NUMBER-TOO-LARGE"} == {str(2**70)}


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"log": {"entries": [], "x": NaN}}', "not a readable HAR"),
        (
            b'{"log": {"version": "1.2", "entries": [{"startedDateTime": "2024-01-01T00:00:00Z", "time": 1, '
            b'"request": {"method": "POST", "url": "http://d/x", "headers": [{"name": 1, "value": 2}]}, '
            b'"response": {"status": 200}}]}}',
            "malformed",
        ),
        (
            b'{"log": {"version": "1.2", "entries": [{"startedDateTime": "2024-01-01T00:00:00Z", "time": 1, '
            b'"request": {"method": "POST", "url": "http://d/x"}, "response": {"status": "200"}}]}}',
            "malformed",
        ),
    ],
)
def test_hostile_har_files_are_capture_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.har"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=message):
        list(read_capture(path, "har"))


@pytest.mark.parametrize(
    "record",
    [
        {"method": "POST", "path": "/taskRequest", "status": "200"},
        {"method": "POST", "path": "/taskRequest", "started": "yesterday"},
        {"method": "POST", "path": "/taskRequest", "request_headers": {"a": 1}},
        {"method": 5, "path": "/taskRequest"},
    ],
)
def test_hostile_jsonl_records_are_capture_errors(tmp_path: Path, record: dict[str, Any]) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(CaptureError, match="not a facecert JSONL exchange"):
        list(read_capture(path, "jsonl"))


@pytest.mark.parametrize("writer, name", [(write_har, "out.har"), (write_jsonl, "out.jsonl")])
def test_capture_writers_never_follow_symlinks(tmp_path: Path, writer, name: str) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / name).symlink_to(outside)
    (folder / (name + ".tmp")).symlink_to(outside)
    writer(ConversationBuilder().exchanges, folder / name)
    assert outside.read_text() == "precious"
    assert not os.path.islink(folder / name) and not os.path.lexists(folder / (name + ".tmp"))
