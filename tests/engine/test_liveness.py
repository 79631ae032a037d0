"""POLL-STOPPED, TASK-RESENT and FRPIC-PATH-ACCEPTED in detail: when each fires,
and the conversations that look like them but are fine (a capture that just
ends, a late poll, a device busy with a task, a single retry, a refusal)."""

from __future__ import annotations

import json

import pytest

from facecert.core.engine import RESEND_LIMIT, Engine, EngineConfig, judge_message
from facecert.core.examples import example_for
from facecert.core.model import Exchange, Finding
from facecert.samples import ConversationBuilder
from tests.support import SCALE


def scaled_builder() -> ConversationBuilder:
    builder = ConversationBuilder()
    builder.timing = {key: value * SCALE for key, value in builder.timing.items()}
    return builder


def engine(**config) -> Engine:
    return Engine(EngineConfig(time_scale=SCALE, **config))


def rules(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def idle(b: ConversationBuilder) -> None:
    b.poll(example_for("server/tasks/idleTime"))


# ---- POLL-STOPPED -------------------------------------------------------------------------
def test_a_device_polling_correctly_is_never_judged_stopped_live() -> None:
    """Several idle cycles and a task at time scale 0.05, with the live timer ticking every 50 ms."""
    b = scaled_builder()
    for _ in range(3):
        b.idle()
    b.cycle("server/tasks/getDevStatus")
    for _ in range(3):
        b.idle()
    idle(b)
    eng = engine()
    found: list[Finding] = []
    for exchange, following in zip(b.exchanges, [*b.exchanges[1:], None], strict=True):
        found += eng.feed(exchange).findings
        tick = exchange.ended or exchange.started
        until = following.started if following else tick + 0.9 * eng.longest_wait()
        while tick < until:
            found += eng.check_deadlines(tick)
            tick += 0.05
    assert found == [], [f.line() for f in found]
    assert eng.poll_stopped(b.device_id) is None
    assert eng.last_poll(b.device_id) == b.exchanges[-1].ended


def test_a_capture_that_just_ends_stops_nobody() -> None:
    b = scaled_builder()
    b.idle()
    b.idle()
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    assert not rules(eng.finish(), "POLL-STOPPED")
    assert not rules(eng.findings, "POLL-STOPPED")


def test_the_session_end_shows_a_stop_offline_but_only_past_the_longest_wait() -> None:
    b = scaled_builder()
    b.idle()
    idle(b)
    last = b.exchanges[-1].ended
    within = engine()
    for exchange in b.exchanges:
        within.feed(exchange)
    assert not rules(within.finish(until=last + 0.9 * within.longest_wait()), "POLL-STOPPED")
    past = engine()
    for exchange in b.exchanges:
        past.feed(exchange)
    found = rules(past.finish(until=last + 3.0), "POLL-STOPPED")
    assert len(found) == 1 and "the end of the session" in found[0].message


def test_a_device_is_given_the_time_the_tap_could_not_run_before_it_is_judged_stopped() -> None:
    """A tap whose own process was held (facecert.stalls) may not have seen polls that came: the stop is due
    that much later, and only that much (the stall clock read now, against the last poll's answer)."""
    b = scaled_builder()
    b.idle()
    idle(b)
    for exchange in b.exchanges:
        exchange.stall_started = exchange.stall_ended = 3.0
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    due = b.exchanges[-1].ended + eng.longest_wait()
    assert eng.check_deadlines(due + 0.5, stall_at=3.0 + 0.6) == []  # held 0.6 s: not yet due
    assert [f.rule for f in eng.check_deadlines(due + 0.7, stall_at=3.0 + 0.6)] == ["POLL-STOPPED"]


def test_live_stop_is_reported_once_with_the_time_of_the_last_poll_then_again_after_a_new_poll() -> None:
    b = scaled_builder()
    b.idle()
    idle(b)
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    last = b.exchanges[-1].ended
    due = eng.poll_due(b.device_id)
    assert due == pytest.approx(last + eng.longest_wait())
    assert eng.check_deadlines(due - 0.01) == []
    first = eng.check_deadlines(due + 0.01)
    assert [f.rule for f in first] == ["POLL-STOPPED"]
    assert "the device stopped polling: last taskRequest at" in first[0].message and "UTC" in first[0].message
    assert f"expected one within {eng.longest_wait():.1f} s" in first[0].message
    assert first[0].party == "device" and first[0].exchange == b.exchanges[-1].index
    assert eng.check_deadlines(due + 5) == [] and eng.poll_stopped(b.device_id) is first[0]
    b.now = due + 6
    idle(b)
    eng.feed(b.exchanges[-1])
    assert eng.poll_stopped(b.device_id) is None
    assert [f.rule for f in eng.check_deadlines(b.now + eng.longest_wait() + 0.1)] == ["POLL-STOPPED"]


def test_a_late_poll_is_a_cadence_finding_not_a_stop() -> None:
    """A device polling 12 s after a task (CADENCE-TASK) has not stopped: the stop bound is the
    longest wait of the protocol (the idle interval), not the task interval."""
    b = ConversationBuilder()
    idle(b)
    b.wait("idle_interval_s")
    task = b.poll(example_for("server/tasks/getDevStatus"))
    b.result(task)
    eng = Engine(EngineConfig())
    for exchange in b.exchanges:
        eng.feed(exchange)
    assert eng.check_deadlines(b.now + 12.0) == []
    b.now += 12.0
    idle(b)
    found = eng.feed(b.exchanges[-1]).findings
    assert [f.rule for f in found] == ["CADENCE-TASK"]


def test_a_device_busy_with_a_valid_task_may_take_up_to_the_result_deadline() -> None:
    b = scaled_builder()
    idle(b)
    b.wait("idle_interval_s")
    b.poll(example_for("server/tasks/getDevStatus"))
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    sent = b.exchanges[-1].ended
    deadline = eng.timing["result_timeout_s"] * SCALE
    assert eng.check_deadlines(sent + eng.longest_wait() + 0.5) == []
    assert [f.rule for f in eng.check_deadlines(sent + deadline + 0.01)] == ["RESULT-MISSING"]
    assert [f.rule for f in eng.check_deadlines(sent + deadline + eng.longest_wait() + 0.01)] == ["POLL-STOPPED"]


def test_a_faulty_task_gives_no_time_for_work() -> None:
    """An unknown task needs only a refusal: a device that goes quiet after it stopped."""
    b = scaled_builder()
    idle(b)
    b.wait("idle_interval_s")
    b._post("/taskRequest", b.poll_body(), {"request_type": "rebootEverything", "request_id": 77})
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    found = eng.check_deadlines(b.now + eng.longest_wait() + 0.01)
    assert [f.rule for f in found] == ["POLL-STOPPED"]


def test_a_refused_task_then_silence_is_a_stop_measured_from_the_refusal() -> None:
    b = scaled_builder()
    idle(b)
    b.wait("idle_interval_s")
    b._post("/taskRequest", b.poll_body(), {"request_type": "rebootEverything", "request_id": 77})
    b.now += 0.5
    b._post(
        "/taskResult", {"device_id": b.device_id, "request_id": 77, "code": 202, "log": "no such command"}, {"code": 0}
    )
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    refused_at = b.exchanges[-1].ended
    assert eng.check_deadlines(refused_at + eng.longest_wait() - 0.01) == []
    assert [f.rule for f in eng.check_deadlines(refused_at + eng.longest_wait() + 0.01)] == ["POLL-STOPPED"]


@pytest.mark.parametrize("why", ["moved", "left", "paused", "in_flight", "one_poll"])
def test_no_stop_when_no_poll_is_due(why: str) -> None:
    b = scaled_builder()
    if why != "one_poll":
        b.idle()
    if why == "moved":
        task = b.poll({**example_for("server/tasks/setPlatformServer"), "serverAddr": "127.0.0.1:9"})
        b.result(task)
    else:
        idle(b)
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    later = b.now + 10 * eng.longest_wait()
    if why == "left":
        eng.device_left(b.device_id)
    if why == "paused":
        eng.tap_paused(True, b.now)
    found = eng.check_deadlines(later, in_flight={b.device_id} if why == "in_flight" else ())
    assert not rules(found, "POLL-STOPPED")
    if why != "in_flight":
        assert eng.poll_due(b.device_id) is None


def test_after_a_pause_each_device_gets_its_longest_wait_again() -> None:
    b = scaled_builder()
    b.idle()
    idle(b)
    eng = engine()
    for exchange in b.exchanges:
        eng.feed(exchange)
    eng.tap_paused(True, b.now)
    resumed = b.now + 5.0
    eng.tap_paused(False, resumed)
    assert eng.poll_due(b.device_id) == pytest.approx(resumed + eng.longest_wait())
    assert eng.check_deadlines(resumed + eng.longest_wait() - 0.01) == []
    assert [f.rule for f in eng.check_deadlines(resumed + eng.longest_wait() + 0.01)] == ["POLL-STOPPED"]


def test_polls_without_an_answer_still_count_as_polling() -> None:
    """A server that drops every poll: the device is seen polling (ANSWER-MISSING), not stopped."""
    b = scaled_builder()
    eng = engine()
    for _ in range(4):
        exchange = b._post("/taskRequest", b.poll_body(), b"")
        exchange.status, exchange.response_body, exchange.ended, exchange.error = None, None, None, "refused"
        eng.feed(exchange)
        b.now += b.timing["task_interval_s"]
    assert not rules(eng.check_deadlines(b.now), "POLL-STOPPED")


# ---- TASK-RESENT --------------------------------------------------------------------------
def resend_conversation(failures: int, then: str = "server/tasks/deleteUser", succeed_at: int | None = None) -> list:
    b = ConversationBuilder()
    for number in range(failures + 1):
        task = b.poll(example_for(then))
        code = 0 if succeed_at == number else -102
        b.result(task, {"code": code, "log": "x"})
        b.wait("task_interval_s")
    idle(b)
    eng = Engine(EngineConfig())
    for exchange in b.exchanges:
        eng.feed(exchange)
    return eng.findings


@pytest.mark.parametrize("resends", range(RESEND_LIMIT + 1))
def test_retrying_a_failed_task_up_to_twice_is_fine(resends: int) -> None:
    assert not rules(resend_conversation(resends), "TASK-RESENT")


def test_a_task_resent_forever_is_reported_once() -> None:
    found = rules(resend_conversation(6), "TASK-RESENT")
    assert len(found) == 1 and found[0].party == "server"
    assert "deleteUser" in found[0].message and "-102" in found[0].message


def test_a_success_ends_the_count() -> None:
    assert not rules(resend_conversation(5, succeed_at=2), "TASK-RESENT")


def test_different_tasks_after_a_failure_are_not_resends() -> None:
    b = ConversationBuilder()
    for user in range(5):
        task = b.poll({**example_for("server/tasks/deleteUser"), "user_id": f"U{user}"})
        b.result(task, {"code": -102, "log": "x"})
        b.wait("task_interval_s")
    eng = Engine(EngineConfig())
    for exchange in b.exchanges:
        eng.feed(exchange)
    assert not rules(eng.findings, "TASK-RESENT")


# ---- file names: the contract, and FRPIC-PATH-ACCEPTED --------------------------------------
PATHS = [
    "../../x.php",
    "/etc/passwd",
    "..",
    ".",
    "a\\b",
    "..\u2215..",
    "a\u2044b",
    "a\uff0fb",
    "\uff0e\uff0e",
    "a\u0000b",
    "a\nb",
]
NAMES = ["FACE_0_20230401120000123_7.jpg", "abc.log", "...", ".hidden", "日志.log"]


@pytest.mark.parametrize("name", PATHS)
def test_a_path_is_not_a_file_name_in_captures_and_log_requests(name: str) -> None:
    capture = {**example_for("device/faceRecognition"), "frpic_name": name}
    found = judge_message(Engine(), "faceRecognition", json.dumps(capture).encode())
    assert [(f.rule, f.pointer, f.party) for f in found] == [("MSG-FORMAT", "/frpic_name", "device")]
    task = {**example_for("server/tasks/getLogFile"), "log_name": name}
    found = judge_message(Engine(), "task", json.dumps(task).encode())
    assert [(f.rule, f.pointer, f.party) for f in found] == [("MSG-FORMAT", "/log_name", "server")]


@pytest.mark.parametrize("name", NAMES)
def test_file_names_pass(name: str) -> None:
    capture = {**example_for("device/faceRecognition"), "frpic_name": name}
    assert judge_message(Engine(), "faceRecognition", json.dumps(capture).encode()) == []
    task = {**example_for("server/tasks/getLogFile"), "log_name": name}
    assert judge_message(Engine(), "task", json.dumps(task).encode()) == []


def capture_answered(name: str, status: int, answer: bytes) -> list[Finding]:
    b = ConversationBuilder()
    idle(b)
    body = {**example_for("device/faceRecognition"), "device_id": b.device_id, "frpic_name": name}
    exchange: Exchange = b._post("/faceRecognition", body, answer, status)
    eng = Engine(EngineConfig())
    for item in b.exchanges:
        eng.feed(item)
    assert exchange in b.exchanges
    return eng.findings


def ack(name: str, code: int) -> bytes:
    snap = example_for("device/faceRecognition")["snap_time"]
    return json.dumps({"code": code, "snap_time": snap, "frpic_name": name, "log": "x"}).encode()


@pytest.mark.parametrize("name", ["../../x.php", "/etc/passwd", "a\u0000b"])
def test_an_accepted_path_is_a_warning_that_says_what_to_check(name: str) -> None:
    for status, answer in ((200, ack(name, 0)), (200, b""), (204, b"")):
        found = rules(capture_answered(name, status, answer), "FRPIC-PATH-ACCEPTED")
        assert len(found) == 1 and found[0].severity.value == "warning" and found[0].party == "server"
        assert (
            "Check on the server by hand" in found[0].message and "where it writes capture images" in found[0].message
        )


@pytest.mark.parametrize(("status", "answer"), [(200, ack("../../x.php", 1)), (400, b'{"code": 400}'), (404, b"")])
def test_a_refused_path_passes(status: int, answer: bytes) -> None:
    found = capture_answered("../../x.php", status, answer)
    assert not rules(found, "FRPIC-PATH-ACCEPTED")
    assert {f.rule for f in found if f.party == "server" and f.severity.value == "error"} == set()


def test_a_plain_name_accepted_is_no_warning() -> None:
    assert not rules(capture_answered("FACE_0_1.jpg", 200, ack("FACE_0_1.jpg", 0)), "FRPIC-PATH-ACCEPTED")
