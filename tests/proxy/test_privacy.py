"""What the proxy writes holds no face and no name by default (issue 13, part 3):
a capture and an addUser with a base64 face pass through a real mitmdump, and
neither the record nor the HAR holds the image or the user's name."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.core.redact import reset
from tests.proxy.conftest import Upstream, start_proxy

pytestmark = pytest.mark.slow  # a mitmdump process: make test-fast leaves it out


def _send_capture(proxy_url: str) -> tuple[str, str]:
    capture = example_for("device/faceRecognition")
    capture["user_name"] = "Zhang Weiming"
    answer = httpx.post(proxy_url + "/faceRecognition", content=json.dumps(capture), timeout=10)
    assert answer.status_code == 200
    return capture["image"], capture["user_name"]


def test_the_record_and_har_hold_no_face_and_no_name(
    upstream: Upstream, mitm_confdir: Path, tmp_path: Path, monkeypatch
) -> None:
    for name in ("FACECERT_REDACTION_SALT", "FACECERT_KEEP_PERSONAL_DATA"):
        monkeypatch.delenv(name, raising=False)
    reset()
    report = tmp_path / "report"
    proxy = start_proxy(upstream.url, mitm_confdir, report)
    try:
        image, user = _send_capture(proxy.url)
    finally:
        proxy.stop()
    face = base64.b64decode(image)
    written = b"".join(p.read_bytes() for p in report.rglob("*") if p.is_file())
    assert (report / "session.har").exists() and (report / "session.jsonl").exists()
    for secret in (image[:200].encode(), user.encode(), base64.b64encode(face[100:164])):
        assert secret not in written, secret[:40]
    assert b"facecert-redacted:image/" in written
