"""`facecert proxy --baseline`: a real mitmdump between a device double and the upstream; the
second session fails only on the finding the first did not have."""

from __future__ import annotations

import io
import json
import re
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from facecert.core.examples import example_for
from facecert.proxy_addons.runner import print_summary
from tests.proxy.conftest import Upstream, summary_of
from tests.proxy.test_cli import Output
from tests.support import start_proxy

pytestmark = pytest.mark.slow  # mitmdump processes: make test-fast leaves it out

FACECERT = str(Path(sys.executable).parent / "facecert")
_ADDRESS = re.compile(r"server_url at (http://127\.0\.0\.1:\d+)")


def session(upstream: Upstream, report: Path, polls: list[dict[str, Any]], *extra: str) -> tuple[int, str]:
    """One proxy session: start, send the polls, Ctrl-C; (exit code, output)."""
    proc = start_proxy(upstream.url, report, *extra)
    output = Output(proc)
    try:
        address = output.wait_for(_ADDRESS, timeout=30)
        assert address, output.text
        for poll in polls:
            assert (
                httpx.post(address.group(1) + "/taskRequest", content=json.dumps(poll), timeout=10).status_code == 200
            )
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    return code, output.close()


def poll_without(*names: str) -> dict[str, Any]:
    body = example_for("device/taskRequest")
    for name in names:
        del body[name]
    return body


def test_proxy_baseline_fails_only_on_the_new_finding(upstream: Upstream, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    # two polls at once: a device without device_name that also polls too fast (CADENCE-IDLE)
    code, text = session(
        upstream, tmp_path / "first", [poll_without("device_name")] * 2, "--write-baseline", str(baseline)
    )
    assert code == 1, text
    saved = json.loads(baseline.read_text(encoding="utf-8"))["findings"]
    assert sorted((f["rule"], f["pointer"]) for f in saved) == [("CADENCE-IDLE", ""), ("MSG-REQUIRED", "/device_name")]
    # the known defect alone, against the baseline: green (the first session's report read again)
    quiet = Console(file=io.StringIO())
    assert (
        print_summary(tmp_path / "first", quiet, json.loads(baseline.read_text(encoding="utf-8")), str(baseline)) == 0
    )
    assert "0 new, 0 fixed, 2 unchanged" in quiet.file.getvalue()
    code, text = session(
        upstream,
        tmp_path / "second",
        [poll_without("device_name"), poll_without("device_name", "device_mac")],
        "--baseline",
        str(baseline),
    )
    assert code == 1, text
    block = summary_of(tmp_path / "second")["baseline"]
    assert block["counts"] == {"new": 1, "fixed": 0, "unchanged": 2}
    assert [i["pointer"] for i in block["new"]] == ["/device_mac"]
    assert "new   MSG-REQUIRED (device) taskRequest /device_mac" in text and "Traceback" not in text
