"""The addon only observes: every byte reaches the other side unchanged, and an
exception inside the addon leaves the flow untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facecert.core.examples import example_for
from tests.proxy.conftest import Upstream, blob, sha, start_proxy, summary_of

pytestmark = pytest.mark.slow  # mitmdump processes: make test-fast leaves it out

BIG = 20 * 1024 * 1024

REQUESTS: list[tuple[str, str, bytes]] = [
    ("valid poll", "/taskRequest", json.dumps(example_for("device/taskRequest")).encode()),
    ("malformed JSON", "/taskResult", b'{"device_id": "ID1", "code": 0,,, '),
    ("not UTF-8", "/faceRecognition", b'{"device_id": "\xff\xfe\x00"}'),
    ("empty", "/gpsReport", b""),
    ("binary to another path", "/upload/firmware.bin", blob(70_000)),
    ("20 MB request", "/faceRecognition", blob(BIG)),
]

ANSWERS: list[tuple[str, str, bytes]] = [
    ("malformed answer", "/taskRequest", b'{"request_type": "idleTime",}'),
    ("binary answer", "/deviceAlarm", blob(5000)),
]


@pytest.fixture(scope="module")
def proxied(
    module_upstream: Upstream, mitm_confdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Upstream, str, Path]]:
    report = tmp_path_factory.mktemp("transparency")
    dump = start_proxy(module_upstream.url, mitm_confdir, report)
    try:
        yield module_upstream, dump.url, report
    finally:
        dump.stop()


@pytest.mark.parametrize("name,path,body", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request_bytes_arrive_unchanged(proxied: tuple[Upstream, str, Path], name: str, path: str, body: bytes) -> None:
    upstream, url, _ = proxied
    before = len(upstream.seen)
    response = httpx.post(url + path, content=body, timeout=60)
    seen = upstream.seen[before:]
    assert len(seen) == 1, f"{name}: the upstream saw {len(seen)} requests"
    assert seen[0].request_sha == sha(body), f"{name}: request body changed on the way"
    assert seen[0].response_sha == sha(response.content), f"{name}: answer body changed on the way"


@pytest.mark.parametrize("name,path,answer", ANSWERS, ids=[a[0] for a in ANSWERS])
def test_answer_bytes_arrive_unchanged(
    proxied: tuple[Upstream, str, Path], name: str, path: str, answer: bytes
) -> None:
    upstream, url, _ = proxied
    upstream.enqueue(path, answer)
    response = httpx.post(url + path, content=b"{}", timeout=30)
    assert sha(response.content) == sha(answer)
    assert upstream.seen[-1].response_sha == sha(answer)


def test_big_answer_and_get_download_unchanged(proxied: tuple[Upstream, str, Path]) -> None:
    upstream, url, _ = proxied
    response = httpx.get(url + f"/blob/{BIG}", timeout=60)
    assert len(response.content) == BIG
    assert sha(response.content) == upstream.seen[-1].response_sha == sha(blob(BIG))


def test_exception_in_addon_is_contained(upstream: Upstream, mitm_confdir: Path, tmp_path: Path) -> None:
    capture = json.dumps(example_for("device/faceRecognition")).encode()
    dump = start_proxy(upstream.url, mitm_confdir, tmp_path, facecert_test_raise="/faceRecognition")
    try:
        first = httpx.post(dump.url + "/faceRecognition", content=capture, timeout=30)
        poll = httpx.post(dump.url + "/taskRequest", content=json.dumps(example_for("device/taskRequest")), timeout=30)
        assert dump.wait_for_line("internal error while judging POST /faceRecognition", timeout=10)
    finally:
        assert dump.stop() == 0
    assert first.status_code == 200 and upstream.seen[0].request_sha == sha(capture)
    assert upstream.seen[0].response_sha == sha(first.content)
    assert poll.status_code == 200
    summary = summary_of(tmp_path)
    assert summary["addon_errors"] == 1
    assert summary["flows"] == 2  # the flow that broke the addon is still in the session and the HAR
    assert "InjectedFault" in summary["addon_error_details"][0]["error"]
    assert not any("Traceback" in line for line in dump.lines)
