"""Capture readers on files written by a real mitmdump, and `facecert validate`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facecert.certify.asgi import UvicornThread
from facecert.core.captures import read_capture, sniff_format, write_har, write_jsonl
from facecert.samples import sample_conversation
from tests.support import facecert


@pytest.fixture(autouse=True)
def _keep_personal_data():
    """These tests check the formats keep bytes exact; redaction (the default) has tests/engine/test_redact.py."""
    from facecert.core.redact import configure, reset

    configure(keep_personal_data=True)
    yield
    reset()


ROOT = Path(__file__).resolve().parents[2]
# The recording keeps the sample's cadence at this time scale, and validate judges it at the same scale.
# Each wait is this share of the interval the answer gave: never early (the window starts at 1 - tolerance
# of it) and, at 0.04, 0.14 s (after a task) and 0.41 s (after idleTime) of slack for a loaded machine's
# lag before the window ends. Back to back at 0.0001 the slack was the 0.05 s network allowance alone,
# and a CI run's 53 ms lag through mitmdump failed CADENCE-IDLE.
RECORDED_SCALE = 0.04
PACE_SHARE = 0.8


def canned_upstream() -> Starlette:
    """Replays, in order, the answers of the sample conversation (the test sends its requests in order)."""
    answers = [ex.response_body for ex in sample_conversation(cycles=2)]
    seen: list[str] = []

    async def answer(request: Request) -> Response:
        body = await request.body()
        seen.append(hashlib.sha256(body).hexdigest())
        canned = answers[len(seen) - 1] if len(seen) <= len(answers) else b'{"code": 0}'
        return Response(canned, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
    app.state.seen = seen
    return app


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, mitmdump) -> dict:
    """Sample traffic plus one binary body, through a real mitmdump writing flows and HAR."""
    folder = tmp_path_factory.mktemp("mitm")
    app = canned_upstream()
    with UvicornThread(app) as upstream:
        flows, har = folder / "flows.mitm", folder / "session.har"
        proc = subprocess.Popen(
            [
                mitmdump,
                "--mode",
                f"reverse:{upstream.base}",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                "0",
                "--set",
                f"confdir={folder / 'conf'}",
                "-w",
                str(flows),
                "--set",
                f"hardump={har}",
                "-q",
                "-s",
                str(ROOT / "tests" / "engine" / "port_reporter.py"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = int(proc.stdout.readline().strip().split()[-1])
        sent = []
        previous = None
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for ex in sample_conversation(cycles=2):
                if previous is not None:  # the sample's own pace, scaled: a device, not a burst
                    time.sleep(max(0.0, ex.started - previous.ended) * RECORDED_SCALE * PACE_SHARE)
                client.post(ex.path, content=ex.request_body, headers={"Content-Type": "application/json"})
                sent.append(ex.request_body)
                previous = ex
            binary = b"\xff\xfe\x00binary\x80"
            client.post("/faceRecognition", content=binary)
            sent.append(binary)
        proc.terminate()
        proc.wait(timeout=20)
    return {"flows": flows, "har": har, "sent": sent, "upstream": app.state.seen}


@pytest.mark.slow  # a real mitmdump recording
def test_flow_file_gives_exact_bytes(recorded) -> None:
    assert sniff_format(recorded["flows"]) == "flows"
    exchanges = list(read_capture(recorded["flows"]))
    assert [ex.request_body for ex in exchanges] == recorded["sent"]
    assert [hashlib.sha256(b).hexdigest() for b in recorded["sent"]] == recorded["upstream"]
    assert all(ex.status == 200 and ex.ended >= ex.started > 0 for ex in exchanges)


@pytest.mark.slow  # a real mitmdump recording
def test_mitmproxy_har_is_read(recorded) -> None:
    assert sniff_format(recorded["har"]) == "har"
    exchanges = list(read_capture(recorded["har"]))
    assert len(exchanges) == len(recorded["sent"])
    assert [ex.request_body for ex in exchanges[:-1]] == recorded["sent"][:-1]  # text bodies exact
    assert exchanges[0].path == "/taskRequest" and json.loads(exchanges[0].response_body)["request_type"]


@pytest.mark.slow  # a real mitmdump recording
def test_our_har_and_jsonl_round_trip_binary_bodies(tmp_path: Path, recorded) -> None:
    exchanges = list(read_capture(recorded["flows"]))
    for path, writer in ((tmp_path / "x.har", write_har), (tmp_path / "x.jsonl", write_jsonl)):
        writer(exchanges, path)
        again = list(read_capture(path))
        assert [(e.request_body, e.response_body, e.status, e.path) for e in again] == [
            (e.request_body, e.response_body, e.status, e.path) for e in exchanges
        ]
        assert all(abs(a.started - b.started) < 1e-3 for a, b in zip(again, exchanges, strict=True))


def run_validate(*args: str) -> subprocess.CompletedProcess:
    return facecert("validate", *args, timeout=120)


@pytest.mark.slow  # a real mitmdump recording
def test_validate_on_a_real_mitmdump_capture(recorded) -> None:
    result = run_validate(str(recorded["flows"]), "--json", "--time-scale", str(RECORDED_SCALE))
    summary = json.loads(result.stdout)
    assert summary["exchanges"] == len(recorded["sent"])
    errors = {f["rule"] for f in summary["findings"] if f["severity"] == "error"}
    assert errors == {"MSG-NOT-JSON"}, summary["findings"]  # the binary body, and only it
    assert result.returncode == 1


def test_validate_clean_capture_exits_0_and_writes_junit(tmp_path: Path) -> None:
    har = write_har(sample_conversation(devices=2, cycles=3), tmp_path / "clean.har")
    result = run_validate(str(har), "--junit", str(tmp_path / "junit.xml"))
    assert result.returncode == 0, result.stdout
    assert "PASS" in result.stdout
    xml = (tmp_path / "junit.xml").read_text()
    assert 'failures="0"' in xml and "CADENCE-IDLE" in xml


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\x00\x01\x02binary", "not a capture"),
        (b'{"log": {"entries": [{"request": 1}]}}', "malformed"),
        (b'{"log": {"version": "1.2", "entries": [', "not a readable HAR"),
        (b'{"log": "x", "version": 1}', "not HAR"),
        (b"12:notatnetstring,", "not a readable mitmproxy flow file"),
        (b'{"method": "POST", "path": "/taskRequest"}\n{"method": ', "not a facecert JSONL exchange"),
        (b'{"device_id": "x"}', "--as"),
    ],
)
def test_unusable_input_exits_2_with_a_message(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input"
    path.write_bytes(content)
    result = run_validate(str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_file_and_bad_options_exit_2(tmp_path: Path) -> None:
    result = run_validate(str(tmp_path / "nope.har"))
    assert result.returncode == 2 and "cannot read" in result.stdout
    assert run_validate(str(tmp_path / "x"), "--protocol-version", "9.9").returncode == 2
    assert run_validate(str(tmp_path / "x"), "--profile", "lenient").returncode == 2


def test_single_message_with_as(tmp_path: Path) -> None:
    good = tmp_path / "req.json"
    good.write_text(json.dumps({"device_id": "x"}))
    result = run_validate(str(good), "--as", "taskRequest", "--json")
    assert result.returncode == 1
    rules = {f["rule"] for f in json.loads(result.stdout)["findings"]}
    assert rules == {"MSG-REQUIRED"}
    assert run_validate(str(good), "--as", "nonsense").returncode == 2


@pytest.mark.slow  # a large capture
def test_large_capture_runs(tmp_path: Path) -> None:
    from facecert.samples import iter_large

    path = write_jsonl(iter_large(10_000), tmp_path / "big.jsonl")
    started = time.monotonic()
    result = run_validate(str(path), "--json")
    assert result.returncode == 0, result.stdout[-2000:]
    assert json.loads(result.stdout)["exchanges"] >= 10_000
    assert time.monotonic() - started < 120


def test_openapi_document_is_valid() -> None:
    from openapi_spec_validator import validate

    result = facecert("openapi", timeout=60)
    document = json.loads(result.stdout)
    validate(document)
    assert set(document["paths"]) == {"/taskRequest", "/taskResult", "/faceRecognition", "/deviceAlarm", "/gpsReport"}
    assert len(document["components"]["schemas"]["TaskAnswer"]["discriminator"]["mapping"]) == 14  # every task


def test_jsonl_whose_first_record_is_longer_than_the_sniffed_head(tmp_path) -> None:
    """A proxy record starting with a big capture is still JSONL, not a single message."""
    import json as _json

    from facecert.core.captures import sniff_format

    path = tmp_path / "session.jsonl"
    path.write_text(
        _json.dumps({"index": 0, "method": "POST", "path": "/faceRecognition", "request_body": "x" * 10_000}) + "\n",
        encoding="utf-8",
    )
    assert sniff_format(path) == "jsonl"


def test_stall_readings_are_kept_by_every_format_and_judged_alike(tmp_path: Path) -> None:
    """The recorder's stall clock (facecert.stalls) travels with the exchanges: a HAR or JSONL capture judged
    offline gives the verdict the live judge gave (HARNESS-STALLED, no CADENCE-IDLE). A HAR from elsewhere has
    no readings; readings that are not seconds are a malformed capture, said as such."""
    from facecert.core.captures import CaptureError
    from facecert.core.engine import EngineConfig
    from facecert.samples import ConversationBuilder
    from facecert.validate import judge_files
    from tests.engine.test_rules import stalled_idle_gap

    builder = ConversationBuilder()
    stalled_idle_gap(28.0, 5.0)(builder)
    for path in (
        write_har(builder.exchanges, tmp_path / "s.har"),
        write_jsonl(builder.exchanges, tmp_path / "s.jsonl"),
    ):
        back = list(read_capture(path))
        assert [(e.stall_started, e.stall_ended) for e in back] == [(7.0, 7.0), (12.0, 12.0)], path
        rules = {f.rule for f in judge_files([path], EngineConfig())[1]}
        assert rules == {"HARNESS-STALLED"}, (path, rules)
    har = json.loads((tmp_path / "s.har").read_text(encoding="utf-8"))
    har["log"]["entries"][1]["_stall"] = ["soon", 1]
    (tmp_path / "bad.har").write_text(json.dumps(har), encoding="utf-8")
    with pytest.raises((CaptureError, ValueError), match="_stall is two stall clock readings"):
        list(read_capture(tmp_path / "bad.har"))
