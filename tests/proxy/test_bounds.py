"""The addon's bounds in-process: inflating stops at the limit, the tap keeps only the start,
the record survives a torn line, and every report is written however hostile the findings."""

from __future__ import annotations

import gzip
import json
import os
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import brotli
import pytest

from facecert.core.captures.jsonl import read_jsonl
from facecert.core.examples import example_for
from facecert.core.jsonsafe import loads_strict
from facecert.core.model import Exchange, Finding, Severity
from facecert.proxy_addons import reports
from facecert.proxy_addons.bodies import EVIDENCE, BodyTap, Truncated, inflate, judged_body
from facecert.proxy_addons.record import RECORD, FlowRecord, read_records, write_har
from facecert.proxy_addons.session import ProxySession, SessionOptions

try:
    from compression import zstd
except ImportError:
    from backports import zstd

LIMIT = 64 * 1024
BODY = json.dumps(example_for("device/taskRequest")).encode()


def zeros_compressed(coding: str, size: int) -> bytes:
    """``size`` zero bytes in ``coding``, compressed chunk by chunk (never all in memory)."""
    chunk, count = b"\0" * (1 << 20), max(1, size >> 20)
    if coding == "gzip":
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join(packer.compress(chunk) for _ in range(count)) + packer.flush()
    if coding == "br":
        brotli_packer = brotli.Compressor(quality=5)
        return b"".join(brotli_packer.process(chunk) for _ in range(count)) + brotli_packer.finish()
    zstd_packer = zstd.ZstdCompressor(level=3)
    return b"".join(zstd_packer.compress(chunk) for _ in range(count)) + zstd_packer.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd.compress,
    "x-gzip": gzip.compress,
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_coding_inflates_a_normal_body(coding: str) -> None:
    assert inflate(ENCODERS[coding](BODY), coding, LIMIT).body == BODY


def test_raw_deflate_and_stacked_codings_inflate() -> None:
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert inflate(raw_deflate.compress(BODY) + raw_deflate.flush(), "deflate", LIMIT).body == BODY
    assert inflate(brotli.compress(gzip.compress(BODY)), "gzip, br", LIMIT).body == BODY
    assert inflate(BODY, "identity", LIMIT).body == BODY


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_bomb_stops_one_byte_past_the_limit(coding: str) -> None:
    bomb = zeros_compressed(coding, 256 << 20)
    assert len(bomb) < 300_000  # 256 MiB of zeros
    inflated = inflate(bomb, coding, LIMIT)
    assert inflated.too_large and len(inflated.body) <= EVIDENCE


def test_a_bomb_inside_a_bomb_stops_at_the_first_layer_past_the_limit() -> None:
    inner = zeros_compressed("gzip", 64 << 20)
    inflated = inflate(gzip.compress(inner), "gzip, gzip", LIMIT)
    assert inflated.too_large


def test_undecodable_and_unknown_codings_are_judged_as_sent() -> None:
    for coding, raw in (("gzip", b"\x1f\x8b not gzip at all"), ("compress", BODY), ("br", b"\xff" * 40)):
        inflated = inflate(raw, coding, LIMIT)
        assert inflated.body == raw and inflated.error and not inflated.too_large


def test_tap_passes_every_chunk_and_keeps_at_most_the_limit() -> None:
    tap = BodyTap(LIMIT)
    chunks = [bytes([n]) * 10_000 for n in range(20)]  # 200,000 bytes
    assert [tap(chunk) for chunk in chunks] == chunks
    assert tap.seen == 200_000 and len(tap.kept) == EVIDENCE
    assert bytes(tap.kept) == b"".join(chunks)[:EVIDENCE]
    small = BodyTap(LIMIT, declared=None)
    small(BODY)
    assert bytes(small.kept) == BODY and small.size == len(BODY)
    assert BodyTap(LIMIT, declared=50_000_000).size == 50_000_000  # an upstream may answer before the rest came


def test_truncated_body_has_its_size_and_keeps_its_start() -> None:
    body = Truncated(b"  {", 30_000_000)
    assert len(body) == 30_000_000 and body.kept == 3 and bytes(body) == b"  {"
    assert len(body.strip()) == 30_000_000  # too large, not "empty"


def test_judged_body_notes_what_only_the_tap_knows() -> None:
    over = judged_body(b"x" * 100, LIMIT + 10, "", LIMIT)
    assert isinstance(over.data, Truncated) and len(over.data) == LIMIT + 10 and not over.note
    bomb = judged_body(zeros_compressed("br", 64 << 20), 2_000, "br", LIMIT)
    assert len(bomb.data) == LIMIT + 1 and bomb.replaces and "inflate to more than the limit" in bomb.note
    broken = judged_body(b"\x1f\x8bxx", 4, "gzip", LIMIT)
    assert broken.data == b"\x1f\x8bxx" and "judged as sent" in broken.note
    assert judged_body(gzip.compress(BODY), 99, "gzip", LIMIT).data == BODY


def _session(tmp_path: Path, **options: object) -> ProxySession:
    session = ProxySession(SessionOptions(time_scale=0.05, max_body=LIMIT, **options))
    session.open_record(tmp_path)
    return session


def _poll(body: bytes, headers: dict[str, str] | None = None) -> Exchange:
    answer = json.dumps(example_for("server/tasks/idleTime")).encode()
    return Exchange(
        "POST",
        "/taskRequest",
        body,
        200,
        answer,
        started=1_700_000_000.0,
        ended=1_700_000_000.1,
        request_headers=headers or {},
        peer="10.0.0.9",
    )


def test_a_bomb_is_one_finding_with_the_tap_note(tmp_path: Path) -> None:
    session = _session(tmp_path)
    body = judged_body(zeros_compressed("gzip", 64 << 20), 65_000, "gzip", LIMIT)
    judged = session.judge(_poll(body.data, {"Content-Encoding": "gzip"}), {"request": body})
    assert judged is not None
    large = [f for f in judged.findings if f.rule == "MSG-TOO-LARGE"]
    assert len(large) == 1 and large[0].party == "device"
    assert large[0].message.startswith("taskRequest request body: 65,000 bytes of Content-Encoding 'gzip' inflate")
    assert not [f for f in judged.findings if f.rule.startswith("MSG-") and f.rule != "MSG-TOO-LARGE"]


def test_record_is_appended_per_exchange_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    session = _session(tmp_path)
    for _ in range(5):
        session.keep(_poll(BODY), {})
    session.keep(_poll(Truncated(b"{", 9_000_000)), {"request": 9_000_000})
    session.sync()
    with open(tmp_path / RECORD, "ab") as handle:
        handle.write(b'{"index": 6, "method": "POST", "pa')  # what a kill -9 mid-write could leave
    records = list(read_records(tmp_path / RECORD))
    assert [r["index"] for r in records] == list(range(6))
    assert records[5]["request_size"] == 9_000_000
    assert write_har(tmp_path / RECORD, tmp_path / "s.har", "test") == 6
    har = loads_strict((tmp_path / "s.har").read_bytes())
    assert har["log"]["entries"][5]["request"]["bodySize"] == 9_000_000
    assert "only the first 1 kept" in har["log"]["entries"][5]["comment"]
    session.close()


def test_an_earlier_record_is_kept_and_links_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / RECORD).write_text('{"method": "GET", "path": "/earlier"}\n')
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    first = FlowRecord(tmp_path).open()
    first.close()
    earlier = [p for p in tmp_path.iterdir() if p.name.startswith("session-")]
    assert len(earlier) == 1 and "/earlier" in earlier[0].read_text()
    (tmp_path / RECORD).unlink()
    os.symlink(outside, tmp_path / RECORD)  # a planted link where the record goes
    record = FlowRecord(tmp_path).open()
    record.append(_poll(BODY))
    record.close()
    assert outside.read_text() == "precious"
    assert [ex.path for ex in read_jsonl(tmp_path / RECORD)] == ["/taskRequest"]
    os.symlink(outside, tmp_path / "summary.json")
    reports.write_reports(_session(tmp_path / "r"), tmp_path)
    assert outside.read_text() == "precious" and not (tmp_path / "summary.json").is_symlink()


HOSTILE = "dev\udfff\x00\x1b ice"


def _hostile_finding() -> Finding:
    return Finding(
        rule="MSG-FORMAT",
        severity=Severity.ERROR,
        message=f"device_id {HOSTILE!s} is odd",
        party="device",
        pointer="/device_id\udc80",
        expected=float("inf"),
        actual={"v": float("nan"), HOSTILE: 2**80},
        device_id=HOSTILE,
    )


def test_reports_are_strict_whatever_the_findings_hold(tmp_path: Path) -> None:
    session = _session(tmp_path)
    session.keep(_poll(BODY, {"X-Odd": HOSTILE}), {})
    session.engine.findings.append(_hostile_finding())
    session.finish()
    paths = reports.write_reports(session, tmp_path)
    summary = loads_strict(paths.summary.read_bytes())  # no NaN/Infinity, no lone surrogate
    assert summary["exchanges"] == 1 and summary["errors_by_rule"] == {"MSG-FORMAT": 1}
    assert "\\x00" in summary["findings"][0]["message"]
    ET.parse(paths.junit)  # well-formed XML: no control characters
    for result in paths.allure.glob("*-result.json"):
        loads_strict(result.read_bytes())
    loads_strict(paths.har.read_bytes())
    assert session.error_count == 0


def test_a_summary_is_written_even_when_summarizing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session(tmp_path)
    session.keep(_poll(BODY), {})

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("summarize broke")

    monkeypatch.setattr(reports, "summarize", broken)
    paths = reports.write_reports(session, tmp_path)
    summary = loads_strict(paths.summary.read_bytes())
    assert summary["verdict"] == "fail" and summary["exchanges"] == 1 and "report_error" in summary
    assert paths.junit.exists() and paths.har.exists()
    assert session.error_count == 1 and "summarizing" in session.errors[0].where


def test_a_record_that_fails_half_way_leaves_no_half_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facecert.core.redact import Redactor

    monkeypatch.setattr("facecert.core.redact._CURRENT", Redactor(keep=True))  # the body reaches the disk whole
    record = FlowRecord(tmp_path).open()
    record.append(_poll(BODY))
    import facecert.proxy_addons.record as module

    real, calls = module.base64.b64encode, []

    def full_disk(data: bytes) -> bytes:  # the disk fills after the first pieces were written
        calls.append(1)
        if len(calls) > 4:  # two for the format's empty bodies, two real pieces (over 1 MiB: written)
            raise OSError(28, "No space left on device")
        return real(data)

    monkeypatch.setattr(module.base64, "b64encode", full_disk)
    big = _poll(b"x" * (3 * 1024 * 1024))  # large enough to be written in pieces
    before = (tmp_path / RECORD).stat().st_size
    with pytest.raises(OSError):
        record.append(big)
    assert (tmp_path / RECORD).stat().st_size == before  # what was written of it is cut off again
    monkeypatch.undo()
    record.append(_poll(BODY))
    record.close()
    assert [r["index"] for r in read_records(tmp_path / RECORD)] == [0, 1]
    assert len(list(read_jsonl(tmp_path / RECORD))) == 2
