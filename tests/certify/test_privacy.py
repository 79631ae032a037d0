"""Privacy by default, end to end: a certification of our reference device writes no face
and no name anywhere in its report folder (every file searched byte for byte, the SQLite
session too), and writes all of them with --keep-personal-data; the manifest says which."""

from __future__ import annotations

import base64
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from facecert.core.captures import read_capture
from facecert.core.contract import get_contract
from facecert.core.redact import Redactor
from facecert.core.rules.message import resolve_pointer
from facecert.mock_device.media import b64, capture_jpeg, tiny_png
from tests.support import facecert

pytestmark = pytest.mark.slow  # two certification runs: make test-fast leaves it out

TAGS = "captures or users"


def certify(report: Path, *extra: str) -> dict:
    done = facecert(
        "certify",
        "device",
        "--demo",
        "--no-html",
        "--tags",
        TAGS,
        "--report",
        str(report),
        "--listen",
        "127.0.0.1:0",
        *extra,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((report / "summary.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Both runs at once: they mostly wait on protocol time."""
    base = tmp_path_factory.mktemp("privacy")
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="privacy") as pool:
        redacted = pool.submit(certify, base / "redacted", "--keep-salt")
        kept = pool.submit(certify, base / "kept", "--keep-personal-data")
        for run in (redacted, kept):
            run.result()  # a failed run raises here, its output in the message
    return base / "redacted", base / "kept"


def personal_values(har: Path) -> tuple[set[str], set[str]]:
    """(base64 pictures, identity values) of every message of the run, where the schemas mark them."""
    contract, redactor = get_contract(), Redactor()
    images, names = set(), set()
    for ex in read_capture(har):
        request_schema, answer_schema = redactor._schemas(ex)
        for body, schema in ((ex.request_body, request_schema), (ex.response_body, answer_schema)):
            try:
                message = json.loads(body or b"")
            except ValueError:
                continue
            if not schema or not isinstance(message, dict):
                continue
            for pointer, kind in contract.personal_fields(schema, message).items():
                value = resolve_pointer(message, pointer)
                if isinstance(value, str) and len(value) >= 3:
                    (images if kind == "biometric" else names).add(value)
    return images, names


def forms(value: str) -> list[bytes]:
    """How a value can sit in a file: UTF-8, JSON-escaped, and for a picture its bytes."""
    out = [value.encode(), json.dumps(value)[1:-1].encode(), json.dumps(value)[1:-1].replace("/", "\\/").encode()]
    try:
        raw = base64.b64decode(value, validate=True)
        if len(raw) >= 64:
            out.append(raw[len(raw) // 2 : len(raw) // 2 + 64])  # a run from the middle: the picture, not its header
    except ValueError:
        pass
    return out


def every_byte(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink())


def alone(form: bytes) -> re.Pattern[bytes]:
    """``form`` where it stands alone (written here with look-arounds, apart from facecert.core.redact's
    replace_alone): an ASCII letter or digit at its edge touches no other, an edge digit continues no decimal
    number. Inside a longer run it is chance, not the value: the phone number "12345" turns up in a sha256 sum
    of manifest.json (seen: ``...ba12345be7...``) and in a float's digits (``0.24052356294712345``)."""
    head, tail = form[:1], form[-1:]
    left = rb"(?<![0-9A-Za-z])" if head.isalnum() and head.isascii() else b""
    left += rb"(?<![0-9]\.)" if head.isdigit() else b""
    right = rb"(?![0-9A-Za-z])" if tail.isalnum() and tail.isascii() else b""
    right += rb"(?!\.[0-9])" if tail.isdigit() else b""
    return re.compile(left + re.escape(form) + right)


def leaks(form: bytes, data: bytes) -> list[bytes]:
    """Where ``form`` stands alone in ``data``, with 40 bytes either side."""
    return [data[max(0, hit.start() - 40) : hit.end() + 40] for hit in alone(form).finditer(data)]


def test_leaks_skips_a_digest_and_a_number_only() -> None:
    digest = b"299fada34d36c394a6b87bb0707ba12345be7ed2e799ef30ad53ca0000000000"
    assert leaks(b"12345", b'{"sha256": "' + digest + b'"}') == []
    assert leaks(b"12345", b'{"_stall": [0.24052356294712345, 3.12345, 12345.5]}') == []
    assert leaks(b"12345", b'{"phone_number": "12345", "sha256": "' + digest + b'"}')
    assert leaks(b"12345", b'{"n": 12345}') and leaks(b"12345", b"tel:12345.")
    assert leaks(b"ls", b'{"name": "ls"}')


def test_no_face_and_no_name_in_the_report_by_default(runs) -> None:
    redacted, kept = runs
    images, names = personal_values(kept / "session.har")
    sent = {b64(capture_jpeg(seed)) for seed in range(4)} | {b64(tiny_png())}
    assert images and names, "the plan sent no picture or no name: the test would prove nothing"
    assert images & sent, "the mock device's pictures are not among what the schemas mark"
    data = every_byte(redacted)
    assert (redacted / "session.db").is_file() and b"facecert-redacted:image/jpeg" in data
    for value in sorted(images | names | sent):
        for form in forms(value):
            assert not leaks(form, data), f"{value[:30]!r} is in the redacted report: {leaks(form, data)[:3]}"


def test_all_of_them_present_with_keep_personal_data(runs) -> None:
    _, kept = runs
    images, names = personal_values(kept / "session.har")
    data = every_byte(kept)
    for value in sorted(images | names):
        assert any(form in data for form in forms(value)[:3]), f"{value[:30]!r} is missing from the kept report"
    db = (kept / "session.db").read_bytes()
    assert any(form in db for value in images for form in forms(value)), "the kept session.db lost its pictures"


def test_the_summary_and_the_manifest_say_what_was_kept(runs) -> None:
    redacted, kept = runs
    summary = json.loads((redacted / "summary.json").read_text(encoding="utf-8"))
    predicate = json.loads((redacted / "manifest.json").read_text(encoding="utf-8"))["predicate"]
    assert summary["personal_data"] == predicate["personal_data"] == "redacted"
    assert len(predicate["redaction_salt"]) == 64 and summary["redaction_salt"] == predicate["redaction_salt"]
    kept_predicate = json.loads((kept / "manifest.json").read_text(encoding="utf-8"))["predicate"]
    assert kept_predicate["personal_data"] == "kept" and kept_predicate["redaction_salt"] is None
    for folder in runs:
        done = facecert("verify", str(folder), timeout=60)
        assert done.returncode == 0, done.stdout


def test_the_redacted_session_validates_as_the_kept_one(runs) -> None:
    redacted, kept = runs

    def verdict(har: Path) -> list:
        done = facecert("validate", "--json", str(har), timeout=120)
        assert done.returncode in (0, 1), done.stderr
        return sorted((f["rule"], f.get("pointer", "")) for f in json.loads(done.stdout)["findings"])

    assert verdict(redacted / "session.har") == verdict(kept / "session.har")
