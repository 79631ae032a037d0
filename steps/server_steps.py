"""Steps of features/server: the harness is the device (our reference
device, plus one-off probes), the peer under test is a platform server.
Judgement: the engine over everything the harness sent and received; a step
only adds the checks the engine cannot make (a task that never came), and
names a rule for each."""

from __future__ import annotations

import json
import time
from typing import Any

from pytest_bdd import given, parsers, then, when

from facecert.certify.expectations import ANY_RULE
from facecert.certify.liveness import ensure_alive, wait_for
from facecert.certify.triggers import TriggerError
from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.steps.common import attach_json, checks, error, fail, fail_on, warn_on


# ---- helpers ---------------------------------------------------------------------------------
def _poll_answers(cert: Any, after: float, task: str | None = None) -> list[Any]:
    """The answers to the harness device's polls answered since ``after`` (a trigger): a poll already on its
    way when the task was queued carries it if the server decided it after (a busy server, 2026-12-03: the
    faceCmd came on a poll sent 10 ms before its trigger, and a count by send time said TASK-NOT-SENT)."""
    answers = []
    for exchange in cert.answered_polls(after):
        if exchange.response_body:
            try:
                answer = json.loads(exchange.response_body)
            except ValueError:
                continue
            if isinstance(answer, dict) and (task is None or answer.get("request_type") == task):
                answers.append(answer)
    return answers


def _server_findings(cert: Any, scn: dict[str, Any], severity: str = "error") -> list[Any]:
    start = scn.get("exchange_start", 0)
    return [
        f for f in cert.judge().findings if f.party == "server" and f.severity.value == severity and f.exchange >= start
    ]


def _wait_device(
    cert: Any, scn: dict[str, Any], predicate: Any, timeout: float, what: str, rules: list[str], harness: bool = False
) -> None:
    """Wait on the harness device's traffic; the server going away ends the wait at once."""

    def explain() -> tuple[tuple[str, ...], str]:
        return cert.explain_polls(scn.get("triggered_at", scn.get("started", 0.0)), scn.get("task"))

    try:
        # the engine's findings on the polls since the trigger (HTTP 500, a task re-sent) are why
        # the task never came: they stand in for TASK-NOT-SENT
        wait_for(
            cert,
            what,
            lambda step: cert.device.wait_until(predicate, step),
            timeout,
            rules,
            explain,
            cause_replaces=True,
        )
    except AssertionError as exc:
        if harness:  # our own device failed to act: never blamed on the server
            error("HARNESS-ERROR", str(exc))
        raise


def _answer_text(exchange: Any) -> dict[str, Any]:
    return {
        "status": exchange.status,
        "error": exchange.error,
        "body": (exchange.response_body or b"")[:2000].decode("utf-8", "replace"),
    }


# ---- given -------------------------------------------------------------------------------
@given("the reference device polls the server under test")
def device_polls(cert: Any, scn: dict[str, Any]) -> None:
    ensure_alive(cert)
    _wait_device(
        cert,
        scn,
        lambda: any(e.path.endswith("/taskRequest") for e in cert.device.exchanges),
        cert.task_deadline,
        "a first taskRequest of the harness device",
        ["HARNESS-ERROR"],
        harness=True,
    )
    scn["started"] = time.time()
    scn["exchange_start"] = len(cert.exchanges())


# ---- when: triggers ------------------------------------------------------------------------
@when(parsers.parse('the platform is made to queue "{task}" for the device'))
def platform_queues(cert: Any, scn: dict[str, Any], task: str) -> None:
    _trigger(cert, scn, task, cert.device_id)


@when("the platform is made to queue any task for the device")
def platform_queues_any(cert: Any, scn: dict[str, Any]) -> None:
    _trigger(cert, scn, cert.triggers.any_task(), cert.device_id)


@when("the platform is made to queue any task for a second device")
def platform_queues_second(cert: Any, scn: dict[str, Any]) -> None:
    scn["second"] = cert.second_device_id
    _trigger(cert, scn, cert.triggers.any_task(), scn["second"])


def _trigger(cert: Any, scn: dict[str, Any], task: str, device_id: str) -> None:
    scn.setdefault("triggered_at", time.time())
    scn["task"] = task
    try:
        trigger = cert.triggers.get(task)
        if trigger.http is not None:
            response = cert.triggers.fire_http(trigger, cert.url, device_id, cert.client)
            attach_json(f"trigger {task}", {"status": response.status_code, "body": response.text[:2000]})
            return
    except TriggerError as exc:
        error("HARNESS-TRIGGER", str(exc))
    cert.operator.say(f"[bold cyan]OPERATOR:[/] {trigger.manual} (device {device_id})")
    scn["manual"] = trigger.manual


# ---- when: the harness device's own acts -------------------------------------------------------
@when("a device the server never saw polls once")
def unknown_device_polls(cert: Any, scn: dict[str, Any]) -> None:
    scn["probe"] = cert.probe("taskRequest", cert.poll_body("FACECERTUNKNOWN01"))


@when("the second device polls and receives it")
def second_device_polls(cert: Any, scn: dict[str, Any]) -> None:
    checks(scn, "TASK-NOT-SENT")
    exchange = cert.probe("taskRequest", cert.poll_body(scn["second"]))
    try:
        answer = json.loads(exchange.response_body or b"{}")
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or answer.get("request_type") != scn["task"]:
        rules = [f.rule for f in cert.findings_for(exchange) if f.severity.value == "error"]
        fail(
            rules or ["TASK-NOT-SENT"],
            f"the platform was made to queue {scn['task']} for {scn['second']}, whose "
            f"next poll was answered {_answer_text(exchange)}",
        )
    scn["foreign_rid"] = answer["request_id"]


@when("the reference device reports a result for that task")
def wrong_device_reports(cert: Any, scn: dict[str, Any]) -> None:
    result = get_contract().all_tasks[scn["task"]].result
    if result is None:
        error("HARNESS-ERROR", f"{scn['task']} has no result schema: the harness cannot report its result")
    body = cert.persona_body(
        "taskResult", {**example_for(result), "device_id": cert.device_id, "request_id": scn["foreign_rid"]}
    )  # valid, but foreign
    scn["probe"] = cert.probe("taskResult", json.dumps(body).encode())


@when("the harness device uploads a capture")
def device_uploads_capture(cert: Any, scn: dict[str, Any]) -> None:
    scn.setdefault("captures", []).append(cert.device.capture_now())


@when("the harness device uploads the same capture again")
def device_replays_capture(cert: Any, scn: dict[str, Any]) -> None:
    scn["replay"] = cert.probe("faceRecognition", json.dumps(scn["captures"][-1]).encode())


@when(parsers.parse("the harness device raises alarm {alarm_type:d}"))
def harness_alarm(cert: Any, scn: dict[str, Any], alarm_type: int) -> None:
    cert.device.alarm(alarm_type)


@when("the harness device reports its position for a while")
def harness_gps(cert: Any, scn: dict[str, Any]) -> None:
    cert.device.gps_start()
    try:
        _wait_device(
            cert,
            scn,
            lambda: (
                sum(e.path.endswith("/gpsReport") and e.started >= scn["started"] for e in cert.device.exchanges) >= 3
            ),
            cert.task_deadline,
            "3 GPS reports of the harness device",
            ["HARNESS-ERROR"],
            harness=True,
        )
    finally:
        cert.device.gps_stop()


@when(parsers.parse("a capture with frpic_name {name} is uploaded"))
def hostile_capture(cert: Any, scn: dict[str, Any], name: str) -> None:
    body = cert.persona_body(
        "faceRecognition",
        {**example_for("device/faceRecognition"), "device_id": cert.device_id, "frpic_name": json.loads(name)},
    )
    scn["probe"] = cert.probe("faceRecognition", json.dumps(body).encode())


@when(parsers.parse("a {body} body is posted to {endpoint}"))
def malformed_body(cert: Any, scn: dict[str, Any], body: str, endpoint: str) -> None:
    payloads = {
        "not-json": b'{"device_id": "x",',
        "empty": b"",
        "wrong-types": json.dumps({"device_id": 5, "snap_time": "now", "image": 1}).encode(),
    }
    scn["probe"] = cert.probe(endpoint, payloads[body])


# ---- then ---------------------------------------------------------------------------------
@then("the server answered every poll with a valid task or idleTime")
def polls_answered(cert: Any, scn: dict[str, Any]) -> None:
    """Always as a spec-only device: with ``--persona field`` a spec-only probe poll is sent,
    so a server that needs vendor fields fails here, with one clear root cause."""
    if cert.persona == "spec":
        polls = [e for e in cert.device.exchanges if e.path.endswith("/taskRequest")]
        if not polls:
            error("HARNESS-ERROR", "the harness device has not polled")
        errors = [f for f in _server_findings(cert, {"exchange_start": 0}) if f.endpoint == "taskRequest"]
    else:
        probe = cert.probe("taskRequest", cert.poll_body(cert.device_id, persona="spec"))
        attach_json("answer to a spec-only poll", _answer_text(probe))
        errors = [f for f in cert.findings_for(probe) if f.severity.value == "error"]
    fail_on(errors, "the server's taskRequest answers")


@then("the server answered it with a valid task, idleTime or a 4xx")
def unknown_answered(cert: Any, scn: dict[str, Any]) -> None:
    _did_not_fail(cert, scn)


@then(parsers.parse('the device receives a valid "{task}"'))
def device_receives(cert: Any, scn: dict[str, Any], task: str) -> None:
    _receive(cert, scn, task)


@then("the device receives that task")
def device_receives_that(cert: Any, scn: dict[str, Any]) -> None:
    _receive(cert, scn, scn["task"])


def _wait_sent(cert: Any, scn: dict[str, Any], predicate: Any, timeout: float, what: str) -> None:
    """Wait for tasks the platform was made to queue (TASK-NOT-SENT when they never come); a
    manual trigger with nobody at the console cannot be carried out (HARNESS-OPERATOR)."""
    if scn.get("manual"):
        what += f" (queued by the operator: {scn['manual']})"

    def broken() -> bool:  # a poll since the trigger already broke a rule: no need to wait on
        return bool(cert.explain_polls(scn["triggered_at"], scn.get("task"))[0])

    try:
        _wait_device(cert, scn, lambda: predicate() or broken(), timeout, what, ["TASK-NOT-SENT"])
    except AssertionError as exc:
        if scn.get("manual") and not cert.operator.interactive:
            error("HARNESS-OPERATOR", f"needs an operator: {scn['manual']} (stdin is not a terminal; {exc})")
        raise
    if not predicate():
        rules, why = cert.explain_polls(scn["triggered_at"], scn.get("task"))
        fail(rules, f"{what} did not come: {why}")


def _receive(cert: Any, scn: dict[str, Any], task: str) -> None:
    checks(scn, "TASK-NOT-SENT")
    timeout = cert.task_deadline
    if scn.get("manual"):
        timeout += cert.operator_wait()
    _wait_sent(cert, scn, lambda: _poll_answers(cert, scn["triggered_at"], task), timeout, f"the {task} task")
    answer = _poll_answers(cert, scn["triggered_at"], task)[0]
    scn["rid"] = answer.get("request_id")
    attach_json(task, answer)
    fail_on([f for f in _server_findings(cert, scn) if f.endpoint == "taskRequest"], f"the {task} task")


@then("the server accepted the device's result")
def result_accepted(cert: Any, scn: dict[str, Any]) -> None:
    def posted() -> Any:
        for exchange in cert.device.exchanges:
            if exchange.path.endswith("/taskResult") and exchange.started >= scn["triggered_at"]:
                try:
                    if json.loads(exchange.request_body).get("request_id") == scn["rid"]:
                        return exchange
                except (ValueError, AttributeError):
                    continue
        return None

    _wait_device(
        cert,
        scn,
        lambda: posted() is not None,
        cert.task_deadline,
        "the harness device's taskResult",
        ["HARNESS-ERROR"],
        harness=True,
    )
    exchange = posted()
    attach_json("the result's answer", _answer_text(exchange))
    fail_on([f for f in cert.findings_for(exchange) if f.severity.value == "error"], "the result's answer")


@then(parsers.parse("the device receives {count:d} tasks with distinct request_ids"))
def distinct_ids(cert: Any, scn: dict[str, Any], count: int) -> None:
    checks(scn, "REQUEST-ID-DUPLICATE", "TASK-NOT-SENT")
    idle = get_contract().idle_task

    def tasks() -> list[Any]:
        return [a for a in _poll_answers(cert, scn["triggered_at"]) if a.get("request_type") != idle]

    timeout = cert.task_deadline * count + (cert.operator_wait() if scn.get("manual") else 0.0)
    _wait_sent(cert, scn, lambda: len(tasks()) >= count, timeout, f"{count} tasks")
    attach_json("request ids", [t.get("request_id") for t in tasks()])
    fail_on([f for f in _server_findings(cert, scn) if f.rule == "REQUEST-ID-DUPLICATE"], "the server")


@then("the server acknowledged the capture")
def capture_acked(cert: Any, scn: dict[str, Any]) -> None:
    fail_on([f for f in _server_findings(cert, scn) if f.endpoint == "faceRecognition"], "the capture acknowledgement")


@then("the server acknowledged the capture twice")
def capture_acked_twice(cert: Any, scn: dict[str, Any]) -> None:
    attach_json("the replayed capture's answer", _answer_text(scn["replay"]))
    fail_on(
        [f for f in cert.findings_for(scn["replay"]) if f.severity.value == "error"], "the replayed capture's answer"
    )
    capture_acked(cert, scn)


@then("the server accepted the alarm and the GPS reports")
def alarm_gps_accepted(cert: Any, scn: dict[str, Any]) -> None:
    sent = [
        e
        for e in cert.device.exchanges
        if e.started >= scn["started"] and (e.path.endswith("/deviceAlarm") or e.path.endswith("/gpsReport"))
    ]
    if not sent:
        error("HARNESS-ERROR", "the harness device sent no alarm or GPS report")
    fail_on(
        [f for f in _server_findings(cert, scn) if f.endpoint in ("deviceAlarm", "gpsReport")],
        "the alarm and GPS answers",
    )


@then("the server refused the other device's result")
def foreign_refused(cert: Any, scn: dict[str, Any]) -> None:
    checks(scn, "RESULT-FOREIGN-ACCEPTED")
    attach_json("the foreign result's answer", _answer_text(scn["probe"]))
    fail_on([f for f in cert.findings_for(scn["probe"]) if f.rule == "RESULT-FOREIGN-ACCEPTED"], "the server")


@then("the server did not fail on it")
def did_not_fail(cert: Any, scn: dict[str, Any]) -> None:
    _did_not_fail(cert, scn)


def _did_not_fail(cert: Any, scn: dict[str, Any]) -> None:
    """No 5xx, no hang (ANSWER-HTTP-STATUS, ANSWER-MISSING); warnings (FRPIC-PATH-ACCEPTED:
    a path-like name acknowledged as accepted) are shown, with what to check by hand."""
    probe = scn["probe"]
    attach_json("answer", _answer_text(probe))
    found = cert.findings_for(probe)
    warn_on(scn, [f for f in found if f.severity.value == "warning"])
    fail_on([f for f in found if f.severity.value == "error" and f.direction == "answer"], "the server")


@then("the server broke no rule")
def server_broke_no_rule(cert: Any, scn: dict[str, Any]) -> None:
    checks(scn, ANY_RULE)
    engine = cert.judge()
    mine = [f for f in engine.findings if f.exchange >= scn.get("exchange_start", 0)]
    attach_json("server findings of this scenario", [f.to_dict() for f in mine])
    warn_on(scn, [f for f in mine if f.party == "server" and f.severity.value == "warning"])
    fail_on([f for f in mine if f.party == "server" and f.severity.value == "error"], "the server")
