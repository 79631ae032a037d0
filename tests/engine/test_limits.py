"""Strict, bounded input: every bound of catalogue.yaml ``limits:`` and every
strict-JSON rule. A message that breaks one gets exactly that rule (and no
crash); the same message at the bound passes; the work a hostile message
costs stays small; findings quote hostile values as strict JSON."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.examples import example_for
from facecert.core.hostile import BREAKERS, break_body
from facecert.core.model import Exchange, Finding, Severity
from facecert.core.rules.message import ParseFailure, count_structure, parse_body
from facecert.samples import ConversationBuilder

LIMITS = get_contract().limits
ALARM = example_for("device/deviceAlarm")


def judge(raw: bytes, kind: str = "deviceAlarm", **config: Any) -> list[Finding]:
    return judge_message(Engine(EngineConfig(**config)), kind, raw)


def error_rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings if f.severity is Severity.ERROR}


def with_member(name: str, raw_value: str, body: dict[str, Any] | None = None) -> bytes:
    """The alarm with one more member written as raw JSON text."""
    text = json.dumps(body or ALARM)
    return (text[:-1] + f", {json.dumps(name)}: {raw_value}}}").encode()


def poll_exchange(raw: bytes) -> Exchange:
    builder = ConversationBuilder()
    return builder._post("/taskRequest", raw, example_for("server/tasks/idleTime"))


# ---- each bound: broken fires exactly its rule, at the bound passes -------------------


@pytest.mark.parametrize("rule", sorted(BREAKERS))
def test_breaking_one_bound_fires_exactly_its_rule(rule: str) -> None:
    findings = judge(break_body(rule, ALARM))
    assert error_rules(findings) == {rule}, [f.line() for f in findings]
    fired = [f for f in findings if f.rule == rule]
    assert all(f.pointer.startswith("/x_") or rule == "MSG-DUPLICATE-KEY" for f in fired), [f.line() for f in fired]
    assert all(f.party == "device" and f.direction == "request" for f in fired)


def test_the_correct_message_passes() -> None:
    assert error_rules(judge(json.dumps(ALARM).encode())) == set()


AT_THE_BOUND = {
    "depth": with_member("x_nested", "[" * (LIMITS.max_depth - 1) + "]" * (LIMITS.max_depth - 1)),
    "members": with_member("x_many", json.dumps({f"k{i}": 0 for i in range(LIMITS.max_members)})),
    "items": with_member("x_list", json.dumps([0] * LIMITS.max_members)),
    "string": with_member("x_text", json.dumps("x" * LIMITS.max_string_chars)),
    "integer": with_member("x_big", str(LIMITS.max_integer)),
    "negative integer": with_member("x_big", str(-LIMITS.max_integer)),
    "number literal": with_member("x_number", "0." + "1" * (LIMITS.max_number_chars - 2)),
    "surrogate pair": with_member("x_text", '"\\ud83d\\ude00"'),
}


@pytest.mark.parametrize("case", list(AT_THE_BOUND))
def test_a_message_at_the_bound_passes(case: str) -> None:
    findings = judge(AT_THE_BOUND[case])
    assert error_rules(findings) == set(), [f.line() for f in findings]
    assert {f.rule for f in findings} == {"MSG-UNKNOWN-FIELD"}  # the x_ field itself (info)


BEYOND = {
    "items": (with_member("x_list", json.dumps([0] * (LIMITS.max_members + 1))), "MSG-TOO-MANY-MEMBERS", "/x_list"),
    "key": (with_member("k" * (LIMITS.max_string_chars + 1), "0"), "MSG-STRING-TOO-LONG", "/" + "k" * 20),
    "string in an array": (
        with_member("x_list", json.dumps(["x" * (LIMITS.max_string_chars + 1)])),
        "MSG-STRING-TOO-LONG",
        "/x_list/0",
    ),
    "negative integer": (with_member("x_big", str(-LIMITS.max_integer - 1)), "MSG-NUMBER-TOO-LARGE", "/x_big"),
    "2**70": (with_member("x_big", str(2**70)), "MSG-NUMBER-TOO-LARGE", "/x_big"),
    "long integer literal": (
        with_member("x_big", "9" * (LIMITS.max_number_chars + 1)),
        "MSG-NUMBER-TOO-LARGE",
        "/x_big",
    ),
    "5000 digits": (with_member("x_big", "9" * 5000), "MSG-NUMBER-TOO-LARGE", "/x_big"),
    "long float literal": (
        with_member("x_number", "0." + "1" * LIMITS.max_number_chars),
        "MSG-NUMBER-TOO-LARGE",
        "/x_number",
    ),
    "NaN": (with_member("x_number", "NaN"), "MSG-NOT-FINITE", "/x_number"),
    "Infinity": (with_member("x_number", "Infinity"), "MSG-NOT-FINITE", "/x_number"),
    "-Infinity": (with_member("x_number", "-Infinity"), "MSG-NOT-FINITE", "/x_number"),
    "-1e400": (with_member("x_number", "-1e400"), "MSG-NOT-FINITE", "/x_number"),
    "NaN in an array": (with_member("x_list", "[1, NaN]"), "MSG-NOT-FINITE", "/x_list/1"),
    "lone low surrogate": (with_member("x_text", '"a\\udfff"'), "MSG-BAD-UNICODE", "/x_text"),
    "lone high surrogate": (with_member("x_text", '"\\ud800b"'), "MSG-BAD-UNICODE", "/x_text"),
    "reversed pair": (with_member("x_text", '"\\udc00\\ud800"'), "MSG-BAD-UNICODE", "/x_text"),
    "surrogate in a key": (with_member("\udfff", "1"), "MSG-BAD-UNICODE", "/\\udfff"),
    "surrogate in a known field": (
        json.dumps({**ALARM, "device_id": "\udfff"}).encode(),
        "MSG-BAD-UNICODE",
        "/device_id",
    ),
    "deep as the whole body": (b"[" * 100_000 + b"]" * 100_000, "MSG-TOO-DEEP", ""),
    "deep and unclosed": (b"[" * 100_000, "MSG-TOO-DEEP", ""),
    "deep objects": (b'{"a":' * 50 + b"1" + b"}" * 50, "MSG-TOO-DEEP", "/a" * 32),
    "duplicate, wrong value last": (
        json.dumps(ALARM).encode()[:-1] + b', "alarm_type": "x"}',
        "MSG-DUPLICATE-KEY",
        "/alarm_type",
    ),
}


@pytest.mark.parametrize("case", list(BEYOND))
def test_beyond_the_bound(case: str) -> None:
    raw, rule, pointer = BEYOND[case]
    findings = judge(raw)
    fired = [f for f in findings if f.rule == rule]
    assert fired and fired[0].pointer.startswith(pointer), [f.line() for f in findings]
    expected = {rule, "MSG-TYPE"} if case.startswith("duplicate") else {rule}  # the last value is the one judged
    assert error_rules(findings) == expected, [f.line() for f in findings]


def test_duplicate_keys_judge_the_last_value() -> None:
    good_last = b'{"alarm_type": "x", ' + json.dumps(ALARM).encode()[1:]
    assert error_rules(judge(good_last)) == {"MSG-DUPLICATE-KEY"}


def test_non_utf8_bytes_stay_not_json() -> None:
    assert error_rules(judge(b'{"device_id": "\xff\xfe"}')) == {"MSG-NOT-JSON"}
    assert error_rules(judge(b'{"device_id": "\xed\xb3\xbf"}')) == {"MSG-NOT-JSON"}  # a surrogate as CESU bytes


def test_content_fields_are_bounded_by_the_body_only() -> None:
    """Base64 images and log files (contentMediaType) may exceed max_string_chars."""
    jpeg = base64.b64decode(example_for("device/faceRecognition")["image"]) + b"\x00" * LIMITS.max_string_chars
    capture = {**example_for("device/faceRecognition"), "image": base64.b64encode(jpeg).decode()}
    assert error_rules(judge(json.dumps(capture).encode(), "faceRecognition")) == set()
    log = {**example_for("device/results/getLogFile"), "log_info": "line\n" * LIMITS.max_string_chars}
    assert error_rules(judge(json.dumps(log).encode(), "device/results/getLogFile")) == set()
    elsewhere = {**example_for("device/faceRecognition"), "user_name": "x" * (LIMITS.max_string_chars + 1)}
    assert error_rules(judge(json.dumps(elsewhere).encode(), "faceRecognition")) == {"MSG-STRING-TOO-LONG"}
    assert {"image", "idcard_image", "log_info"} <= get_contract().content_fields


def test_limits_are_configurable() -> None:
    longest = max(len(v) for v in ALARM.values() if isinstance(v, str))
    members = len(ALARM) + 1  # the alarm and one more member fit
    small = LIMITS.with_changes(
        max_depth=3,
        max_members=members,
        max_string_chars=longest,
        max_integer=10**12,
        max_number_chars=14,
        max_values=members + 20,
    )
    assert error_rules(judge(with_member("x", "[[1]]"), limits=small)) == set()
    assert error_rules(judge(with_member("x", "[[[1]]]"), limits=small)) == {"MSG-TOO-DEEP"}
    assert error_rules(judge(with_member("x", json.dumps([0] * (members + 1))), limits=small)) == {
        "MSG-TOO-MANY-MEMBERS"
    }
    assert error_rules(judge(with_member("x", json.dumps("y" * (longest + 1))), limits=small)) == {
        "MSG-STRING-TOO-LONG"
    }
    assert error_rules(judge(with_member("x", str(10**12 + 1)), limits=small)) == {"MSG-NUMBER-TOO-LARGE"}
    assert error_rules(judge(with_member("x", "0.123456789012345"), limits=small)) == {"MSG-NUMBER-TOO-LARGE"}
    many = with_member("x", json.dumps([[0, 0]] * 6))  # 19 values in one member
    assert error_rules(judge(many, limits=small.with_changes(max_values=members + 10))) == {"MSG-TOO-MANY-MEMBERS"}
    assert error_rules(judge(json.dumps(ALARM).encode(), max_body=100)) == {"MSG-TOO-LARGE"}
    assert Engine(EngineConfig(max_body=100)).limits.max_depth == LIMITS.max_depth  # the shorthand changes one bound


def test_parse_body_takes_a_body_limit_or_limits() -> None:
    with pytest.raises(ParseFailure) as refused:
        parse_body(json.dumps(ALARM).encode(), 100, "alarm")
    assert refused.value.issue.rule == "MSG-TOO-LARGE"
    with pytest.raises(ParseFailure) as refused:
        parse_body(with_member("x", "[[1]]"), LIMITS.with_changes(max_depth=2), "alarm")
    assert refused.value.issue.rule == "MSG-TOO-DEEP"
    assert parse_body(with_member("x_big", str(2**70)), LIMITS, "alarm")["x_big"] == 2**70


def test_unsafe_integers_are_kept_exact_and_quoted_as_text() -> None:
    body = {**example_for("device/taskRequest"), "time_stamp": 2**70}
    judged = Engine(EngineConfig()).feed(poll_exchange(json.dumps(body).encode()))
    assert judged.request["time_stamp"] == 2**70  # judged, not lost
    fired = [f for f in judged.findings if f.rule == "MSG-NUMBER-TOO-LARGE"]
    assert [f.pointer for f in fired] == ["/time_stamp"]
    assert fired[0].actual == 2**70 and fired[0].to_dict()["actual"] == str(2**70)
    assert error_rules(judged.findings) == {"MSG-NUMBER-TOO-LARGE"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": "x,[{", "b": [1, 2]}', 5),  # commas and brackets in strings do not count
        ('{"a": "\\",[{\\\\", "b": 1}', 3),  # nor after an escaped quote; an escaped backslash closes nothing
        ('["\\\\\\"", ",", {}]', 5),
    ],
)
def test_values_are_counted_from_the_structure(text: str, expected: int) -> None:
    assert count_structure(text.encode(), stop=10**9) == expected


def test_values_are_counted_across_chunk_edges() -> None:
    """A run of backslashes or an escaped quote at the 256 KiB chunk edge keeps its meaning."""
    for pad in range(256 * 1024 - 6, 256 * 1024 + 2):
        text = '["' + "a" * pad + '\\\\\\"' + ",,,[" + '", 1, 2]'
        assert count_structure(text.encode(), stop=10**9) == 4, pad


def test_findings_of_one_rule_are_capped_per_message() -> None:
    body = {**example_for("device/taskRequest"), **{f"vendor_{i}": i for i in range(500)}}
    findings = judge(json.dumps(body).encode(), "taskRequest")
    unknown = [f for f in findings if f.rule == "MSG-UNKNOWN-FIELD"]
    assert len(unknown) == LIMITS.max_findings_per_rule + 1
    assert unknown[-1].actual == 500 - LIMITS.max_findings_per_rule and "not listed one by one" in unknown[-1].message


def test_schema_errors_are_looked_at_up_to_the_bound() -> None:
    task = example_for("server/tasks/addUser")
    users = [{**task["user_list"][0], "user_id": i} for i in range(3000)]  # user_id must be a string
    findings = judge(json.dumps({**task, "user_list": users}).encode(), "task")
    wrong = [f for f in findings if f.rule == "MSG-TYPE"]
    assert len(wrong) == LIMITS.max_findings_per_rule + 1
    assert "at least" in wrong[-1].message  # the validator stopped at max_schema_errors


def test_each_body_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import facecert.core.engine as engine_module

    calls: list[str] = []
    real = engine_module.parse_message
    monkeypatch.setattr(engine_module, "parse_message", lambda raw, *a: calls.append(a[1]) or real(raw, *a))
    Engine(EngineConfig()).feed(poll_exchange(json.dumps(example_for("device/taskRequest")).encode()))
    assert sorted(calls) == ["taskRequest answer", "taskRequest request"]


# ---- the work is bounded ---------------------------------------------------------------


def _timed(raw: bytes) -> tuple[float, list[Finding]]:
    engine = Engine(EngineConfig())
    engine.feed(poll_exchange(json.dumps(example_for("device/taskRequest")).encode()))  # compile the validators first
    started = time.perf_counter()
    judged = engine.feed(poll_exchange(raw))
    return time.perf_counter() - started, judged.findings


def _poll_with_keys(count: int) -> bytes:
    body = example_for("device/taskRequest")
    return json.dumps({**body, **{f"k{i:07d}": 1 for i in range(count)}}, separators=(",", ":")).encode()


HOSTILE = {
    "1.7 MB poll, 100,000 unknown keys": (
        lambda: _poll_with_keys(100_000) + b" " * 400_000,
        "MSG-TOO-MANY-MEMBERS",
        0.5,
    ),
    "18.8 MB poll, 1,000,000 keys": (lambda: _poll_with_keys(1_000_000).ljust(18_800_000), "MSG-TOO-MANY-MEMBERS", 1.5),
    "1,000,000 nested arrays": (lambda: b"[" * 1_000_000 + b"]" * 1_000_000, "MSG-TOO-DEEP", 0.5),
    "array of 1,000,000 objects": (
        lambda: b'{"x":[' + b",".join([b"{}"] * 1_000_000) + b"]}",
        "MSG-TOO-MANY-MEMBERS",
        1.0,
    ),
    "19 MB string of escapes and commas": (
        lambda: b'{"x":"' + b'\\\\,\\",' * 3_000_000 + b'"}',
        "MSG-STRING-TOO-LONG",
        1.5,
    ),
    "10 objects of 9,000 keys (within the bounds)": (
        lambda: json.dumps(
            {**example_for("device/taskRequest"), **{f"v{j}": {f"k{i}": 1 for i in range(9000)} for j in range(10)}}
        ).encode(),
        "MSG-UNKNOWN-FIELD",
        1.5,
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_messages_are_judged_fast(case: str) -> None:
    make, rule, bound = HOSTILE[case]
    raw = make()
    assert len(raw) <= LIMITS.max_body_bytes
    elapsed, findings = _timed(raw)
    assert rule in {f.rule for f in findings}, [f.line() for f in findings]
    assert len(findings) <= 2 * LIMITS.max_findings_per_rule + 2
    assert elapsed < bound, f"{case}: {elapsed:.3f} s (bound {bound} s)"
