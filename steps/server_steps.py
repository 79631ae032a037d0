"""Steps of features/server: the harness is the device (our reference
device, plus one-off probes), the peer under test is a platform server.
Judgement: the engine over everything the harness sent and received."""

from __future__ import annotations

import json
import time
from typing import Any

from pytest_bdd import given, parsers, then, when

from facecert.contract import get_contract
from facecert.engine import Engine
from facecert.examples import example_for
from steps.common import attach_json, fail_on, waited


def _poll_answers(cert: Any, after: float, task: str | None = None) -> list[Any]:
    answers = []
    for exchange in list(cert.device.exchanges):
        if exchange.path.endswith("/taskRequest") and exchange.started >= after and exchange.response_body:
            try:
                answer = json.loads(exchange.response_body)
            except ValueError:
                continue
            if isinstance(answer, dict) and (task is None or answer.get("request_type") == task):
                answers.append(answer)
    return answers


def _server_errors(cert: Any, scn: dict[str, Any]) -> tuple[Engine, list[Any]]:
    engine = cert.judge()
    start = scn.get("exchange_start", 0)
    errors = [f for f in engine.findings if f.party == "server" and f.severity.value == "error" and f.exchange >= start]
    return engine, errors


def _wait_device(cert: Any, predicate: Any, timeout: float, what: str) -> None:
    if not cert.device.wait_until(predicate, timeout):
        raise AssertionError(f"{what} did not happen within {timeout:.1f} s")


@given("the reference device polls the server under test")
def device_polls(cert: Any, scn: dict[str, Any]) -> None:
    _wait_device(cert, lambda: any(e.path.endswith("/taskRequest") for e in cert.device.exchanges),
                 cert.task_deadline, "a first taskRequest of the harness device")
    scn["started"] = time.time()
    scn["exchange_start"] = len(cert.exchanges())


@when("a device the server never saw polls once")
def unknown_device_polls(cert: Any, scn: dict[str, Any]) -> None:
    body = example_for("device/taskRequest")
    body.update(device_id="FACECERTUNKNOWN01", time_stamp=int(time.time()))
    scn["probe"] = cert.probe("taskRequest", json.dumps(body).encode())


@when(parsers.parse('the platform is made to queue "{task}" for the device'))
def platform_queues(cert: Any, scn: dict[str, Any], task: str) -> None:
    _trigger(cert, scn, task, cert.device_id)


def _trigger(cert: Any, scn: dict[str, Any], task: str, device_id: str) -> None:
    trigger = cert.triggers.get(task)
    scn.setdefault("triggered_at", time.time())
    scn["task"] = task
    if trigger.http is not None:
        response = cert.triggers.fire_http(trigger, cert.url, device_id, cert.client)
        attach_json(f"trigger {task}", {"status": response.status_code, "body": response.text[:2000]})
    else:
        cert.operator.say(f"[bold cyan]OPERATOR:[/] {trigger.manual} (device {device_id})")
        scn["manual"] = True


@when(parsers.parse('the platform is made to queue "{task}" for a second device'))
def platform_queues_second(cert: Any, scn: dict[str, Any], task: str) -> None:
    scn["second"] = "FACECERT0000000002"
    _trigger(cert, scn, task, scn["second"])


@when("the second device polls and receives it")
def second_device_polls(cert: Any, scn: dict[str, Any]) -> None:
    body = example_for("device/taskRequest")
    body.update(device_id=scn["second"], time_stamp=int(time.time()))
    exchange = cert.probe("taskRequest", json.dumps(body).encode())
    answer = json.loads(exchange.response_body or b"{}")
    assert answer.get("request_type") == scn["task"], f"the second device got {answer} instead of {scn['task']}"
    scn["foreign_rid"] = answer["request_id"]


@when("the reference device reports a result for that task")
def wrong_device_reports(cert: Any, scn: dict[str, Any]) -> None:
    result = get_contract().all_tasks[scn["task"]].result
    body = {**example_for(result), "device_id": cert.device_id, "request_id": scn["foreign_rid"]}  # valid, but foreign
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
        _wait_device(cert, lambda: sum(e.path.endswith("/gpsReport") and e.started >= scn["started"]
                                       for e in cert.device.exchanges) >= 3,
                     cert.task_deadline, "3 GPS reports")
    finally:
        cert.device.gps_stop()


@when(parsers.parse("a capture with frpic_name {name} is uploaded"))
def hostile_capture(cert: Any, scn: dict[str, Any], name: str) -> None:
    body = example_for("device/faceRecognition")
    body.update(device_id=cert.device_id, frpic_name=json.loads(name))
    scn["probe"] = cert.probe("faceRecognition", json.dumps(body).encode())


@when(parsers.parse("a {body} body is posted to {endpoint}"))
def malformed_body(cert: Any, scn: dict[str, Any], body: str, endpoint: str) -> None:
    payloads = {"not-json": b'{"device_id": "x",', "empty": b"",
                "wrong-types": json.dumps({"device_id": 5, "snap_time": "now", "image": 1}).encode()}
    scn["probe"] = cert.probe(endpoint, payloads[body])


@then("the server answered every poll with a valid task or idleTime")
def polls_answered(cert: Any, scn: dict[str, Any]) -> None:
    engine, errors = _server_errors(cert, {"exchange_start": 0})  # every poll of the session, the first ones too
    polls = [e for e in cert.device.exchanges if e.path.endswith("/taskRequest")]
    assert polls, "the harness device has not polled"
    fail_on([f for f in errors if f.endpoint == "taskRequest"], "the server's taskRequest answers")


@then("the server answered it with a valid task, idleTime or a 4xx")
def unknown_answered(cert: Any, scn: dict[str, Any]) -> None:
    _did_not_fail(cert, scn)


@then(parsers.parse('the device receives a valid "{task}"'))
def device_receives(cert: Any, scn: dict[str, Any], task: str) -> None:
    timeout = cert.task_deadline + (cert.operator_wait() if scn.get("manual") else 0)
    _wait_device(cert, lambda: _poll_answers(cert, scn["triggered_at"], task), timeout, f"a {task} task")
    answer = _poll_answers(cert, scn["triggered_at"], task)[0]
    scn["rid"] = answer.get("request_id")
    attach_json(task, answer)
    engine, errors = _server_errors(cert, scn)
    fail_on([f for f in errors if f.endpoint == "taskRequest"], f"the {task} task")


@then("the server accepted the device's result")
def result_accepted(cert: Any, scn: dict[str, Any]) -> None:
    def posted() -> Any:
        for exchange in cert.device.exchanges:
            if exchange.path.endswith("/taskResult") and exchange.started >= scn["triggered_at"]:
                try:
                    if json.loads(exchange.request_body).get("request_id") == scn["rid"]:
                        return exchange
                except ValueError:
                    continue
        return None
    _wait_device(cert, lambda: posted() is not None, cert.task_deadline, "the taskResult")
    exchange = posted()
    assert exchange.status is not None and 200 <= exchange.status < 300, \
        f"ANSWER-HTTP-STATUS: the server answered the result with {exchange.status}"


@then(parsers.parse("the device receives {count:d} tasks with distinct request_ids"))
def distinct_ids(cert: Any, scn: dict[str, Any], count: int) -> None:
    def tasks() -> list[Any]:
        return [a for a in _poll_answers(cert, scn["triggered_at"]) if a.get("request_type") != "idleTime"]
    _wait_device(cert, lambda: len(tasks()) >= count, cert.task_deadline * count, f"{count} tasks")
    ids = [t.get("request_id") for t in tasks()]
    attach_json("request ids", ids)
    assert len(set(map(str, ids))) == len(ids), f"REQUEST-ID-DUPLICATE: the server sent request_ids {ids}"


@then("the server acknowledged the capture")
def capture_acked(cert: Any, scn: dict[str, Any]) -> None:
    engine, errors = _server_errors(cert, scn)
    fail_on([f for f in errors if f.endpoint == "faceRecognition"], "the capture acknowledgement")


@then("the server acknowledged the capture twice")
def capture_acked_twice(cert: Any, scn: dict[str, Any]) -> None:
    replay = scn["replay"]
    assert replay.status is not None and 200 <= replay.status < 300, \
        f"ANSWER-HTTP-STATUS: the replayed capture was answered {replay.status}"
    answer = json.loads(replay.response_body or b"{}")
    assert answer.get("code", 0) == 0, f"ACK-CODE: the replayed capture was answered {answer}"
    capture_acked(cert, scn)


@then("the server accepted the alarm and the GPS reports")
def alarm_gps_accepted(cert: Any, scn: dict[str, Any]) -> None:
    sent = [e for e in cert.device.exchanges if e.started >= scn["started"]
            and (e.path.endswith("/deviceAlarm") or e.path.endswith("/gpsReport"))]
    assert sent, "no alarm or GPS report was sent"
    bad = [f"{e.path}: {e.status}" for e in sent if e.status is None or not 200 <= e.status < 300]
    assert not bad, f"ANSWER-HTTP-STATUS: {bad}"


@then("the server refused the other device's result")
def foreign_refused(cert: Any, scn: dict[str, Any]) -> None:
    engine, errors = _server_errors(cert, scn)
    attach_json("the foreign result's answer", {"status": scn["probe"].status,
                                                "body": (scn["probe"].response_body or b"")[:2000].decode("utf-8", "replace")})
    fail_on([f for f in errors if f.rule == "RESULT-FOREIGN-ACCEPTED"], "the server")


@then("the server did not fail on it")
def did_not_fail(cert: Any, scn: dict[str, Any]) -> None:
    _did_not_fail(cert, scn)


def _did_not_fail(cert: Any, scn: dict[str, Any]) -> None:
    probe = scn["probe"]
    attach_json("answer", {"status": probe.status, "error": probe.error,
                           "body": (probe.response_body or b"")[:2000].decode("utf-8", "replace")})
    assert probe.status is not None, f"ANSWER-MISSING: no answer ({probe.error})"
    assert probe.status < 500, f"ANSWER-HTTP-STATUS: the server answered {probe.status}"


@then("the server broke no rule")
def server_broke_no_rule(cert: Any, scn: dict[str, Any]) -> None:
    engine, errors = _server_errors(cert, scn)
    attach_json("server findings of this scenario", [f.to_dict() for f in engine.findings
                                                     if f.exchange >= scn.get("exchange_start", 0)])
    fail_on(errors, "the server")
