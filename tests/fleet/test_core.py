"""The sans-I/O device core on its own: fed events on a virtual clock, no socket, no sleep, no driver.
And the fleet's verdicts from it: the device judged on its own clock, the driver's lag kept apart."""

from __future__ import annotations

import itertools
import json

import pytest

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.core.rules.registry import RULES
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.core import DeviceCore, Finished, Send, Wait
from facecert.mock_device.faults import FAULTS_BY_NAME
from facecert.mock_device.flow import Oversized, Reply
from facecert.mock_device.media import capture_jpeg
from facecert.mock_device.verdict import FleetJudge, fleet_report, late_after, record_problem
from tests.support import SCALE

T0 = 1_900_000_000.0
CONTRACT = get_contract()
IDLE = json.dumps(example_for(CONTRACT.all_tasks[CONTRACT.idle_task].schema)).encode()
IDLE_S = CONTRACT.timing["idle_interval_s"] * SCALE


def core(device_id: str = "CORE1", **options: object) -> DeviceCore:
    return DeviceCore(DeviceConfig(server="http://127.0.0.1:9", device_id=device_id, time_scale=SCALE, **options))


def only(actions: list, kind: type):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def answer(send: Send, status: int | None = 200, body: bytes | None = IDLE, at: float | None = None) -> Reply:
    started = send.due if at is None else at
    return Reply(status, body, {"content-type": "application/json"}, started, started + 0.005)


class Clock:
    """Plays the core with a virtual clock: answers every poll idle, fires each timer ``lag`` late."""

    def __init__(self, dev: DeviceCore, lag: float = 0.0, status: int = 200) -> None:
        self.dev, self.lag, self.status = dev, lag, status
        self.sent: list[Send] = []
        self.pending = dev.start(T0)

    def run(self, polls: int) -> None:
        while sum(1 for s in self.sent if s.endpoint == "taskRequest") < polls:
            action = self.pending.pop(0)
            if isinstance(action, Send):
                self.sent.append(action)
                at = action.due + (self.lag if len(self.sent) > 1 else 0.0)
                self.pending += self.dev.receive(action.ticket, answer(action, self.status, at=at))
            elif isinstance(action, Wait):
                self.pending += self.dev.timer_fired(action.ticket, action.until + self.lag)


def test_the_core_asks_for_a_poll_and_then_a_wait() -> None:
    dev = core()
    first = only(dev.start(T0), Send)
    assert first.endpoint == "taskRequest" and first.method == "POST" and first.due == T0
    assert first.url == "http://127.0.0.1:9" + CONTRACT.all_endpoints["taskRequest"].path
    assert json.loads(first.body)["device_id"] == "CORE1"
    wait = only(dev.receive(first.ticket, answer(first)), Wait)
    assert wait.until == T0 + 0.005 + IDLE_S  # the idle interval after the answer ended
    again = only(dev.timer_fired(wait.ticket, wait.until + 0.3), Send)
    assert again.due == wait.until, "the device's own clock reads when the timer was due"
    assert dev.stats.polls == 1 and dev.stats.idle == 1


def test_a_failed_poll_backs_off_doubling_up_to_the_idle_interval() -> None:
    dev = core()
    send = only(dev.start(T0), Send)
    waits = []
    for _ in range(5):
        wait = only(dev.receive(send.ticket, answer(send, None, None)), Wait)
        waits.append(round(wait.until - (send.due + 0.005), 4))
        send = only(dev.timer_fired(wait.ticket, wait.until), Send)
    task = CONTRACT.timing["task_interval_s"] * SCALE
    assert waits == [task, 2 * task, 4 * task, IDLE_S, IDLE_S]
    assert dev.stats.failures == 5


def test_a_capture_command_finishes_with_its_body_once_acknowledged() -> None:
    dev = core()
    dev.start(T0)
    ticket, actions = dev.capture_command("face", T0 + 0.1)
    upload = only(actions, Send)
    body = json.loads(upload.body)
    ack = {"code": 0, "snap_time": body["snap_time"], "frpic_name": body["frpic_name"], "log": "ok"}
    done = only(dev.receive(upload.ticket, answer(upload, 200, json.dumps(ack).encode())), Finished)
    assert done.ticket == ticket and done.value["frpic_name"] == body["frpic_name"] and done.error is None
    assert dev.stats.captures_sent == 1 and len(dev.spool) == 0


def test_an_unacknowledged_capture_is_spooled_and_the_sender_wakes() -> None:
    dev = core()
    dev.start(T0)
    ticket, actions = dev.capture_command("face", T0 + 0.1)
    upload = only(actions, Send)
    actions = dev.receive(upload.ticket, answer(upload, 503, b""))
    assert len(dev.spool) == 1 and only(actions, Finished).ticket == ticket
    replay = only(actions, Send)  # the resume-transfer sender replays at once
    assert replay.endpoint == "faceRecognition" and replay.body == upload.body


def test_stop_ends_every_activity() -> None:
    dev = core()
    send = only(dev.start(T0), Send)
    dev.stop()
    assert dev.receive(send.ticket, answer(send)) == [] and dev.poll_due() is None


def judged(lag: float, status: int = 200, **options: object) -> dict:
    dev = core(f"V{lag}{status}{sorted(options)}", **options)
    judge = FleetJudge(SCALE)
    judge.watch(dev, next(iter(options.get("faults", [])), None))
    clock = Clock(dev, lag, status)
    clock.run(polls=5)
    judge.finish(clock.sent[-1].due + 0.01)
    return judge.record(dev.cfg.device_id)


def test_a_clean_device_on_time_is_clean() -> None:
    record = judged(lag=0.0)
    assert record["verdict"] == "clean" and record["as_expected"] and record["polls"] == 5


def test_a_late_driver_is_the_generators_fault_not_the_devices() -> None:
    late = late_after(SCALE) * 2  # every timer fires this late: on the server's clock, every poll is late
    record = judged(lag=late)
    assert record["errors"] == {}, "judged on its own clock, the device polled on time"
    assert record["verdict"] == "generator-overloaded" and not record["as_expected"]
    assert record["late"] >= 3 and record["lag_max_ms"] >= late * 1000 - 1


def test_a_knob_fails_the_device_even_with_a_late_driver() -> None:
    record = judged(lag=late_after(SCALE) * 2, faults={"cadence-idle"})
    rule = FAULTS_BY_NAME["cadence-idle"].rule
    assert record["verdict"] == "failed" and record["errors"] == {rule: 4} and record["as_expected"]


def test_a_server_error_is_served_badly() -> None:
    record = judged(lag=0.0, status=503)
    assert record["errors"] == {} and list(record["server_errors"].values()) == [5]  # one rule, every poll
    assert [RULES[rule].party for rule in record["server_errors"]] == ["server"]
    assert record["verdict"] == "served-badly" and not record["as_expected"]


def test_fleet_report_groups_devices_by_verdict_and_rule() -> None:
    devices = {"A": judged(0.0), "B": judged(0.0, faults={"missing-field"}), "C": judged(0.0, status=503)}
    report = fleet_report(devices, {"time_scale": SCALE})
    assert report["by_verdict"]["clean"] == ["A"] and report["by_verdict"]["failed"] == ["B"]
    assert report["by_verdict"]["served-badly"] == ["C"]
    rule = FAULTS_BY_NAME["missing-field"].rule
    assert report["by_rule"][rule]["devices"] == ["B"] and report["by_rule"][rule]["parties"] == ["device"]
    assert report["summary"]["unexpected"] == ["C"]
    assert report["summary"]["faults"]["missing-field"] == {"rule": rule, "devices": 1, "as_expected": 1}


def test_the_master_takes_only_records_fleet_json_can_hold() -> None:
    """A worker of another version, or anyone who reaches the master, cannot crash fleet.json."""
    good = {"A": judged(0.0), "B": judged(0.0, faults={"missing-field"})}
    assert [record_problem(r) for r in good.values()] == [None, None]
    bad = [
        ("not a record", "not an object"),
        ({**good["A"], "verdict": "excellent"}, "verdict"),
        ({**good["A"], "polls": -1}, "polls is not a count"),
        ({**good["A"], "polls": 2**70 * 1.0}, "polls is not a count"),
        ({**good["A"], "lag_max_ms": float("nan")}, "lag_max_ms"),
        ({**good["A"], "errors": {"NO-SUCH-RULE": 1}}, "registry"),
        ({**good["A"], "fault": "no-such-knob"}, "not a knob"),
        ({**good["B"], "fault_rule": "MSG-TYPE"}, "the knob's rule"),
        ({**good["A"], "as_expected": "yes"}, "boolean"),
        ({**good["A"], "refused": {"MSG-TOO-LARGE": "many"}}, "refused"),
        ({k: v for k, v in good["A"].items() if k != "refused"}, "refused"),
    ]
    for record, says in bad:
        problem = record_problem(record)
        assert problem is not None and says in problem, (record, problem)


def test_a_long_run_does_not_grow_the_judge_or_the_core() -> None:
    """Thousands of tasks, each with a download: the engine's downloads, its issued tasks and each device's
    finished ones stay within the judge's windows; a core that does not record keeps no results or captures."""
    dev = core("LONG1", record=False, captures_per_minute=600.0)
    judge = FleetJudge(SCALE)
    judge.issued_kept, judge.finished_kept, judge.prune_every = 50, 8, 100
    judge.watch(dev)
    face = capture_jpeg()
    rid = itertools.count(500_000)
    pending, sizes = dev.start(T0), []
    while dev.stats.results < 1500:
        action = pending.pop(0)
        if isinstance(action, Send):
            at = action.due
            if action.endpoint == "taskRequest":
                user = {
                    "user_id": f"u{next(rid)}",
                    "user_info": {"name": "x"},
                    "image_type": "URL",
                    "image_content": "http://127.0.0.1:9/face.jpg",
                }
                task = {"request_type": "addUser", "request_id": next(rid), "user_list": [user]}
                body, headers = json.dumps(task).encode(), {"content-type": "application/json"}
            elif action.endpoint == "download":
                body, headers = face, {"content-type": "image/jpeg"}
            elif action.endpoint == "faceRecognition":
                sent = json.loads(action.body)
                body = json.dumps({"code": 0, "snap_time": sent["snap_time"], "frpic_name": sent["frpic_name"]})
                body, headers = body.encode(), {"content-type": "application/json"}
            else:
                body, headers = b"", {}
            pending += dev.receive(action.ticket, Reply(200, body, headers, at, at + 0.001))
        elif isinstance(action, Wait):
            pending += dev.timer_fired(action.ticket, action.until)
        if dev.stats.results % 300 == 0:
            engine = judge.engine
            state = engine.devices["LONG1"]
            sizes.append((len(engine.fetched), len(engine.issued), len(state.finished), len(state.last_result_end)))
    assert dev.stats.downloads >= 1500 and dev.stats.captures_made > 100
    assert dev.results == [] and dev.captures_made == [] and dev.exchanges == []
    fetched, issued, finished, ends = map(max, zip(*sizes, strict=True))
    assert fetched <= 100 + 1 and issued <= 50 + 100 and finished <= 8 + 100 and ends <= 8 + 100, sizes
    record = judge.record("LONG1")
    assert record["errors"] == {} and record["server_errors"] == {}, record
    assert record["results"] == dev.stats.results and record["verdict"] == "clean"


def test_an_oversized_answer_is_refused_by_the_core_and_the_server_is_served_badly() -> None:
    """The driver stopped reading past the contract's limit (flow.Oversized): the core refuses it under
    MSG-TOO-LARGE, backs off, polls again; the fleet's verdict blames the server."""
    dev = core("BIG1")
    judge = FleetJudge(SCALE)
    judge.watch(dev)
    send = only(dev.start(T0), Send)
    assert send.limit == CONTRACT.limits.max_body_bytes, "the core tells the driver how much to read"
    wait = only(dev.receive(send.ticket, answer(send, body=Oversized(b"{" * 10, 50 * 2**20))), Wait)
    assert dev.refused == {"MSG-TOO-LARGE": 1} and dev.stats.failures == 1
    assert "MSG-TOO-LARGE: taskRequest answer body is 52,428,800 bytes" in dev.log_text()
    again = only(dev.timer_fired(wait.ticket, wait.until), Send)
    only(dev.receive(again.ticket, answer(again)), Wait)
    assert dev.stats.idle == 1, "the next correct answer is used"
    judge.finish(again.due + 0.01)
    record = judge.record("BIG1")
    assert record["refused"] == {"MSG-TOO-LARGE": 1} and record["server_errors"] == {"MSG-TOO-LARGE": 1}
    assert record["verdict"] == "served-badly" and record_problem(record) is None


def test_the_cadence_knobs_follow_the_tolerance() -> None:
    from facecert.core.defaults import CADENCE_TOLERANCE
    from facecert.mock_device.faults import CADENCE_EARLY_FACTOR, CADENCE_LATE_FACTOR, cadence_factors

    assert CADENCE_EARLY_FACTOR < 1 - CADENCE_TOLERANCE and CADENCE_LATE_FACTOR > 1 + CADENCE_TOLERANCE
    assert cadence_factors(0.5) == (1 / 3, 3.0)
    with pytest.raises(ValueError, match="no early poll"):
        cadence_factors(0.8)  # a window that wide leaves the early knob no room
    assert (CADENCE_EARLY_FACTOR, CADENCE_LATE_FACTOR) == (0.4, 2.5)  # at ±25 %: what the knobs always did
    dev = core("EARLY1", faults={"cadence-idle"})
    send = only(dev.start(T0), Send)
    wait = only(dev.receive(send.ticket, answer(send)), Wait)
    assert wait.until == pytest.approx(send.due + 0.005 + IDLE_S * CADENCE_EARLY_FACTOR)


def test_workers_judge_up_to_the_masters_cutoff() -> None:
    from facecert.mock_device.verdict import finish_cutoff

    now = T0 + 100.0
    assert finish_cutoff({"cutoff": T0 + 90.0}, now) == T0 + 90.0, "the master's moment, not the message's arrival"
    assert finish_cutoff({"cutoff": T0 + 120.0}, now) == now, "never later than this worker's clock"
    for bad in ({}, {"cutoff": "soon"}, {"cutoff": float("nan")}, {"cutoff": True}, {"cutoff": -1}, None, []):
        assert finish_cutoff(bad, now) == now, bad


def test_a_server_that_acknowledges_no_capture_fills_the_spool_to_its_bound_not_beyond() -> None:
    dev = core("SPOOL1", record=False, captures_per_minute=6000.0, spool_max=5)
    pending, t_end = dev.start(T0), T0 + 60 * SCALE * 5
    while pending:
        action = pending.pop(0)
        if isinstance(action, Send):
            status = 500 if action.endpoint == "faceRecognition" else 200
            pending += dev.receive(action.ticket, answer(action, status))
        elif isinstance(action, Wait) and action.until < t_end:
            pending += dev.timer_fired(action.ticket, action.until)
    assert dev.stats.captures_made > 20 and len(dev.spool) == 5, (dev.stats.captures_made, len(dev.spool))
    assert dev.stats.captures_dropped == dev.stats.captures_made - 5 - dev.stats.captures_sent
    assert "resume-transfer spool full (5)" in dev.log_text()


def test_a_fleet_whose_only_misses_are_the_generators_gives_no_verdict() -> None:
    """Exit 2, not 1, when the only devices not as expected were driven late: the generator's error is
    no failure of anyone's (facecert fleet's exit code; docs/fleet.md)."""
    from facecert.mock_device.fleet_cli import exit_code

    on_time, late = judged(lag=0.0), judged(lag=late_after(SCALE) * 2)
    served_badly = judged(lag=0.0, status=503)

    def code(*records: dict, interrupted: bool = False) -> int:  # type: ignore[type-arg]
        return exit_code(fleet_report({f"D{i}": r for i, r in enumerate(records)}, {}), interrupted)

    assert code(on_time) == 0
    assert code(on_time, late) == 2
    assert code(late, served_badly) == 1  # a real miss beside the generator's is a failure
    assert code(on_time, interrupted=True) == 1
