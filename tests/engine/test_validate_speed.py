"""`facecert validate` made fast judges exactly as before: the caches (versions, schemas, annotation
reachability and shapes, the parser's skipped walk) and the split over processes (--jobs) change no
finding, no order and no exchange index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from facecert import validate
from facecert.core import contract as contract_module
from facecert.core.captures import write_jsonl
from facecert.core.contract import CONTENT_ANNOTATIONS, PERSONAL_ANNOTATION, Contract, get_contract
from facecert.core.engine import Engine, EngineConfig
from facecert.core.examples import example_for
from facecert.core.model import Exchange, Finding
from facecert.core.rules import message
from facecert.core.versions import parse_version, since_ok
from facecert.samples import sample_conversation
from facecert.validate import judge_files, judge_split, run_validate
from tests.support import facecert

DEVICES, CYCLES = 8, 12  # 384 exchanges, devices interleaved in time


def device_id(number: int) -> str:
    return f"ID{number:014d}"


def faulty_conversation() -> tuple[list[Exchange], list[tuple[str, int, str]]]:
    """The sample conversation of DEVICES devices with known faults, and the findings they must make:
    (rule, exchange index, pointer), in the order one engine makes them."""
    exchanges = sample_conversation(devices=DEVICES, cycles=CYCLES)

    def find(device: int, path: str, occurrence: int) -> int:
        wanted = device_id(device).encode()
        hits = [i for i, ex in enumerate(exchanges) if ex.path == path and wanted in ex.request_body]
        return hits[occurrence]

    def edit(index: int, change: Callable[[dict[str, Any]], None], side: str = "request") -> None:
        exchange = exchanges[index]
        attribute = "request_body" if side == "request" else "response_body"
        body = json.loads(getattr(exchange, attribute))
        change(body)
        setattr(exchange, attribute, json.dumps(body).encode())

    expected: list[tuple[str, int, str]] = []
    poll = find(1, "/taskRequest", 3)
    edit(poll, lambda b: b.update(time_stamp="soon"))
    expected.append(("MSG-TYPE", poll, "/time_stamp"))
    capture = find(2, "/faceRecognition", 1)
    edit(capture, lambda b: b.update(zz_vendor=1))
    expected.append(("MSG-UNKNOWN-FIELD", capture, "/zz_vendor"))
    broken = find(3, "/faceRecognition", 4)
    edit(broken, lambda b: b.update(image="not base64 at all!"))
    expected.append(("IMG-BASE64", broken, "/image"))
    result = find(4, "/taskResult", 2)
    edit(result, lambda b: b.update(request_id=999))  # a getLogFile result: judged as a plain result, ...
    expected.append(("MSG-UNKNOWN-FIELD", result, "/log_info"))  # ... whose schema has no log_info
    expected.append(("RESULT-UNKNOWN-ID", result, "/request_id"))
    twice = find(5, "/taskRequest", 6)
    exchanges[twice].request_body = exchanges[twice].request_body.replace(
        b'{"device_id": ', b'{"device_mac": "88-07-18-00-01-71", "device_id": ', 1
    )
    expected.append(("MSG-DUPLICATE-KEY", twice, "/device_mac"))
    last_result = find(6, "/taskResult", CYCLES - 1)  # never answered: RESULT-MISSING when the capture ends
    del exchanges[last_result]
    expected = [(rule, i - (i > last_result), pointer) for rule, i, pointer in expected]
    expected.sort(key=lambda item: item[1])
    expected.append(("RESULT-MISSING", -1, "/request_id"))
    return exchanges, expected


def about(findings: list[Finding]) -> list[tuple[str, int, str]]:
    return [(f.rule, f.exchange, f.pointer) for f in findings]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, int, str]]]:
    exchanges, expected = faulty_conversation()
    return write_jsonl(exchanges, tmp_path_factory.mktemp("speed") / "faulty.jsonl"), expected


def test_a_sizeable_capture_with_known_faults_makes_exactly_their_findings(faulty: Any) -> None:
    path, expected = faulty
    _, findings, count = judge_files([path], EngineConfig())
    assert count == DEVICES * CYCLES * 4 - 1
    assert about(findings) == expected


def test_the_cached_path_and_a_cold_contract_judge_alike(faulty: Any) -> None:
    path, _ = faulty
    judge_files([path], EngineConfig())  # the process contract's caches warm
    _, warm, _ = judge_files([path], EngineConfig())
    cold_engine = Engine(EngineConfig(), contract=Contract())
    from facecert.core.captures import read_capture

    for exchange in read_capture(path):
        cold_engine.feed(exchange)
    cold_engine.finish()
    assert [f.to_dict() for f in warm] == [f.to_dict() for f in cold_engine.findings]


def test_versions_are_memoised_yet_still_refuse_what_is_no_version() -> None:
    assert parse_version("v1.2.3") == (1, 2, 3) and parse_version(1.8) == (1, 8)
    assert since_ok("1.2", "1.10") and not since_ok("2.0", "1.9") and since_ok(None, "1.0")
    with pytest.raises(ValueError, match="not a protocol version: 'x.1'"):
        parse_version("x.1")
    contract = get_contract()
    with pytest.raises(ValueError, match="outside"):
        contract.check_version("99.0")
    with pytest.raises(ValueError, match="outside"):
        contract.check_version("99.0")  # a refusal is never cached as a pass
    tasks = contract.tasks()
    tasks.clear()  # a caller's copy: the cache is not emptied
    assert contract.tasks() and contract.endpoints()
    contract.required_fields("device/taskRequest").clear()
    assert "device_id" in contract.required_fields("device/taskRequest")


def _messages(contract: Contract) -> list[tuple[str, Any]]:
    """Every schema's example, and each with its optional content filled where the schema has images."""
    out = []
    for name in sorted(contract.raw):
        try:
            out.append((name, example_for(name)))
        except KeyError:
            continue
    return out


def test_schemas_found_without_annotations_have_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """The $ref walk says which schemas can carry content or personal marks; checked against a
    full evaluation of every example (no schema is skipped that would have said something)."""
    contract = Contract()
    keys_sets = (CONTENT_ANNOTATIONS, frozenset({PERSONAL_ANNOTATION}))
    skipped = 0
    for name, body in _messages(contract):
        for keys in keys_sets:
            if contract._has_annotations(name, keys):
                continue
            skipped += 1
            validator = contract._annotation_validator(name, contract.latest)  # everything kept, not lean
            for unit in validator.evaluate(body).annotations():
                notes = unit["annotations"]
                assert not (isinstance(notes, dict) and keys & notes.keys()), (name, unit)
    assert skipped > 20  # most schemas: only common.schema.json's definitions carry marks
    assert contract._has_annotations("device/faceRecognition", CONTENT_ANNOTATIONS)
    assert not contract._has_annotations("device/taskRequest", CONTENT_ANNOTATIONS)


def _revalued(node: Any) -> Any:
    """``node`` with every scalar changed but not its type: the same shape."""
    if isinstance(node, dict):
        return {key: _revalued(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_revalued(item) for item in node]
    if isinstance(node, bool):
        return not node
    if isinstance(node, (int, float)):
        return node + 1
    return node + "x" if isinstance(node, str) else node


def test_annotations_remembered_by_shape_equal_a_full_evaluation() -> None:
    """Every example, and a copy of each with other values (same shape): what ``annotations`` yields,
    fresh and from the shape memo, equals the evaluation of the structure-only schema, order included."""
    contract = Contract()
    for name, body in _messages(contract):
        other = _revalued(body)
        for keys in (CONTENT_ANNOTATIONS, frozenset({PERSONAL_ANNOTATION})):
            if not contract._has_annotations(name, keys):
                continue
            full = contract._annotation_validator(name, contract.latest)
            for instance in (body, other, body):
                merged: dict[str, dict[str, Any]] = {}
                for unit in full.evaluate(instance).annotations():
                    value = unit["annotations"]
                    if isinstance(value, dict):
                        merged.setdefault(unit["instanceLocation"], {}).update(value)
                    else:
                        keyword = unit["schemaLocation"].rsplit("/", 1)[-1]
                        merged.setdefault(unit["instanceLocation"], {})[keyword] = value
                wanted = [(pointer, notes) for pointer, notes in merged.items() if keys & notes.keys()]
                assert list(contract.annotations(name, instance, keys=keys)) == wanted, name
    assert contract._annotation_memo  # faceRecognition has no `if`: its shape was remembered
    remembered = next(iter(contract._annotation_memo.values()))
    first = list(contract.annotations("device/faceRecognition", example_for("device/faceRecognition")))
    first[0][1]["contentMediaType"] = "changed by a caller"
    assert "changed by a caller" not in str(remembered)  # callers get copies


def test_a_shape_sees_keys_nesting_and_scalar_types() -> None:
    shape = contract_module._shape
    assert shape({"a": 1, "b": "x"}) == shape({"a": 2, "b": "y"})
    assert shape({"a": 1, "b": "x"}) != shape({"b": "x", "a": 1})
    assert shape({"a": 1}) != shape({"a": 1.0}) != shape({"a": True})
    assert shape({"a": [1, {"b": None}]}) != shape({"a": [1, {"c": None}]})
    assert shape({"a": []}) != shape({"a": {}})
    assert shape({"a": list(range(10_000))}) is None  # too big to be worth remembering
    assert shape(7) is int


BODIES = [
    b'{"a": 1, "b": [1, 2, {"c": "d"}]}',
    b'{"a": 1, "a": 2}',
    b'{"n": 90071992547409930}',
    b'{"n": -90071992547409930, "m": 1.5}',
    b'{"n": NaN}',
    b'{"n": 1e400}',
    b'{"n": ' + b"1" * 150 + b"}",
    b'{"n": 0.' + b"1" * 150 + b"}",
    b'{"s": "\\ud800"}',
    b'{"s": "\\u00e9"}',
    b'{"' + b"k" * 70_000 + b'": 1}',
    b'{"s": "' + b"x" * 70_000 + b'"}',
    b'{"image": "' + b"x" * 70_000 + b'"}',
    b"[" * 40 + b"]" * 40,
    b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",
    b'{"a": [' + b"1," * 12_000 + b"1]}",
    b"\xef\xbb\xbf{}",
    b"{} {}",
    b"",
    b"   ",
    b"[1, 2]",
    b"{",
    b'{"a": "\xff"}',
]


@pytest.mark.parametrize("raw", BODIES, ids=range(len(BODIES)))
def test_reading_without_the_walk_finds_what_the_walk_finds(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    contract = get_contract()
    limits = contract.limits
    fast = message.parse_message(raw, limits, "x request", contract.content_fields)
    real = message._text_within_bounds
    monkeypatch.setattr(message, "_text_within_bounds", lambda *a: (real(*a)[0], False))  # always walk
    monkeypatch.setattr(message._Reader, "read_fast", lambda self, raw: message.NOT_PLAIN)  # (which orjson skips)
    walked = message.parse_message(raw, limits, "x request", contract.content_fields)
    assert (fast.value, fast.failure, fast.issues) == (walked.value, walked.failure, walked.issues)
    if raw.strip() and raw.strip() not in (b"{", b"{} {}"):
        try:
            plain = json.loads(raw)
        except ValueError:
            return
        if fast.failure is None:
            assert fast.value == plain or raw.startswith(b'{"a": 1, "a"')


def test_examples_read_the_same_with_and_without_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    contract = get_contract()
    bodies = [json.dumps(body).encode() for _, body in _messages(contract)]
    fast = [message.parse_message(b, contract.limits, "m", contract.content_fields) for b in bodies]
    real = message._text_within_bounds
    monkeypatch.setattr(message, "_text_within_bounds", lambda *a: (real(*a)[0], False))
    monkeypatch.setattr(message._Reader, "read_fast", lambda self, raw: message.NOT_PLAIN)
    walked = [message.parse_message(b, contract.limits, "m", contract.content_fields) for b in bodies]
    assert [(p.value, p.failure, p.issues) for p in fast] == [(p.value, p.failure, p.issues) for p in walked]


# ---- --jobs ------------------------------------------------------------------------------------


def test_jobs_split_judges_as_one_engine(faulty: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path, expected = faulty
    _, single, total = judge_files([path], EngineConfig())
    monkeypatch.setattr(validate, "judge_files", None)  # split, never judged again in one process
    for jobs in (2, 3):
        split, count, other = judge_split([path], EngineConfig(), jobs)
        assert count == total and other == 0
        assert [f.to_dict() for f in split] == [f.to_dict() for f in single]
    assert about(single) == expected


def test_jobs_are_spawn_safe(faulty: Any) -> None:
    path, expected = faulty
    split, _, _ = judge_split([path], EngineConfig(), 2, start_method="spawn")
    assert about(split) == expected


def test_devices_sharing_request_ids_are_judged_as_one_engine_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result posted by another device for a task, a device-less result and non-protocol traffic:
    what one engine shares between devices (request_ids, the host a device-less message is filed
    under) is found in two jobs, and the capture is judged as one engine judges it."""
    exchanges = sample_conversation(devices=4, cycles=4)
    results = [i for i, ex in enumerate(exchanges) if ex.path == "/taskResult"]
    stolen = json.loads(exchanges[results[0]].request_body)  # device 0's result ...
    foreign = json.loads(exchanges[results[5]].request_body)
    foreign["request_id"] = stolen["request_id"]  # ... claimed by another device
    exchanges[results[5]].request_body = json.dumps(foreign).encode()
    nameless = json.loads(exchanges[results[6]].request_body)
    del nameless["device_id"]  # filed under its task's owner
    exchanges[results[6]].request_body = json.dumps(nameless).encode()
    exchanges.insert(3, Exchange("GET", "/favicon.ico", b"", 200, b"x", started=exchanges[3].started))
    path = write_jsonl(exchanges, tmp_path / "shared.jsonl")
    _, single, total = judge_files([path], EngineConfig())
    assert {"RESULT-UNKNOWN-ID", "MSG-REQUIRED"} <= {f.rule for f in single}
    again: list[Any] = []
    monkeypatch.setattr(validate, "judge_files", lambda *a: again.append(a) or judge_files(*a))
    split, count, other = judge_split([path], EngineConfig(), 2)
    assert again  # judged in one process after the split showed shared request_ids
    assert (count, other) == (total, 1)
    assert [f.to_dict() for f in split] == [f.to_dict() for f in single]


def test_a_device_less_capture_stays_in_its_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture without device_id is filed under the host it came from, by one engine and by the job
    that host is dealt to: the split holds."""
    exchanges = sample_conversation(devices=3, cycles=3)
    captures = [i for i, ex in enumerate(exchanges) if ex.path == "/faceRecognition"]
    for index in captures[1:3]:
        body = json.loads(exchanges[index].request_body)
        del body["device_id"]
        exchanges[index].request_body = json.dumps(body).encode()
        exchanges[index].peer = "10.1.2.3:4567"
    path = write_jsonl(exchanges, tmp_path / "nameless.jsonl")
    _, single, _ = judge_files([path], EngineConfig())
    assert [(f.rule, f.device_id) for f in single if f.rule == "MSG-REQUIRED"] == [("MSG-REQUIRED", "10.1.2.3")] * 2
    monkeypatch.setattr(validate, "judge_files", None)
    split, _, _ = judge_split([path], EngineConfig(), 2)
    assert [f.to_dict() for f in split] == [f.to_dict() for f in single]


def _validate_output(paths: list[Path], jobs: int, json_out: bool = True) -> tuple[int, str]:
    console = Console(record=True, width=200, file=open("/dev/null", "w"))
    code = run_validate(
        paths,
        profile="strict",
        version=None,
        tolerance=0.25,
        time_scale=1.0,
        as_kind=None,
        json_out=json_out,
        junit=None,
        show_info=True,
        console=console,
        jobs=jobs,
    )
    console.file.close()
    return code, console.export_text()


def test_jobs_2_output_equals_jobs_1_output(faulty: Any) -> None:
    path, _ = faulty
    code_1, one = _validate_output([path], 1)
    code_2, two = _validate_output([path], 2)
    assert (code_1, json.loads(one)) == (code_2, json.loads(two))
    assert one == two and code_1 == 1
    assert _validate_output([path], 1, json_out=False) == _validate_output([path], 2, json_out=False)


def test_jobs_over_a_folder_of_captures(faulty: Any, tmp_path: Path) -> None:
    path, _ = faulty
    (tmp_path / "a.jsonl").write_bytes(path.read_bytes())
    write_jsonl(sample_conversation(devices=3, cycles=2), tmp_path / "b.jsonl")
    (tmp_path / "notes.txt").write_text("not a capture")
    assert _validate_output([tmp_path], 1) == _validate_output([tmp_path], 2)


def test_a_broken_capture_fails_alike_with_jobs(faulty: Any, tmp_path: Path) -> None:
    path, _ = faulty
    lines = path.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"".join(lines[:200]) + b'{"index": 0, "method": 5}\n' + b"".join(lines[200:]))
    assert _validate_output([broken], 1) == _validate_output([broken], 2)
    code, text = _validate_output([broken], 2)
    assert code == 2 and "broken.jsonl:201" in text


def test_jobs_that_cannot_start_or_die_are_a_clear_error(faulty: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No traceback at the user: exit 2 and what went wrong, when the jobs cannot start or one dies."""
    import facecert.validate as validate_module

    path, _ = faulty

    def no_processes(*args: Any, **kwargs: Any) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(validate_module, "_Jobs", no_processes)
    code, text = _validate_output([path], 2, json_out=False)
    assert code == 2 and "could not start 2 jobs: Too many open files" in text and "Traceback" not in text

    def died(*args: Any, **kwargs: Any) -> None:
        raise validate_module.JobError("job 1 ended with exit code -9")

    monkeypatch.setattr(validate_module, "judge_inputs", died)
    code, text = _validate_output([path], 2, json_out=False)
    assert code == 2 and "job 1 ended with exit code -9" in text


def test_the_cli_takes_jobs(faulty: Any) -> None:
    path, _ = faulty
    outputs = [facecert("validate", str(path), "--json", "--jobs", jobs, timeout=300) for jobs in ("1", "2")]
    assert [o.returncode for o in outputs] == [1, 1], outputs[1].stderr[-2000:]
    assert outputs[0].stdout == outputs[1].stdout and json.loads(outputs[1].stdout)["findings"]
    bad = facecert("validate", str(path), "--jobs", "0", timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr + bad.stdout


# ---- reading without the integer hook (_Reader.read_plainly) -----------------------------------

PLAIN_BODIES = [
    b'{"n": 9007199254740991, "m": -9007199254740991}',  # the largest safe integers: read plainly
    b'{"n": 9007199254740992}',  # one beyond: MSG-NUMBER-TOO-LARGE
    b'{"n": -9007199254740992}',
    b'{"n": 1000000000000000, "m": 999999999999999}',  # 16 digits within the bound: the hooked path
    b'{"n": -0, "m": 0, "f": -0.0}',
    b'{"n": ' + b"9" * 4301 + b"}",  # beyond int()'s digit limit
    b'{"n": ' + b"9" * 101 + b"}",
    b'{"s": "1234567890123456789"}',  # digits in a string: the hooked path, same result
    b'{"a": {"b": 1, "b": 2}, "c": [{"d": 1, "d": 1}]}',  # repeated keys, nested
    b'{"a": 1, "a": 1}',
    b'{"a": NaN}',
    b'{"a": -Infinity}',
    b'{"a": 1e400}',
    b'{"a": 1.5e-400}',
    b'{"a": 0.' + b"1" * 120 + b"}",
    b'{"a": [1, 2, 3], "b": {"c": [true, false, null]}}',
    b'{"a": 1} x',
    b'{"a": 1,}',
    b'{"a": 01}',
    b'\xef\xbb\xbf{"a": 1}',
    b' \t\n{"a": 1}\r\n ',
    b"[1, 2]",
    b"7",
    b'"text"',
    b'{"k\\"ey": "v:a:l", "url": "http://x/y"}',
]


def _strict_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(message._Reader, "read_plainly", lambda self, text, raw: message.NOT_PLAIN)
    monkeypatch.setattr(message._Reader, "read_fast", lambda self, raw: message.NOT_PLAIN)


@pytest.mark.parametrize("raw", PLAIN_BODIES + BODIES, ids=range(len(PLAIN_BODIES) + len(BODIES)))
def test_reading_without_the_integer_hook_reads_as_the_hooks_do(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    contract = get_contract()
    tight = contract.limits.with_changes(max_number_chars=4, max_integer=1000)  # bounds a plain read must respect
    for limits in (contract.limits, tight):
        plain = message.parse_message(raw, limits, "x request", contract.content_fields)
        with monkeypatch.context() as patched:
            _strict_only(patched)
            hooked = message.parse_message(raw, limits, "x request", contract.content_fields)
        assert (plain.value, plain.failure, plain.issues) == (hooked.value, hooked.failure, hooked.issues)
        assert repr(plain.value) == repr(hooked.value)  # -0.0 and 0, 1 and 1.0 alike too


def test_the_plain_read_is_taken_for_ordinary_bodies_and_refused_for_long_digit_runs() -> None:
    reader = message._reader(get_contract().limits)
    body = b'{"device_id": "ID1", "time_stamp": 1700000000, "t": 36.6, "ms": 1700000000123}'
    assert reader.read_plainly(body.decode(), body) == json.loads(body)
    long_run = b'{"n": 1000000000000000}'
    assert reader.read_plainly(long_run.decode(), long_run) is message.NOT_PLAIN
    tight = message._reader(get_contract().limits.with_changes(max_number_chars=4, max_integer=10**9))
    assert tight.plain_integer == 999 and tight.plain_digits == b"0000"
    assert tight.read_plainly('{"n": 12345}', b'{"n": 12345}') is message.NOT_PLAIN
    off = message._reader(get_contract().limits.with_changes(max_number_chars=1))  # "-0" alone would break it
    assert off.plain_integer is None and off.read_plainly("{}", b"{}") is message.NOT_PLAIN


# ---- answers judged once (Engine.answers) --------------------------------------------------------


def _answer_faults() -> tuple[list[Exchange], list[tuple[str, int, str]]]:
    """The faulty conversation, and the same wrong idle answer (same bytes) to several devices' polls, and
    the same faulty acknowledgement to several results: each exchange gets its own findings."""
    exchanges, expected = faulty_conversation()
    idle = [i for i, ex in enumerate(exchanges) if ex.path == "/taskRequest" and b"idleTime" in ex.response_body]
    wrong_idle = b'{"request_type": "idleTime", "time_stamp": "later"}'
    for index in idle[10:16]:
        exchanges[index].response_body = wrong_idle
        expected.append(("MSG-TYPE", index, "/time_stamp"))
    results = [i for i, ex in enumerate(exchanges) if ex.path == "/taskResult"]
    for index in results[3:7]:
        exchanges[index].response_body = b'{"code": 0, "log": "ok", "extra": 1}'
        expected.append(("MSG-UNKNOWN-FIELD", index, "/extra"))
    expected.sort(key=lambda item: (item[1] < 0, item[1]))
    return exchanges, expected


def _feed_all(exchanges: list[Exchange], engine: Engine) -> list[Finding]:
    for exchange in exchanges:
        exchange.index = -1
        engine.feed(exchange)
    engine.finish()
    return engine.findings


def test_a_repeated_answer_makes_its_findings_at_every_exchange_as_without_the_memo() -> None:
    exchanges, expected = _answer_faults()
    remembered = Engine(EngineConfig())
    with_memo = _feed_all(exchanges, remembered)
    assert remembered.answers.hits > len(exchanges) // 3  # the idle answers and acknowledgements repeat
    forgetful = Engine(EngineConfig())
    forgetful.answers.max_body = -1  # nothing kept: every answer judged anew
    without = _feed_all(exchanges, forgetful)
    assert forgetful.answers.hits == 0 and len(forgetful.answers) == 0
    assert [f.to_dict() for f in with_memo] == [f.to_dict() for f in without]
    assert sorted(about(with_memo), key=lambda item: (item[1] < 0, item[1])) == expected
    firsts = [f for f in with_memo if f.rule == "MSG-TYPE" and f.direction == "answer"]
    assert len({id(f) for f in firsts}) == len(firsts) == 6  # a finding of its own for each exchange
    assert len({f.exchange for f in firsts}) == 6 and len({f.device_id for f in firsts}) > 1


def test_a_remembered_task_answer_still_opens_its_task() -> None:
    """A task answer sent twice with the same bytes (a re-used request_id): the second is remembered, and
    still opens the task, finds the duplicate id, and the field profile changes severities as before."""
    exchanges = sample_conversation(devices=2, cycles=2)
    polls = [i for i, ex in enumerate(exchanges) if ex.path == "/taskRequest" and b"getDevStatus" in ex.response_body]
    exchanges[polls[1]].response_body = exchanges[polls[0]].response_body  # device 1 gets device 0's task
    for profile in ("strict", "field"):
        on, off = Engine(EngineConfig(profile=profile)), Engine(EngineConfig(profile=profile))
        off.answers.max_body = -1
        found_on, found_off = _feed_all(exchanges, on), _feed_all(exchanges, off)
        assert on.answers.hits >= 1
        assert [f.to_dict() for f in found_on] == [f.to_dict() for f in found_off]
        assert "REQUEST-ID-DUPLICATE" in {f.rule for f in found_on}


def test_the_memo_stays_bounded_whatever_a_capture_sends() -> None:
    """A hostile capture of endless distinct answers: the memo keeps at most its entries and bytes, and
    an answer above max_body is never kept."""
    from facecert.core.memo import Memo

    memo = Memo(entries=50, size=40_000, max_body=1000)
    for number in range(5_000):
        body = b'{"code": 0, "log": "%d"}' % number
        memo.put(("taskResult", False, body), len(body), number)
        assert len(memo) <= 50 and memo.used <= 40_000
    memo.put("big", 1001, "never")
    assert memo.get("big") is None
    small = Memo(entries=1000, size=3 * (100 + 256), max_body=1000)
    for key in "abcd":
        small.put(key, 100, key)
    assert len(small) == 3 and small.get("a") is None  # the byte bound evicted the oldest
    assert small.get("b") == "b"  # now the most recent: ...
    small.put("e", 100, "e")
    assert small.get("c") is None and small.get("b") == "b"  # ... so c went first (least recently used)
    engine = Engine(EngineConfig())
    for number in range(3_000):
        ex = Exchange("POST", "/taskResult", b'{"device_id": "ID1", "request_id": 1, "code": 0}', 200)
        ex.response_body = b'{"code": 0, "log": "%d"}' % number
        engine.feed(ex)
    assert len(engine.answers) <= engine.answers.entries and engine.answers.used <= engine.answers.size


def test_a_redacted_answer_is_remembered_apart_from_a_plain_one() -> None:
    from facecert.core.engine import AnswerVerdict

    engine = Engine(EngineConfig())
    body = b'{"code": 0, "log": "ok"}'
    for redacted in (False, True):
        ex = Exchange("POST", "/taskResult", b'{"device_id": "ID1", "request_id": 1, "code": 0}', 200, body)
        ex.redacted = redacted
        engine.feed(ex)
    assert engine.answers.hits == 0 and len(engine.answers) == 2
    assert isinstance(engine.answers.get(("taskResult", True, body)), AnswerVerdict)


# ---- reading a capture's lines --------------------------------------------------------------------

LINES = [
    b'{"a": 1, "b": [1.5, "x"]}',
    b'{"a": NaN}',
    b'{"a": 1e400}',
    b'{"a": 1} {"b": 2}',
    b'{"a": 1}   \n',
    b'{"a": "\\ud800"}',
    b'{"a": ',
    b"{\x00\x00\x00",
    '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-16"),
    b'\xef\xbb\xbf{"a": 1}',
    b'{"a": "\xff"}',
    b"  {}",
    b"[]",
]


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("value", repr(call()))
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the exception itself
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("raw", LINES, ids=range(len(LINES)))
def test_a_capture_line_reads_as_json_loads_with_the_strict_hooks(raw: bytes) -> None:
    from facecert.core import jsonsafe

    def reference() -> Any:
        return json.loads(raw, parse_constant=jsonsafe._refuse_constant, parse_float=jsonsafe._finite_float)

    assert _outcome(lambda: jsonsafe.loads_strict(raw, allow_surrogates=True)) == _outcome(reference)


def test_capture_records_of_the_wrong_types_are_refused_as_before() -> None:
    from facecert.core.captures.jsonl import record_to_exchange

    good = {"method": "POST", "path": "/taskRequest", "request_b64": "e30=", "response_b64": None}
    assert record_to_exchange(dict(good)).request_body == b"{}"
    cases = {
        "a record is a JSON object": [1],
        "method is int": {**good, "status": "200", "method": 5},  # the first in field order is named
        "status is str": {**good, "status": "200"},
        "path is NoneType": {**good, "path": None},  # the keys of a layout that passed, a value's type changed
        "request_headers holds a name or value that is not text": {**good, "request_headers": {"a": 1}},
        "response_headers holds a name or value that is not text": {**good, "response_headers": {"a": None}},
        "Incorrect padding": {**good, "request_b64": "e30"},
        "string argument should contain only ASCII characters": {**good, "response_b64": "é"},
    }
    for wanted, record in cases.items():
        with pytest.raises(ValueError) as raised:
            record_to_exchange(record)  # type: ignore[arg-type]
        assert str(raised.value) == wanted


def test_a_remembered_placeholder_verdict_follows_the_pixel_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    placeholder = "facecert-redacted:image/jpeg;bytes=631;head=ffd8ffe000104a46;px=800x600;sha256=" + "ab" * 32
    assert message._placeholder_issues(placeholder, "image/jpeg", "/image", "capture") == []
    image = message._pil_image()
    monkeypatch.setattr(image, "MAX_IMAGE_PIXELS", 1000)
    found = message._placeholder_issues(placeholder, "image/jpeg", "/image", "capture")
    assert [issue.rule for issue in found] == ["IMG-FORMAT"]
    found.clear()  # a caller's list: the memo's own is not emptied
    assert len(message._placeholder_issues(placeholder, "image/jpeg", "/image", "capture")) == 1


def test_blank_lines_of_a_capture_are_skipped_as_strip_would(tmp_path: Path) -> None:
    from facecert.core.captures import CaptureError, read_capture

    path = write_jsonl(sample_conversation(devices=1, cycles=1), tmp_path / "c.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    padded = tmp_path / "padded.jsonl"
    padded.write_bytes(b"\n" + lines[0] + b" \t\r\x0b\x0c\n" + b"".join(lines[1:]) + b"   ")
    assert [e.request_body for e in read_capture(padded)] == [e.request_body for e in read_capture(path)]
    odd = tmp_path / "odd.jsonl"
    odd.write_bytes(lines[0] + b"\x1c\n")  # not whitespace to bytes.strip: a broken line, as before
    with pytest.raises(CaptureError, match="odd.jsonl:2"):
        list(read_capture(odd))


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _ended(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while any(_running(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_jobs_end_when_the_main_process_is_killed() -> None:
    """kill -9 of `facecert validate --jobs N` (the OOM killer, a CI runner's hard stop): its jobs end within
    about a second. They waited for ever before: a forked sibling holds the dead main process's end of
    each pipe, so no end-of-file ever came (orphans that also kept a caller's pipes open)."""
    code = (
        "import os, signal\n"
        "from facecert.core.engine import EngineConfig\n"
        "from facecert.validate import _Jobs\n"
        "jobs = _Jobs(2, EngineConfig(), 'fork')\n"
        "print(' '.join(str(p.pid) for p in jobs.processes), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pids = [int(pid) for pid in done.stdout.split()]
    assert done.returncode == -9 and len(pids) == 2, done
    try:
        assert _ended(pids, within=10), "the jobs outlived the main process"
    finally:
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_a_command_as_ctrl_c_does(tmp_path: Path) -> None:
    """SIGTERM (kill, a CI job's timeout) stops any command as Ctrl-C does (exit 130, facecert.cli.main), so
    its clean-up runs (--jobs ends its jobs, files are closed); its default killed the process outright.
    The input is a FIFO nobody writes to, so `facecert validate` is surely still waiting when it comes."""
    fifo = tmp_path / "capture.jsonl"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "facecert"), "validate", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with open(fifo, "w", encoding="utf-8"):  # a writer that never writes: validate waits in its first read
        deadline = time.monotonic() + 30
        while "pipe_read" not in Path(f"/proc/{proc.pid}/wchan").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in out, out
