"""Redaction (facecert/core/redact.py): what we write holds no face and no name, and a redacted
capture validates to the verdict of the unredacted one; a placeholder altered after
redaction is REDACTED-PLACEHOLDER; ``facecert redact`` does the same to an existing capture."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from facecert.cli import app
from facecert.core.captures import read_capture, write_har, write_jsonl
from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig
from facecert.core.examples import example_for
from facecert.core.model import Exchange
from facecert.core.redact import Redactor, configure, image_placeholder, parse_placeholder, reset
from facecert.samples import ConversationBuilder


@pytest.fixture(autouse=True)
def _fresh_run():
    reset()
    yield
    reset()


def jpeg_b64(size: tuple[int, int] = (32, 24), colour: str = "orange") -> str:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return base64.b64encode(out.getvalue()).decode()


def png_b64() -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def bomb_png_b64() -> str:
    """A PNG whose header claims 65500×65500 pixels (a few hundred bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 65500, 65500, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(raw).decode()


NAME, PHONE, ALIAS, CARD = "张三丰 Zhang Sanfeng", "+86 138 0013 8000", "Sanfeng", "440523199001011234"


def conversation() -> list[Exchange]:
    """A capture with every image verdict (good, not base64, PNG for JPEG, a bomb) and an addUser
    whose user_info is 256 bytes on the dot (one more name byte would break USERINFO-SIZE)."""
    b = ConversationBuilder()
    task = example_for("server/tasks/addUser")
    user = task["user_list"][0]
    user.update(image_type="image", image_content=jpeg_b64(colour="blue"))
    user["user_info"].update(name=NAME, phone_number=PHONE, other="")
    size = len(json.dumps(user["user_info"], ensure_ascii=False, separators=(",", ":")).encode())
    user["user_info"]["other"] = "o" * (256 - size)
    b.poll(task)
    for image in (jpeg_b64(), "@@not base64@@", png_b64(), bomb_png_b64()):
        body = example_for("device/faceRecognition")
        body.update(
            device_id=b.device_id,
            image=image,
            user_name=NAME,
            user_name2=ALIAS,
            idcard_number=CARD,
            idcard_image=jpeg_b64((8, 8), "green"),
        )
        b._post(
            "/faceRecognition",
            body,
            {"code": 0, "snap_time": body["snap_time"], "frpic_name": body["frpic_name"], "log": "ok"},
        )
    big = example_for("server/tasks/addUser")
    big["user_list"][0]["user_info"].update(name=NAME, other="x" * 300)
    b.poll(big)
    return b.exchanges


def verdict(exchanges) -> list[tuple[str, str]]:
    engine = Engine(EngineConfig())
    for exchange in exchanges:
        engine.feed(exchange)
    engine.finish()
    return sorted((f.rule, f.pointer) for f in engine.findings)


def personal_values(exchanges: list[Exchange], raw: bool = True) -> list[bytes]:
    """Every image (base64 text, and with ``raw`` a run of its bytes) and identity value the conversation carries."""
    found: set[bytes] = {NAME.encode(), PHONE.encode(), ALIAS.encode(), CARD.encode()}
    for ex in exchanges:
        for body in (ex.request_body, ex.response_body):
            text = (body or b"").decode()
            for value in _strings(json.loads(text) if text.strip() else None):
                if len(value) > 200:
                    found.add(value.encode())
                    if raw:
                        found.add(base64.b64decode(value)[40:200])
    return sorted(found)


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_the_schemas_say_which_fields_are_personal() -> None:
    contract = get_contract()
    capture = example_for("device/faceRecognition")
    capture.update(fullview_image="x", user_name2="a")
    marks = contract.personal_fields("device/faceRecognition", capture)
    assert marks["/image"] == marks["/fullview_image"] == "biometric"
    assert marks["/user_name"] == marks["/user_name2"] == marks["/idcard_number"] == "identity"
    task = example_for("server/tasks/addUser")
    task["user_list"][0].update(image_type="image", image_content="AAAA")
    task["user_list"][1].update(image_type="URL", image_content="http://x.invalid/a.jpg")
    marks = contract.personal_fields("server/tasks/addUser", task)
    assert marks["/user_list/0/image_content"] == "biometric"
    assert "/user_list/1/image_content" not in marks  # a URL is no face
    assert marks["/user_list/1/user_info/name"] == marks["/user_list/1/user_info/phone_number"] == "identity"
    assert contract.personal_fields("device/gpsReport", example_for("device/gpsReport")) == {}


def test_identity_hash_keeps_length_in_characters_and_bytes() -> None:
    redactor = Redactor(salt=b"s" * 32)
    for name in (NAME, "a", "李", "𝔄𝔅", 'quote"and\\slash', "tab\tend", ""):
        token = redactor.identity(name)
        assert len(token) == len(name)
        assert len(json.dumps(token, ensure_ascii=False).encode()) == len(json.dumps(name, ensure_ascii=False).encode())
        assert token == redactor.identity(name)  # one salt per run: the same name, the same hash
        assert not name or token != name
    assert Redactor(salt=b"t" * 32).identity(NAME) != redactor.identity(NAME)


def test_placeholder_records_what_the_image_rules_need() -> None:
    held = parse_placeholder(image_placeholder(jpeg_b64((64, 48))))
    assert (held.valid_base64, held.media, held.pixels, held.head[:3]) == (True, "image/jpeg", 64 * 48, b"\xff\xd8\xff")
    assert parse_placeholder(image_placeholder(bomb_png_b64())).pixels == 65500 * 65500
    assert not parse_placeholder(image_placeholder("@@not base64@@")).valid_base64


def test_redacted_har_validates_to_the_same_verdict(tmp_path: Path) -> None:
    exchanges = conversation()
    live = verdict(exchanges)
    assert {"IMG-BASE64", "IMG-FORMAT", "USERINFO-SIZE"} <= {rule for rule, _ in live}
    assert sum(rule == "IMG-FORMAT" for rule, _ in live) == 2  # PNG for JPEG, and the bomb
    configure(keep_personal_data=True)
    kept = write_har(exchanges, tmp_path / "kept.har")
    configure()
    redacted = write_har(exchanges, tmp_path / "redacted.har")
    assert verdict(read_capture(kept)) == live
    assert verdict(read_capture(redacted)) == live
    data = redacted.read_bytes()
    for value in personal_values(exchanges):
        assert value not in data, value[:40]
    assert all(value in kept.read_bytes() for value in personal_values(exchanges, raw=False))


def test_redacted_jsonl_validates_to_the_same_verdict(tmp_path: Path) -> None:
    exchanges = conversation()
    out = write_jsonl(exchanges, tmp_path / "session.jsonl")
    assert verdict(read_capture(out)) == verdict(exchanges)
    bodies = b"".join(ex.request_body + (ex.response_body or b"") for ex in read_capture(out))
    assert not any(value in bodies for value in personal_values(exchanges))
    assert b"facecert-redacted:image/jpeg" in bodies and '"redacted": true' in out.read_text()


def test_a_placeholder_counts_only_in_a_redacted_record() -> None:
    """A live peer that sends a placeholder string is judged on it as text: it is no base64."""
    b = ConversationBuilder()
    body = example_for("device/faceRecognition")
    body.update(device_id=b.device_id, image=image_placeholder(jpeg_b64()))
    b._post("/faceRecognition", body, {"code": 0, "snap_time": body["snap_time"], "frpic_name": body["frpic_name"]})
    assert "IMG-BASE64" in {rule for rule, _ in verdict(b.exchanges)}
    b.exchanges[-1].redacted = True
    assert "IMG-BASE64" not in {rule for rule, _ in verdict(b.exchanges)}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.replace("sha256=", "sha256=zz")[: len(p)],  # hash not hex
        lambda p: p.replace(";px=", ";pix="),  # malformed
        lambda p: p.replace("bytes=", "bytes=x"),
        lambda p: p[:-1],  # hash cut short
        lambda p: "facecert-redacted:",
    ],
)
def test_a_tampered_placeholder_is_a_finding(tamper) -> None:
    exchanges = conversation()[:2]  # the poll and the first, good capture
    redactor = Redactor()
    redacted = [redactor.exchange(ex) for ex in exchanges]
    assert "REDACTED-PLACEHOLDER" not in {rule for rule, _ in verdict(redacted)}
    body = json.loads(redacted[-1].request_body)
    body["image"] = tamper(body["image"])
    redacted[-1].request_body = json.dumps(body).encode()
    rules = {rule for rule, _ in verdict(redacted)}
    assert "REDACTED-PLACEHOLDER" in rules and "IMG-BASE64" not in rules


def test_bodies_keep_what_the_parse_rules_judge() -> None:
    """Duplicate keys, number literals and a lone surrogate survive redaction."""
    raw = (
        b'{"device_id":"ID1","user_name":"Ann Lee","user_name":"Bo Li","comp_score":90.50,'
        b'"snap_time_ms":1700000000000,"qr_string":"\\ud800","image":"' + jpeg_b64().encode() + b'"}'
    )
    out = Redactor().body(raw, "device/faceRecognition")
    assert out.count(b'"user_name"') == 2 and b"90.50" in out and b'"\\ud800"' in out
    assert b"Ann Lee" not in out and b"Bo Li" not in out and b"facecert-redacted:image/jpeg" in out


def test_a_body_above_the_limit_keeps_its_size() -> None:
    redactor = Redactor()
    body = {**example_for("device/faceRecognition"), "image": jpeg_b64()}
    body["pad"] = "x" * (redactor.contract.limits.max_body_bytes + 10)
    raw = json.dumps(body).encode()
    out = redactor.body(raw, "device/faceRecognition")
    assert len(out) == len(raw) and b"facecert-redacted" in out


def test_a_body_that_is_no_json_loses_its_image_runs() -> None:
    raw = b'{"image": "' + jpeg_b64((64, 64)).encode() + b'", oops'
    out = Redactor().body(raw, "device/faceRecognition")
    assert b"facecert-redacted:image/jpeg" in out and out.endswith(b", oops")


def test_keep_personal_data_keeps_everything() -> None:
    exchanges = conversation()
    keeper = Redactor(keep=True)
    assert [keeper.exchange(ex) for ex in exchanges] == exchanges


def _flows_file(path: Path, exchanges: list[Exchange]) -> None:
    from mitmproxy import io as mitm_io
    from mitmproxy.test import tflow

    with open(path, "wb") as out:
        writer = mitm_io.FlowWriter(out)
        for ex in exchanges:
            flow = tflow.tflow(resp=True)
            flow.request.method, flow.request.path = ex.method, ex.path
            flow.request.headers.clear()
            flow.request.content = ex.request_body
            flow.response.headers.clear()
            flow.response.status_code = ex.status or 200
            flow.response.content = ex.response_body or b""
            flow.request.timestamp_start = ex.started
            flow.request.timestamp_end = flow.response.timestamp_end = ex.ended
            writer.add(flow)


@pytest.mark.parametrize("fmt", ["har", "jsonl", "flows"])
def test_facecert_redact_round_trip(tmp_path: Path, fmt: str) -> None:
    exchanges = conversation()
    source = tmp_path / f"in.{fmt}"
    if fmt == "flows":
        _flows_file(source, exchanges)
    else:
        configure(keep_personal_data=True)
        (write_har if fmt == "har" else write_jsonl)(exchanges, source)
    target = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(app, ["redact", str(source), str(target)])
    assert result.exit_code == 0, result.output
    assert f"redacted {len(exchanges)} exchanges ({fmt})" in result.output
    again = list(read_capture(target))
    data = target.read_bytes() + b"".join(ex.request_body + (ex.response_body or b"") for ex in again)
    kept = b"".join(ex.request_body + (ex.response_body or b"") for ex in read_capture(source))
    for value in personal_values(exchanges):
        assert value not in data
    assert all(value in kept for value in personal_values(exchanges, raw=False))
    assert all(ex.redacted for ex in again)
    assert verdict(again) == verdict(read_capture(source))
    twice = tmp_path / f"twice.{fmt}"
    assert CliRunner().invoke(app, ["redact", str(target), str(twice)]).exit_code == 0
    assert verdict(read_capture(twice)) == verdict(again)


def test_facecert_redact_refuses_unusable_input(tmp_path: Path) -> None:
    message = tmp_path / "one.json"
    message.write_text(json.dumps(example_for("device/faceRecognition")))
    result = CliRunner().invoke(app, ["redact", str(message), str(tmp_path / "out.json")])
    assert result.exit_code == 2 and "not a capture" in result.output
    assert CliRunner().invoke(app, ["redact", str(tmp_path / "none.har"), str(tmp_path / "o")]).exit_code == 2


def test_a_tiny_image_value_is_not_searched_for_in_free_text() -> None:
    """A device that sends "1" as an image (the server plan's harness device does, on purpose) must not turn
    every "1" of a report into a placeholder: a root cause's timestamp read "2026-facecert-redacted:…-0…".
    An image's real base64 is still taken out of free text wherever it appears."""
    redactor = Redactor()
    real = base64.b64encode(b"\xff\xd8\xff" + bytes(range(200))).decode("ascii")
    redactor.biometric("1")
    token = redactor.biometric(real)
    stamp = "first at 2026-12-01T23:58:32.815Z, exchange #1"
    assert redactor.text(stamp) == stamp
    assert redactor.text(f"it sent {real} again") == f"it sent {token} again"


def test_a_number_is_hashed_to_digits_that_stay_a_number() -> None:
    """A phone or ID card number gets a hash of as many digits (not hex), its first not 0: where the value
    stood as a JSON number (a device that sends its phone number unquoted), the file is still JSON."""
    redactor = Redactor(salt=b"s" * 32)
    for number in ("12345", "13800138000", "110101199003074578", "9"):
        token = redactor.identity(number)
        assert token.isdigit() and len(token) == len(number) and token[0] != "0" and token != number
    assert redactor.identity("0123").isdigit() and len(redactor.identity("0123")) == 4
    assert json.loads(redactor.text('{"phone": 12345}')) == {"phone": int(redactor.identity("12345"))}


def test_free_text_loses_a_value_only_where_it_stands_alone() -> None:
    """The document's phone number "12345" sat by chance in a float the HAR writer wrote (a stall clock
    reading, 0.24052356294712345): replaced there, session.har was no JSON (CI, 2026-12-03). Inside a longer
    number, word, hex digest or decimal it stays; alone (quoted, in a sentence, as a number) it goes."""
    redactor = Redactor(salt=b"s" * 32)
    token = redactor.identity("12345")
    digest = "299fada34d36c394a6b87bb0707ba12345be7ed2e799ef30ad53ca0000000000"
    kept = f'{{"_stall": [0.24052356294712345, 3.12345, 12345.5], "t": 1712345000, "h": "{digest}", "u": "x12345"}}'
    assert redactor.text(kept) == kept
    assert redactor.data(kept.encode()) == kept.encode()
    said = '{"phone": "12345", "log": "call 12345."}'
    assert redactor.text(said) == f'{{"phone": "{token}", "log": "call {token}."}}'
    assert redactor.data(b'["12345"]') == f'["{token}"]'.encode()


def test_a_name_that_holds_another_is_replaced_whole() -> None:
    """Seen in either order, "Zhang" does not cut "Zhang Wei" in two (its "Wei" left in the clear)."""
    for names in (("Zhang", "Zhang Wei"), ("Zhang Wei", "Zhang")):
        redactor = Redactor(salt=b"s" * 32)
        tokens = {name: redactor.identity(name) for name in names}
        assert redactor.text("Zhang Wei and Zhang") == f"{tokens['Zhang Wei']} and {tokens['Zhang']}"
        assert redactor.data("张三 Zhang Wei".encode()) == f"张三 {tokens['Zhang Wei']}".encode()


def test_a_redacted_report_folder_stays_json(tmp_path: Path) -> None:
    """scrub_folder over a HAR whose floats hold a name's digits: the file is rewritten valid JSON."""
    from facecert.core.redact import scrub_folder

    redactor = Redactor(salt=b"s" * 32)
    token = redactor.identity("12345")
    har = tmp_path / "session.har"
    har.write_text('{"_stall": [0.123451234512345], "text": "phone 12345"}', encoding="utf-8")  # as repr wrote it
    scrub_folder(tmp_path, redactor)
    assert json.loads(har.read_text(encoding="utf-8")) == {"_stall": [0.123451234512345], "text": f"phone {token}"}
