"""The addon's hooks in-process, with mitmproxy's own test context and flows:
options, marks and comments, the on-demand report command, containment."""

from __future__ import annotations

import json
import logging
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
