"""A hostile server, against both drivers of the reference device (asyncio and Locust/gevent, through the core).

Whatever a peer sends (50 MB, a nesting bomb, bytes that are not UTF-8, NaN, 2**70, an answer trickled a byte
at a time, a download larger than any message) the device names the rule it was refused by (the engine's own
strict reader, parse_message, within the contract's limits), never reads past the limit, keeps no more than
the evidence, and carries on: its next poll goes out and the correct answer after it is used. The server is
a tiny Starlette app on uvicorn at 127.0.0.1; each device gets two hostile answers, then correct ones.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from facecert.certify.asgi import UvicornThread
from facecert.core.defaults import max_body_bytes
from facecert.core.model import Severity
from facecert.mock_device.flow import EVIDENCE, Oversized
from facecert.mock_device.judge import judge_device
from facecert.mock_device.tasks import BAD_PARAMETER, CURL_FILESIZE_EXCEEDED, CURL_OPERATION_TIMEDOUT

HOSTILE_POLLS = 2  # each device's first polls get the hostile answer; the later ones a correct idle answer
HUGE = 50 * 1024 * 1024
MiB = b"a" * (1024 * 1024)
IDLE = json.dumps({"request_type": "idleTime", "time_stamp": 1_900_000_000}).encode()
JSON = {"content-type": "application/json"}


async def _huge() -> AsyncIterator[bytes]:
    for _ in range(HUGE // len(MiB)):  # chunked, no Content-Length: the device finds out by reading
        yield MiB


async def _trickle() -> AsyncIterator[bytes]:
    for byte in IDLE:
        yield bytes([byte])
        await asyncio.sleep(0.2)  # every read gets a byte in time: only a deadline on the whole answer ends it


def _task(mode: str, base: str) -> Response:
    """The hostile answer of ``mode`` to a poll."""
    if mode == "huge":
        return StreamingResponse(_huge(), headers=JSON)
    if mode == "huge-declared":  # a Content-Length over the limit: refused before the first byte of the body
        return StreamingResponse(_huge(), headers={**JSON, "content-length": str(HUGE)})
    if mode == "deep":
        return Response(b"[" * 100_000 + b"]" * 100_000, headers=JSON)
    if mode == "not-utf8":
        return Response(b'{"request_type": "idle\xff\xfeTime", "time_stamp": 1}', headers=JSON)
    if mode == "nan":
        return Response(b'{"request_type": "idleTime", "time_stamp": NaN}', headers=JSON)
    if mode == "big-int":  # a setDevTime the device's clock cannot hold
        return Response(b'{"request_type": "setDevTime", "request_id": 7001, "time_stamp": %d}' % 2**70, headers=JSON)
    if mode == "trickle":
        return StreamingResponse(_trickle(), headers=JSON)
    if mode == "big-download":  # an addUser whose face image is a 50 MB download
        user = {"user_id": "u1", "user_info": {"name": "one"}, "image_type": "URL", "image_content": f"{base}/file"}
        return Response(json.dumps({"request_type": "addUser", "request_id": 7002, "user_list": [user]}), headers=JSON)
    return Response(IDLE, headers=JSON)  # "correct"


class Hostile:
    def __init__(self) -> None:
        self.polls: collections.Counter[str] = collections.Counter()
        self.results: list[dict[str, object]] = []
        self.app = Starlette(
            routes=[
                Route("/{mode}/taskRequest", self.poll, methods=["POST"]),
                Route("/{mode}/taskResult", self.result, methods=["POST"]),
                Route("/{mode}/file", self.file, methods=["GET"]),
            ]
        )
        self.thread = UvicornThread(self.app)

    async def poll(self, request: Request) -> Response:
        mode = request.path_params["mode"]
        device_id = json.loads(await request.body()).get("device_id", "?")
        self.polls[device_id] += 1
        if self.polls[device_id] > HOSTILE_POLLS:
            return Response(IDLE, headers=JSON)
        return _task(mode, f"{self.thread.base}/{mode}")

    async def result(self, request: Request) -> Response:
        self.results.append(json.loads(await request.body()))
        return Response(b"")

    async def file(self, request: Request) -> Response:
        return StreamingResponse(_huge(), headers={"content-type": "image/jpeg"})

    def url(self, mode: str) -> str:
        return f"{self.thread.base}/{mode}"


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    with server.thread:
        yield server


def _carried_on(rec) -> None:
    """The device polled again after the hostile answers and used the correct answer that followed."""
    assert rec.stats["polls"] >= HOSTILE_POLLS + 1 and rec.stats["idle"] >= 1, rec.stats


def _answer_findings(rec, rule: str) -> list:
    return [f for f in judge_device(rec).findings if f.rule == rule and f.direction == "answer"]


REFUSED = [
    ("huge", "MSG-TOO-LARGE"),
    ("huge-declared", "MSG-TOO-LARGE"),
    ("deep", "MSG-TOO-DEEP"),
    ("not-utf8", "MSG-NOT-JSON"),
    ("nan", "MSG-NOT-FINITE"),
]


@pytest.mark.parametrize(("mode", "rule"), REFUSED)
def test_a_hostile_answer_is_refused_by_its_rule_and_the_device_carries_on(drive_any, hostile, mode, rule) -> None:
    rec = drive_any(mode, [{"wait": "idle", "at_least": 1}], timeout=15.0, server=hostile.url(mode))
    _carried_on(rec)
    assert rec.refused == {rule: HOSTILE_POLLS}, (rec.refused, rec.log[-2000:])
    assert rec.stats["failures"] == HOSTILE_POLLS
    assert f"{rule}: taskRequest answer" in rec.log
    # the engine judging the device's recording names the same rule, against the server
    found = _answer_findings(rec, rule)
    assert len(found) == HOSTILE_POLLS and {f.party for f in found} == {"server"}, [f.line() for f in found]
    if mode.startswith("huge"):
        bodies = [e.response_body for e in rec.exchanges if e.path.endswith("/taskRequest")][:HOSTILE_POLLS]
        assert all(isinstance(b, Oversized) and b.kept <= EVIDENCE for b in bodies), "only the evidence is kept"
        assert all(len(b) > max_body_bytes() for b in bodies)
        if rec.driver == "locust":  # a 50 MB answer never sat in memory (Locust, gevent, the engine: ~80 MB)
            assert rec.peak_rss_mb < 80 + max_body_bytes() / 2**20 + 40, rec.peak_rss_mb


def test_an_integer_the_clock_cannot_hold_is_a_bad_parameter_not_a_crash(drive_any, hostile) -> None:
    rec = drive_any("bigint", [{"wait": "idle", "at_least": 1}], timeout=15.0, server=hostile.url("big-int"))
    _carried_on(rec)
    assert [r["code"] for r in rec.results] == [BAD_PARAMETER] * HOSTILE_POLLS, rec.results
    assert "MSG-NUMBER-TOO-LARGE: taskRequest answer: /time_stamp" in rec.log  # read, noted, then refused
    assert _answer_findings(rec, "MSG-NUMBER-TOO-LARGE"), "the engine names the integer beyond 2**53"


def test_an_answer_trickled_a_byte_at_a_time_ends_at_the_request_timeout(drive_any, hostile) -> None:
    rec = drive_any(
        "trickle",
        [{"wait": "idle", "at_least": 1}],
        timeout=20.0,
        server=hostile.url("trickle"),
        request_timeout_s=1.0,
    )
    _carried_on(rec)
    polls = [e for e in rec.exchanges if e.path.endswith("/taskRequest")]
    stalled = polls[:HOSTILE_POLLS]
    assert all(e.status is None and (e.error or "").startswith("timeout") for e in stalled), stalled
    assert all(e.duration < 1.5 for e in stalled), [e.duration for e in stalled]
    assert rec.stats["failures"] == HOSTILE_POLLS, "the abandoned connection is not reused half-read"
    assert {f.party for f in _answer_findings(rec, "ANSWER-MISSING")} == {"server"}


def test_a_download_larger_than_the_limit_is_abandoned_with_libcurls_code(drive_any, hostile) -> None:
    rec = drive_any("download", [{"wait": "idle", "at_least": 1}], timeout=20.0, server=hostile.url("big-download"))
    _carried_on(rec)
    assert [r["code"] for r in rec.results] == [CURL_FILESIZE_EXCEEDED] * HOSTILE_POLLS, rec.results
    assert rec.refused == {"MSG-TOO-LARGE": HOSTILE_POLLS}, rec.refused
    downloads = [e for e in rec.exchanges if e.path.endswith("/file")]
    assert downloads and all(isinstance(e.response_body, Oversized) for e in downloads)
    assert CURL_OPERATION_TIMEDOUT not in [r["code"] for r in rec.results]


def test_a_correct_server_passes(drive_any, hostile) -> None:
    rec = drive_any("correct", [{"wait": "idle", "at_least": 3}], timeout=15.0, server=hostile.url("correct"))
    assert rec.refused == {} and rec.stats["failures"] == 0 and rec.stats["idle"] >= 3
    errors = [f for f in judge_device(rec).findings if f.severity is Severity.ERROR]
    assert not errors, [f.line() for f in errors]
