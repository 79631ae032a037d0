"""A disk that fills up under the proxy's record: every flow still passes and is judged live; the record
lacks the flows it could not take, which the console says once as the spell begins and once as it ends,
and the summary counts (``unrecorded``). Before, each such flow was a "facecert: internal error while
recording" line, as if facecert had a bug, and nothing said the record was incomplete."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.core.model import Exchange
from facecert.proxy_addons.session import ProxySession, SessionOptions
from tests.proxy.conftest import Upstream, summary_of
from tests.proxy.test_cli import _ADDRESS, Output
from tests.support import SCALE, fill_disk, small_tmpfs, start_proxy


def _poll(at: float) -> Exchange:
    body = json.dumps({**example_for("device/taskRequest"), "time_stamp": int(at)}).encode()
    answer = json.dumps(example_for("server/tasks/idleTime")).encode()
    return Exchange("POST", "/taskRequest", body, 200, answer, started=at, ended=at + 0.01, peer="10.0.0.9")


def test_flows_the_disk_refuses_are_judged_counted_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = ProxySession(SessionOptions(time_scale=SCALE))
    session.open_record(tmp_path)
    assert session.record is not None and session.record._fd is not None
    good = os.dup(session.record._fd)
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC, as a full disk gives
    try:
        with caplog.at_level(logging.WARNING, logger="facecert.proxy"):
            session.keep(_poll(1_800_000_000.0))
            os.dup2(full, session.record._fd)
            for i in range(1, 6):
                exchange = _poll(1_800_000_000.0 + i)
                session.keep(exchange)
                assert session.judge(exchange) is not None  # judged live all the same
            os.dup2(good, session.record._fd)
            session.keep(_poll(1_800_000_010.0))
    finally:
        os.close(full)
        os.close(good)
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("facecert: cannot record: No space left on device (") and "session.jsonl" in said[0]
    assert said[1] == "facecert: records again: 5 flows passed on unrecorded meanwhile"
    stats = session.stats()
    assert (stats["flows"], stats["recorded"], stats["unrecorded"], stats["addon_errors"]) == (7, 2, 5, 0)
    assert "No space left on device" in str(stats["unrecorded_cause"])
    session.record.close()
    lines = (tmp_path / "session.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["started"] for line in lines] == [1_800_000_000.0, 1_800_000_010.0]


@pytest.mark.slow
def test_facecert_proxy_on_a_disk_that_fills_up(upstream: Upstream, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        report = disk / "report"
        proc = start_proxy(upstream.url, report, env={**os.environ, "MITMPROXY_CONFDIR": str(tmp_path / "conf")})
        output = Output(proc)
        try:
            address = output.wait_for(_ADDRESS, timeout=30)
            assert address, output.text
            url = address.group(1) + "/taskRequest"
            poll = json.dumps(example_for("device/taskRequest"))
            with httpx.Client(timeout=10) as client:
                before = [client.post(url, content=poll).status_code for _ in range(2)]
                filler = fill_disk(disk)
                during = [client.post(url, content=poll).status_code for _ in range(12)]
                filler.unlink()
                after = client.post(url, content=poll).status_code
                closed = re.compile(r"records again: \d+ flows(?!.*cannot record)", re.S)  # the last spell ended
                assert output.wait_for(closed, timeout=10), output.text
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        text = output.close()
        summary = summary_of(report)
    assert before + during + [after] == [200] * 15, text  # the traffic passes, full disk or not
    assert "Traceback" not in text and "internal error while" not in text, text
    # one line as each spell begins, one as it ends. A disk full to the last block can still take a short
    # record into the free end of the file's last page, so one filling may give two spells (CI, 2026-12-02)
    began = text.count("facecert: cannot record: No space left on device")
    ended = [int(n) for n in re.findall(r"records again: (\d+) flows passed on unrecorded meanwhile", text)]
    assert began >= 1 and began == len(ended), text
    unrecorded = summary["unrecorded"]
    assert 1 <= unrecorded <= 12 and summary["recorded"] == 15 - unrecorded and summary["flows"] == 15, summary
    assert sum(ended) == unrecorded, (ended, summary)
    assert f"the record is incomplete: {unrecorded} flow(s) passed on unrecorded" in " ".join(text.split()), text


@pytest.mark.slow
def test_reports_on_a_full_disk_give_no_verdict_and_no_earlier_one(upstream: Upstream, tmp_path: Path) -> None:
    """The summary cannot be written: exit 2 and one line pointing at the proxy's own lines; an earlier run's
    summary.json in the folder (a pass) is not read as this run's."""
    with small_tmpfs(tmp_path / "disk") as disk:
        report = disk / "report"
        report.mkdir()
        (report / "summary.json").write_text(json.dumps({"verdict": "pass", "findings": []}), encoding="utf-8")
        proc = start_proxy(upstream.url, report, env={**os.environ, "MITMPROXY_CONFDIR": str(tmp_path / "conf")})
        output = Output(proc)
        try:
            assert output.wait_for(_ADDRESS, timeout=30), output.text
            fill_disk(disk)
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
        text = " ".join(output.close().split())
        assert not (report / "summary.json").exists()
    assert code == 2, text
    assert "facecert: the disk would not take it while writing " in text and "(No space left on device)" in text
    assert "final report: its summary could not be written (above): no verdict to read" in text, text
    assert "the proxy could not write it (its lines above say why)" in text, text
    assert "Traceback" not in text and "internal error while" not in text, text


@pytest.mark.parametrize(
    ("final", "sealed", "said"),
    [
        (False, True, "the final summary could not be written"),
        (True, False, "the reports are not sealed: not all of them could be written"),
    ],
    ids=["only an interim summary", "a report after the summary refused"],
)
def test_a_summary_that_is_not_the_whole_final_report_is_exit_2(
    tmp_path: Path, final: bool, sealed: bool, said: str
) -> None:
    """What the proxy leaves when the disk refused part of its final report: an interim summary (written on
    request during the run), or the summary without the seal over the rest. Neither is a verdict."""
    from rich.console import Console

    from facecert.evidence import MANIFEST
    from facecert.proxy_addons.runner import print_summary

    summary = {"verdict": "pass", "findings": [], "final": final, "exchanges": 0, "counts": {}}
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    if sealed:
        (tmp_path / MANIFEST).write_text("{}", encoding="utf-8")
    console = Console(record=True, width=200)
    assert print_summary(tmp_path, console) == 2
    assert said in console.export_text()
