"""The proxy seals its report folder at shutdown: in-process (mitmproxy's test context)
and `facecert proxy` stopped with Ctrl-C (SIGINT) between a real device client and a real upstream."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mitmproxy.test import taddons, tflow, tutils

from facecert.core.examples import example_for
from facecert.evidence import verify_report
from facecert.proxy_addons.addon import FacecertAddon
from tests.evidence.conftest import verify
from tests.proxy.conftest import Upstream, _serve
from tests.proxy.test_cli import Output
from tests.support import start_proxy

pytestmark = pytest.mark.slow  # facecert proxy runs, stopped by signals: make test-fast leaves it out

_ADDRESS = re.compile(r"server_url at (http://127\.0\.0\.1:\d+)")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from _serve()


def test_the_addon_writes_the_manifest_last_at_shutdown(tmp_path: Path) -> None:
    addon = FacecertAddon()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, facecert_report_dir=str(tmp_path), facecert_time_scale="0.05")
        poll = example_for("device/taskRequest")
        flow = tflow.tflow(
            req=tutils.treq(method=b"POST", path=b"/taskRequest", content=json.dumps(poll).encode()),
            resp=tutils.tresp(content=json.dumps(example_for("server/tasks/idleTime")).encode()),
        )
        addon.response(flow)
        addon.drain()
        tctx.master.commands.execute("facecert.report")
        assert not (tmp_path / "manifest.json").exists()  # an on-demand report is not the end of the run
        addon.done()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    names = {s["name"] for s in manifest["subject"]}
    assert {"summary.json", "junit.xml", "session.har", "session.jsonl"} <= names
    predicate = manifest["predicate"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert predicate["plan"] == "proxy" and predicate["verdict"] == summary["verdict"]
    assert predicate["peer"] == {"devices": [poll["device_id"]]} and predicate["time_scale"] == 0.05
    assert predicate["scenarios"] == []
    assert verify_report(tmp_path).code == 0
    assert addon.session is not None and addon.session.error_count == 0


def test_facecert_proxy_stopped_with_ctrl_c_leaves_a_verifiable_folder(upstream: Upstream, tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = start_proxy(upstream.url, report)
    output = Output(proc)
    try:
        address = output.wait_for(_ADDRESS, timeout=30)
        assert address, output.text
        answer = httpx.post(
            address.group(1) + "/taskRequest", content=json.dumps(example_for("device/taskRequest")), timeout=10
        )
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    text = output.close()
    assert "internal error while" not in text, text
    checked = verify(report)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = {s["name"] for s in json.loads((report / "manifest.json").read_text())["subject"]}
    assert {"summary.json", "session.har", "session.jsonl"} <= names
    (report / "session.jsonl").write_bytes((report / "session.jsonl").read_bytes() + b"{}\n")  # a forged flow
    checked = verify(report)
    assert checked.returncode == 1 and checked.stdout.startswith("changed: session.jsonl")
