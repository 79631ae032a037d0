"""What the engine keeps for the rest of a session stays small whatever a peer sends. What a finding quotes
of a peer's value (``actual``) is bounded: a finding lives as long as the session, in memory, in the
session database and in every report, and it quoted the whole value (a 50,000-character time_stamp made
each finding 51 KB). A small value is quoted whole; a cut one keeps its type, so a profile still tells a
string from a number. RESULT-UNKNOWN-ID names a few open request_ids, not all; an answered task lets its
body go; downloads no open task can name are forgotten."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

from facecert.core.engine import FETCHED_KEPT, Engine, EngineConfig, judge_message
from facecert.core.examples import example_for
from facecert.core.model import MESSAGE_BUDGET, QUOTE_BUDGET, Exchange, Finding, Severity, bounded
from facecert.samples import ConversationBuilder

CUT_MARK = 40  # what a cut value adds: "… (N chars)", "… (N items)", a "…" member
TASKS_WITH_BODIES = 100


def judged(kind: str, changes: dict[str, Any], profile: str = "strict") -> list[Finding]:
    body = {**example_for(f"device/{kind}"), **changes}
    return judge_message(Engine(EngineConfig(profile=profile)), kind, json.dumps(body).encode())


def only(findings: list[Finding], rule: str, pointer: str) -> Finding:
    found = [f for f in findings if f.rule == rule and f.pointer == pointer]
    assert len(found) == 1, [(f.rule, f.pointer) for f in findings]
    return found[0]


def test_a_huge_string_of_the_wrong_type_is_quoted_cut() -> None:
    finding = only(judged("taskRequest", {"time_stamp": "7" * 50_000}), "MSG-TYPE", "/time_stamp")
    assert isinstance(finding.actual, str) and finding.actual.endswith("… (50000 chars)")
    assert len(finding.actual) <= QUOTE_BUDGET + CUT_MARK
    assert len(json.dumps(finding.to_dict())) < 2_000  # the whole finding, as every report writes it


def test_a_huge_array_of_the_wrong_type_is_quoted_as_a_short_array() -> None:
    # as many items as one array may hold (catalogue limits.max_members), each a long string
    items = ["x" * 1_000] * 10_000
    finding = only(judged("taskRequest", {"time_stamp": items}), "MSG-TYPE", "/time_stamp")
    assert isinstance(finding.actual, list) and finding.actual[-1] == "… (10000 items)"
    assert len(json.dumps(finding.actual)) <= 4 * QUOTE_BUDGET


def test_a_deep_value_is_quoted_within_the_budget() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(5_000):  # deeper than any parse allows: bounded() is asked directly
        inner.append([])
        inner = inner[0]
    assert len(json.dumps(bounded(deep))) <= 4 * QUOTE_BUDGET


def test_small_values_are_quoted_whole() -> None:
    finding = only(judged("taskRequest", {"time_stamp": "1700000000"}), "MSG-TYPE", "/time_stamp")
    assert finding.actual == "1700000000"
    small = {"a": [1, 2.5, None, True], "b": "x" * 100}
    assert bounded(small) is small and bounded(2**70) == 2**70


def test_a_profile_still_tells_the_type_of_a_cut_value() -> None:
    # field.yaml: a string request_id in a device's message is a warning (value_type: string), strict an error
    rid = "T" + "9" * 10_000
    strict = only(judged("taskResult", {"request_id": rid}), "MSG-TYPE", "/request_id")
    field = only(judged("taskResult", {"request_id": rid}, profile="field"), "MSG-TYPE", "/request_id")
    assert strict.severity is Severity.ERROR and field.severity is Severity.WARNING
    assert isinstance(field.actual, str) and len(field.actual) <= QUOTE_BUDGET + CUT_MARK


def test_a_result_under_an_unknown_id_names_a_few_of_the_open_ones() -> None:
    # a device that answers every task under a wrong id keeps them all open: the finding names ten of them
    builder = ConversationBuilder()
    tasks = []
    for _ in range(30):
        tasks.append(builder.poll(example_for("server/tasks/getDevStatus")))
        builder.wait("task_interval_s")
    builder.result({**tasks[-1], "request_id": 1})
    engine = Engine()
    for exchange in builder.exchanges:
        engine.feed(exchange)
    found = [f for f in engine.findings if f.rule == "RESULT-UNKNOWN-ID"]
    assert len(found) == 1
    named = found[0].expected
    assert named[:-1] == sorted(str(task["request_id"]) for task in tasks)[:10] and named[-1] == "… (30 open)"


def test_an_answered_task_lets_its_body_go() -> None:
    # the engine keeps every task of the session; a task's body (here a 20 KB image URL, as big as a face
    # sent inline) is let go once its result is judged: before, every addUser kept its whole body
    builder = ConversationBuilder()
    for n in range(TASKS_WITH_BODIES):
        task = example_for("server/tasks/addUser")
        task["user_list"][0]["image_content"] = f"http://127.0.0.1/{n}/" + "a" * 20_000
        builder.result(builder.poll(task))
        builder.wait("task_interval_s")
    engine = Engine(EngineConfig(keep_findings=False))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for exchange in builder.exchanges:
            engine.feed(exchange)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(engine.issued) == TASKS_WITH_BODIES
    assert kept / TASKS_WITH_BODIES < 8_000, f"{kept / TASKS_WITH_BODIES:.0f} bytes kept per answered task"


def _get(builder: ConversationBuilder, path: str) -> None:
    """A download the tap saw (DOWNLOAD-FETCHED counts the GETs between a task and its result)."""
    builder.exchanges.append(Exchange("GET", path, b"", 200, b"\x00" * 10, started=builder.now, ended=builder.now))
    builder.now += 0.01


def test_downloads_no_open_task_can_name_are_forgotten() -> None:
    # a server serving downloads for days kept every GET it saw, and looked through all of them at each result
    builder = ConversationBuilder()
    _get(builder, "/test.img")  # before the task: it does not count for it
    task = builder.poll(example_for("server/tasks/upgrade"))
    for n in range(3 * FETCHED_KEPT):  # other devices' downloads meanwhile
        _get(builder, f"/other/{n}.img")
    builder.result(task)  # success, but its own file was never fetched after it was given
    for n in range(3 * FETCHED_KEPT):  # downloads with no task open that names one
        _get(builder, f"/later/{n}.img")
    engine = Engine(EngineConfig(check_downloads=True))
    for exchange in builder.exchanges:
        engine.feed(exchange)
    assert [f.rule for f in engine.findings if f.rule == "DOWNLOAD-FETCHED"] == ["DOWNLOAD-FETCHED"]
    assert len(engine.fetched) <= 2 * FETCHED_KEPT


def test_a_long_request_id_is_not_quoted_whole_in_a_message() -> None:
    # RESULT-UNKNOWN-ID, RESULT-DUPLICATE, ACK-ECHO ... write the peer's value in their messages
    builder = ConversationBuilder()
    task = builder.poll(example_for("server/tasks/getDevStatus"))
    builder.result({**task, "request_id": "9" * 50_000})
    engine = Engine()
    for exchange in builder.exchanges:
        engine.feed(exchange)
    found = [f for f in engine.findings if f.rule == "RESULT-UNKNOWN-ID"]
    assert found and all(len(json.dumps(f.to_dict())) < MESSAGE_BUDGET + 2 * QUOTE_BUDGET + 1_000 for f in found)
    assert found[0].message.endswith(" chars)")


def test_numbers_count_for_their_digits() -> None:
    for items in ([123456789012345] * 10_000, [0.1234567890123] * 10_000):
        assert len(json.dumps(bounded(items))) <= 4 * QUOTE_BUDGET
    assert bounded(["x" * 300, ""])[-1] in ("", "… (2 items)")  # an empty string is never a cut one


def test_a_lost_task_keeps_only_its_own_downloads() -> None:
    # a device that rebooted mid-upgrade sends no result: its task stays open (a late result is allowed),
    # said missing, and it pinned every later download for the rest of the session
    builder = ConversationBuilder()
    lost = builder.poll(example_for("server/tasks/upgrade"))  # its file's path: /test.img
    _get(builder, "/test.img")
    for _ in range(4):  # polls without a result: RESULT-MISSING
        builder.wait("task_interval_s")
        builder.poll(example_for("server/tasks/idleTime"))
    for n in range(3 * FETCHED_KEPT):
        _get(builder, f"/other/{n}.img")
    builder.result(lost)  # late, and successful: its own download still counts
    engine = Engine(EngineConfig(check_downloads=True))
    for exchange in builder.exchanges:
        engine.feed(exchange)
    rules = [f.rule for f in engine.findings]
    assert "RESULT-MISSING" in rules and "DOWNLOAD-FETCHED" not in rules
    assert len(engine.fetched) <= 2 * FETCHED_KEPT, len(engine.fetched)
