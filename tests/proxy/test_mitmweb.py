"""mitmweb loads the same addon; a faulty flow shows marked and commented in
its UI (read back through mitmweb's own REST API), a clean one unmarked."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.proxy_addons.process import Mitmdump, MitmdumpConfig
from tests.proxy.conftest import Upstream

pytestmark = pytest.mark.slow  # a mitmweb process: make test-fast leaves it out

_TOKEN = re.compile(r"token=(\w+)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _flows_when(client: httpx.Client, ready, timeout: float) -> list[dict]:
    """mitmweb's flow list once ``ready(flows)`` holds (judging runs just after the answer)."""
    deadline, pause = time.monotonic() + timeout, threading.Event()
    while True:
        flows = client.get("/flows").json()
        if ready(flows) or time.monotonic() > deadline:
            return flows
        pause.wait(0.05)


def test_mitmweb_marks_and_comments_faulty_flows(upstream: Upstream, mitm_confdir: Path, tmp_path: Path) -> None:
    web_port = _free_port()
    config = MitmdumpConfig(
        upstream=upstream.url,
        confdir=mitm_confdir,
        executable=Path(sys.executable).parent / "mitmweb",
        options={"facecert_report_dir": str(tmp_path)},
        extra_args=["--no-web-open-browser", "--web-host", "127.0.0.1", "--web-port", str(web_port)],
    )
    web = Mitmdump(config).start()
    try:
        assert web.wait_for_line("token=", timeout=10)
        token = next(m.group(1) for m in map(_TOKEN.search, web.lines) if m)
        faulty = {k: v for k, v in example_for("device/taskRequest").items() if k != "device_mac"}
        httpx.post(web.url + "/taskRequest", content=json.dumps(faulty), timeout=10)
        clean = {**example_for("device/taskRequest"), "device_id": "ID00000000000777"}  # another device: no cadence
        httpx.post(web.url + "/taskRequest", content=json.dumps(clean), timeout=10)
        with httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10) as ui:
            ui.get(f"/?token={token}")  # sets mitmweb's auth cookie
            flows = _flows_when(ui, lambda fl: len(fl) == 2 and fl[0].get("marked"), timeout=10)
            ui.cookies.set("_mitmproxy_xsrf", "facecert")  # tornado's check: cookie and header agree
            ran = ui.post("/commands/facecert.report", json={"arguments": []}, headers={"X-XSRFToken": "facecert"})
    finally:
        web.stop()
    assert flows[0]["marked"] == "🔴" or flows[0]["marked"] == ":red_circle:"
    assert "MSG-REQUIRED" in flows[0]["comment"] and "/device_mac" in flows[0]["comment"]
    assert not flows[1]["marked"] and not flows[1]["comment"]
    assert ran.status_code == 200, ran.text  # the on-demand report, as from mitmweb's command bar
    assert ran.json()["value"] == str(tmp_path / "summary.json")
