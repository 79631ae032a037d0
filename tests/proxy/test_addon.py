"""The addon's hooks in-process, with mitmproxy's own test context and flows:
options, marks and comments, the on-demand report command, containment."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow, tutils

from facecert.core.examples import example_for
from facecert.proxy_addons.addon import FacecertAddon


def _flow(path: str, body: bytes, answer: bytes, status: int = 200):
    request = tutils.treq(method=b"POST", path=path.encode(), content=body)
    response = tutils.tresp(status_code=status, content=answer)
    return tflow.tflow(req=request, resp=response)


def _options(tctx: taddons.context, addon: FacecertAddon, report: Path, **extra: object) -> None:
    tctx.configure(addon, facecert_report_dir=str(report), facecert_time_scale="0.05", **extra)


def test_bad_options_are_refused_clearly(tmp_path: Path) -> None:
    addon = FacecertAddon()
    with taddons.context(addon) as tctx:
        _options(tctx, addon, tmp_path)  # running: a bad change is refused and rolled back by mitmproxy
        for name, value, why in (
            ("facecert_protocol_version", "7.7", "facecert_protocol_version"),
            ("facecert_time_scale", "fast", "not a number"),
            ("facecert_tolerance", "3", "outside"),
        ):
            with pytest.raises(exceptions.OptionsError, match=why):
                tctx.configure(addon, **{name: value})
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(addon, facecert_profile="lenient")  # not one of the choices


def test_flow_is_marked_commented_and_otherwise_untouched(tmp_path: Path) -> None:
    addon = FacecertAddon()
    with taddons.context(addon) as tctx:
        _options(tctx, addon, tmp_path)
        poll = example_for("device/taskRequest")
        del poll["device_mac"]
        flow = _flow(
            "/taskRequest", json.dumps(poll).encode(), json.dumps(example_for("server/tasks/idleTime")).encode()
        )
        before = flow.get_state()
        addon.response(flow)
        after = flow.get_state()
    assert flow.marked == ":red_circle:"
    assert "MSG-REQUIRED" in flow.comment
    for state in (before, after):
        state.pop("marked"), state.pop("comment")
    assert before == after  # request, response, timestamps: nothing else changed


def test_clean_flow_stays_unmarked_and_non_protocol_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    addon = FacecertAddon()
    caplog.set_level(logging.INFO, logger="facecert.proxy")
    with taddons.context(addon) as tctx:
        _options(tctx, addon, tmp_path)
        capture = example_for("device/faceRecognition")
        answer = {"code": 0, "snap_time": capture["snap_time"], "frpic_name": capture["frpic_name"], "log": "ok"}
        clean = _flow("/faceRecognition", json.dumps(capture).encode(), json.dumps(answer).encode())
        addon.response(clean)
        image = tflow.tflow(
            req=tutils.treq(method=b"GET", path=b"/faces/1.jpg", content=b""),
            resp=tutils.tresp(content=b"\xff\xd8\xff"),
        )
        addon.response(image)
    assert clean.marked == "" and clean.comment == ""
    assert "not protocol traffic, passed through: GET" in caplog.text
    assert addon.session is not None and addon.session.engine.other_traffic == 1


def test_report_command_writes_reports_on_demand(tmp_path: Path) -> None:
    addon = FacecertAddon()
    with taddons.context(addon) as tctx:
        _options(tctx, addon, tmp_path)
        task = {**example_for("server/tasks/getDevStatus"), "request_id": 4242}
        addon.response(
            _flow("/taskRequest", json.dumps(example_for("device/taskRequest")).encode(), json.dumps(task).encode())
        )
        written = tctx.master.commands.execute("facecert.report")
        on_demand = json.loads(Path(written).read_text())
        addon.done()
    final = json.loads((tmp_path / "summary.json").read_text())
    assert on_demand["final"] is False and on_demand["exchanges"] == 1
    # the task never got its result: that is known only at shutdown, not in the on-demand report
    assert "RESULT-MISSING" not in {f["rule"] for f in on_demand["findings"]}
    assert final["final"] is True
    assert (tmp_path / "session.har").exists() and (tmp_path / "junit.xml").exists()


def test_broken_flow_object_is_contained(tmp_path: Path) -> None:
    addon = FacecertAddon()
    with taddons.context(addon) as tctx:
        _options(tctx, addon, tmp_path)
        flow = _flow("/taskRequest", b"{}", b"{}")
        flow.request.timestamp_start = None  # an Exchange cannot be built sanely
        flow.response.headers = None
        addon.response(flow)
        addon.error(tflow.tflow(err=True))
    assert addon.session is not None and len(addon.session.errors) == 1
    assert "reading a flow" in addon.session.errors[0].where


def test_options_cannot_change_after_traffic(tmp_path: Path) -> None:
    addon = FacecertAddon()
    with taddons.context(addon) as tctx:
        _options(tctx, addon, tmp_path)
        addon.response(_flow("/gpsReport", b"{}", b""))
        with pytest.raises(exceptions.OptionsError, match="cannot change"):
            tctx.configure(addon, facecert_profile="field")
        tctx.configure(addon, facecert_report_dir=str(tmp_path / "elsewhere"))  # harmless: allowed


def test_an_answer_the_proxy_held_is_not_the_devices_lateness(tmp_path: Path) -> None:
    """The answer with idleTime reached the proxy 0.5 s before the proxy passed it on (its record written
    slowly, its loop busy with another flow); the device polled 1.0 s after it heard it, on time (time scale
    0.05: 0.75-1.30 s). Before, the gap was measured from when the proxy had it and the device failed
    CADENCE-IDLE; now the hold widens the window, and the poll is HARNESS-STALLED. A second poll, late by
    itself (1.8 s after a prompt answer), still fails."""
    addon = FacecertAddon()
    poll = json.dumps({**example_for("device/taskRequest"), "device_id": "PROXYHELD00001"}).encode()
    idle = json.dumps(example_for("server/tasks/idleTime")).encode()

    def exchange(started: float, ended: float) -> tflow.HTTPFlow:
        flow = _flow("/taskRequest", poll, idle)
        flow.request.timestamp_start = flow.request.timestamp_end = started
        flow.response.timestamp_start = flow.response.timestamp_end = ended
        addon.requestheaders(flow)
        addon.response(flow)
        return flow

    with taddons.context(addon) as tctx:
        _options(tctx, addon, tmp_path)
        time.sleep(0.6)  # the proxy runs: what it holds from now on is its own hold
        now = time.time()
        exchange(now - 0.51, now - 0.5)  # answered by the server 0.5 s ago, passed on only now
        time.sleep(1.0)
        on_time = exchange(now + 1.0, time.time())  # 1.0 s after the device heard it, 1.5 s after the stamp
        time.sleep(1.8)
        late = exchange(time.time(), time.time())  # 1.8 s after a prompt answer: the device's own lateness
    assert "ERROR CADENCE-IDLE" not in on_time.comment, on_time.comment
    assert "WARNING HARNESS-STALLED" in on_time.comment, on_time.comment
    assert "ERROR CADENCE-IDLE" in late.comment, late.comment
