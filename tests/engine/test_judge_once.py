"""Engine.judge_request judges a request once, before its answer exists; feed completes that
judgement with the answer and judges nothing of the request again."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from facecert.core.engine import Engine, EngineConfig, judge_message
from facecert.core.examples import example_for
from facecert.core.model import Exchange
from facecert.core.rules.message import parse_message


def _poll(device_id: str | None, method: str = "POST", **extra: Any) -> bytes:
    body = {**example_for("device/taskRequest"), **extra}
    if device_id is None:
        body.pop("device_id", None)
    else:
        body["device_id"] = device_id
    return json.dumps(body).encode()


def _exchange(raw: bytes, started: float, method: str = "POST", peer: str = "10.1.2.3:40000") -> Exchange:
    idle = json.dumps({"request_type": "idleTime", "time_stamp": int(started)}).encode()
    return Exchange(method, "/taskRequest", raw, 200, idle, started=started, ended=started + 0.01, peer=peer)


def _conversation() -> list[Exchange]:
    return [
        _exchange(_poll("D1"), 1000.0),
        _exchange(_poll("D1", time_stamp="late"), 1001.0),  # a type error, and a poll too early
        _exchange(_poll(None), 1002.0, peer="10.9.9.9:1234"),
        _exchange(_poll("D1"), 1003.0, method="GET"),
    ]


def _facts(found: list[Any]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in found]


def test_judging_ahead_gives_what_feed_alone_gives() -> None:
    alone, ahead = Engine(EngineConfig(time_scale=0.05)), Engine(EngineConfig(time_scale=0.05))
    for one, other in zip(_conversation(), _conversation(), strict=True):
        expected = alone.feed(one)
        answer = other.response_body
        other.status, other.response_body = None, None  # the answer does not exist yet when the request is judged
        request = ahead.judge_request(other)
        assert all(f.direction == "request" for f in request.findings)
        other.status, other.response_body = 200, answer
        judged = ahead.feed(other, request)
        assert (judged.device_id, judged.task, judged.request, judged.answer) == (
            expected.device_id,
            expected.task,
            expected.request,
            expected.answer,
        )
        assert _facts(judged.findings) == _facts(expected.findings)
    assert _facts(ahead.findings) == _facts(alone.findings)
    assert {f.rule for f in ahead.findings} >= {"MSG-TYPE", "CADENCE-IDLE", "HTTP-METHOD", "MSG-REQUIRED"}


def test_feed_reads_no_request_judged_ahead() -> None:
    reads: Counter[bytes | None] = Counter()

    def counting(raw: bytes | None, *rest: Any) -> Any:
        reads[raw] += 1
        return parse_message(raw, *rest)

    engine = Engine(reader=counting)
    exchange = _exchange(_poll("D1"), 1000.0)
    request = engine.judge_request(exchange)
    engine.feed(exchange, request)
    assert reads[exchange.request_body] == 1 and reads[exchange.response_body] == 1


def test_a_request_judged_on_another_exchange_is_refused() -> None:
    engine = Engine()
    request = engine.judge_request(_exchange(_poll("D1"), 1000.0))
    with pytest.raises(ValueError, match="another exchange"):
        engine.feed(_exchange(_poll("D1"), 1000.0), request)


def test_message_errors_leave_out_how_it_was_sent() -> None:
    engine = Engine()
    request = engine.judge_request(_exchange(_poll("D1", time_stamp="late"), 1000.0, method="PUT"))
    assert {f.rule for f in request.errors()} == {"HTTP-METHOD", "MSG-TYPE"}
    assert {f.rule for f in request.errors(framing=False)} == {"MSG-TYPE"}
    single = {f.rule for f in judge_message(Engine(), "taskRequest", _poll("D1", time_stamp="late"))}
    assert single == {f.rule for f in request.errors(framing=False)}


def test_a_device_without_device_id_is_its_host() -> None:
    engine = Engine()
    for port in (40000, 40001):
        engine.feed(_exchange(_poll(None), 1000.0 + port, peer=f"10.9.9.9:{port}"))
    engine.feed(_exchange(_poll(None), 5000.0, peer="[fe80::1]:40002"))
    engine.feed(_exchange(_poll(None), 5001.0, peer="fe80::2"))  # the proxy's form: no port
    assert set(engine.devices) == {"10.9.9.9", "fe80::1", "fe80::2"}
    assert engine.devices["10.9.9.9"].polls == 2
