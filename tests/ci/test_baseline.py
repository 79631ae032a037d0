"""Baselines (facecert/baseline.py): a red run turned green by its baseline until something new
appears, then red with only the new thing listed; for validate (captures and a corpus folder)
and certify (our reference device broken by fault knobs). The proxy's: tests/proxy/test_proxy_baseline.py."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from facecert.baseline import BaselineError, baseline_document, compare, load_baseline
from facecert.core.captures import write_har, write_jsonl
from facecert.core.examples import example_for
from facecert.samples import ConversationBuilder
from tests.support import facecert

pytestmark = pytest.mark.slow  # certification runs: make test-fast leaves it out

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``facecert ARGS`` as its own process (forked: tests.support.facecert) in the checkout, stdin /dev/null."""
    return facecert(*args, cwd=ROOT, timeout=timeout)


def finding(rule: str, pointer: str = "", severity: str = "error", endpoint: str = "taskRequest") -> dict[str, Any]:
    return {
        "rule": rule,
        "party": "device",
        "endpoint": endpoint,
        "pointer": pointer,
        "severity": severity,
        "message": f"{rule} at {pointer}",
    }


# ---- the comparison itself (pure) ---------------------------------------------------
def test_new_fixed_unchanged_by_key_not_by_exchange() -> None:
    before = {
        "findings": [
            finding("MSG-REQUIRED", "/device_name"),
            finding("MSG-REQUIRED", "/device_name"),
            finding("CADENCE-IDLE"),
        ]
    }
    now = {
        "findings": [
            finding("MSG-REQUIRED", "/device_name"),
            finding("MSG-TYPE", "/time_stamp"),
            finding("MSG-UNKNOWN-FIELD", "/x", severity="info"),
        ]
    }
    result = compare(before, now)
    assert [i.key for i in result.new] == [("MSG-TYPE", "device", "taskRequest", "/time_stamp")]
    assert [i.key[0] for i in result.fixed] == ["CADENCE-IDLE"]
    assert [i.key[0] for i in result.unchanged] == ["MSG-REQUIRED"] and result.failed
    assert result.counts() == {"new": 1, "fixed": 1, "unchanged": 1}  # info findings never gate


def test_a_fixed_finding_that_comes_back_is_new_after_the_baseline_moves_on() -> None:
    first = {"findings": [finding("MSG-REQUIRED", "/device_name"), finding("CADENCE-IDLE")]}
    fixed = {"findings": [finding("MSG-REQUIRED", "/device_name")]}
    assert not compare(first, fixed).failed and compare(first, fixed).counts()["fixed"] == 1
    ratchet = baseline_document(fixed, "validate")  # the green run saves itself
    back = compare(ratchet, first)
    assert back.failed and [i.key[0] for i in back.new] == ["CADENCE-IDLE"]


def test_scenarios_new_when_they_passed_before_or_fail_on_a_new_rule() -> None:
    def scenario(name: str, verdict: str, rules: list[str]) -> dict[str, Any]:
        return {"feature": "Polling cadence", "name": name, "verdict": verdict, "rules": rules}

    before = {
        "scenarios": [
            scenario("idle", "fail", ["CADENCE-IDLE"]),
            scenario("busy", "pass", []),
            scenario("tasks", "expected_fail", ["TASK-RESULT"]),
        ]
    }
    now = {
        "scenarios": [
            scenario("idle", "fail", ["CADENCE-IDLE", "MSG-REQUIRED"]),
            scenario("busy", "error", ["POLL-STOPPED"]),
            scenario("tasks", "expected_fail", ["TASK-RESULT"]),
        ]
    }
    result = compare(before, now)
    assert sorted(i.key[1:] for i in result.new) == [("busy", "POLL-STOPPED"), ("idle", "MSG-REQUIRED")]
    assert [i.key[1:] for i in result.unchanged] == [("idle", "CADENCE-IDLE")]


def test_unusable_baselines_are_refused(tmp_path: Path) -> None:
    (tmp_path / "not.json").write_text("{oops")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    for path in (tmp_path / "missing.json", tmp_path / "not.json", tmp_path / "other.json", tmp_path):
        with pytest.raises(BaselineError):
            load_baseline(path)


# ---- validate ---------------------------------------------------------------------------
def broken_session(path: Path, *, drop: tuple[str, ...] = ("device_name",), device: str = "ID00000000000007") -> Path:
    """A short capture whose polls lack the fields in ``drop``."""
    builder = ConversationBuilder(device)
    original = builder.poll_body

    def poll_body() -> dict[str, Any]:
        body = original()
        for name in drop:
            body.pop(name, None)
        return body

    builder.poll_body = poll_body
    builder.cycle("server/tasks/getDevStatus")
    builder.idle()
    return write_har(builder.exchanges, path, creator="test")


def test_validate_baseline_red_then_green_then_red_with_only_the_new_finding(tmp_path: Path) -> None:
    known = broken_session(tmp_path / "known.har")
    red = run("validate", str(known), "--json")
    assert red.returncode == 1, red.stdout[-2000:]
    baseline = tmp_path / "baseline.json"
    assert run("validate", str(known), "--write-baseline", str(baseline)).returncode == 1
    green = run("validate", str(known), "--baseline", str(baseline))
    assert green.returncode == 0, green.stdout
    assert "Baseline" in green.stdout and "0 new, 0 fixed, 1 unchanged" in green.stdout
    worse = broken_session(tmp_path / "worse.har", drop=("device_name", "device_mac"))
    again = run("validate", str(worse), "--baseline", str(baseline), "--json")
    assert again.returncode == 1
    block = json.loads(again.stdout)["baseline"]
    assert block["counts"] == {"new": 1, "fixed": 0, "unchanged": 1}
    assert [(i["rule"], i["pointer"]) for i in block["new"]] == [("MSG-REQUIRED", "/device_mac")]
    shown = run("validate", str(worse), "--baseline", str(baseline))
    assert "new   MSG-REQUIRED (device) taskRequest /device_mac" in shown.stdout
    assert "/device_name" not in shown.stdout.split("Baseline", 1)[1]  # the known one is not listed again
    assert run("validate", str(known), "--baseline", str(tmp_path / "nope.json")).returncode == 2


def flows_file(path: Path, builder: ConversationBuilder) -> Path:
    """The builder's exchanges as a mitmproxy flow file (what mitmdump -w writes)."""
    from mitmproxy import io
    from mitmproxy.test import tflow, tutils

    with path.open("wb") as handle:
        writer = io.FlowWriter(handle)
        for ex in builder.exchanges:
            flow = tflow.tflow(
                req=tutils.treq(
                    method=b"POST",
                    path=ex.path.encode(),
                    content=ex.request_body,
                    timestamp_start=ex.started,
                    timestamp_end=ex.started,
                ),
                resp=tutils.tresp(content=ex.response_body, timestamp_start=ex.ended, timestamp_end=ex.ended),
            )
            writer.add(flow)
    return path


def corpus(folder: Path) -> Path:
    """Field captures of three devices in three formats, nested, with a report's other files beside them."""
    (folder / "site-a" / "2024").mkdir(parents=True)
    (folder / "site-b").mkdir()
    clean = ConversationBuilder("ID00000000000001")
    clean.cycle("server/tasks/getDevStatus")
    clean.idle()
    write_har(clean.exchanges, folder / "site-a" / "clean.har", creator="test")
    old_alarm = ConversationBuilder("ID00000000000002")  # firmware of protocol 1.3: no device_ip in its alarms
    old_alarm.cycle("server/tasks/getDevStatus")
    alarm = example_for("device/deviceAlarm")
    alarm.pop("device_ip")
    alarm["device_id"] = old_alarm.device_id
    old_alarm._post("/deviceAlarm", alarm, {"code": 0, "log": "ok"})
    write_jsonl(old_alarm.exchanges, folder / "site-a" / "2024" / "alarms.jsonl")
    capture = ConversationBuilder("ID00000000000003")  # a capture without the structured fields 2.0 requires
    capture.cycle("server/tasks/getDevStatus")
    body = example_for("device/faceRecognition")
    for name in ("car_label", "car_type", "car_color", "eva_age", "eva_sex", "car_brand", "car_number"):
        body.pop(name, None)
    body.update(device_id=capture.device_id, frpic_name="FACE_1.jpg")
    capture._post("/faceRecognition", body, {"code": 0, "snap_time": body["snap_time"], "frpic_name": "FACE_1.jpg"})
    flows_file(folder / "site-b" / "capture.mitm", capture)
    (folder / "site-b" / "summary.json").write_text('{"verdict": "pass"}')
    (folder / "site-b" / "notes.txt").write_text("installer notes")
    return folder


def test_corpus_replay_under_a_new_version(tmp_path: Path) -> None:
    """What would fail under 2.0 that passed under 1.3, over a folder of captures, in one summary."""
    folder = corpus(tmp_path / "corpus")
    old = tmp_path / "v1.3.json"
    under_old = run("validate", str(folder), "--protocol-version", "1.3", "--write-baseline", str(old), "--json")
    assert under_old.returncode == 0, under_old.stdout[-3000:]
    summary = json.loads(under_old.stdout)
    assert len(summary["captures"]) == 3 and len(summary["skipped"]) == 2
    replay = run("validate", str(folder), "--protocol-version", "2.0", "--baseline", str(old), "--json")
    assert replay.returncode == 1
    result = json.loads(replay.stdout)
    new = {(i["rule"], i["endpoint"], i["pointer"]) for i in result["baseline"]["new"]}
    assert ("MSG-REQUIRED", "deviceAlarm", "/device_ip") in new
    assert {("MSG-REQUIRED", "faceRecognition", f"/{name}") for name in ("car_label", "car_type", "car_color")} <= new
    by_pointer = {i["pointer"]: i for i in result["baseline"]["new"]}
    assert by_pointer["/device_ip"]["files"] == [str(folder / "site-a" / "2024" / "alarms.jsonl")]
    assert by_pointer["/car_label"]["files"] == [str(folder / "site-b" / "capture.mitm")]
    assert result["exchanges"] == summary["exchanges"] and result["protocol_version"] == "2.0"
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run("validate", str(empty))
    assert nothing.returncode == 2 and "no captures" in nothing.stdout


# ---- certify ----------------------------------------------------------------------------
def certify(report: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = run("certify", "device", "--demo", "--tags", "cadence", "--no-html", "--report", str(report), *args)
    return done, json.loads((report / "summary.json").read_text(encoding="utf-8"))


def test_certify_baseline_red_then_green_then_red_with_only_the_new_failure(tmp_path: Path) -> None:
    """The red run first (with the unusable baseline's run beside it), then the two runs that compare with
    it at once: the plans mostly wait on protocol time."""
    baseline = tmp_path / "baseline.json"
    bad_args = ("--report", str(tmp_path / "bad"), "--baseline", str(tmp_path / "missing.json"))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="baseline") as pool:
        bad_run = pool.submit(run, "certify", "device", "--demo", "--tags", "cadence", "--no-html", *bad_args)
        red, first = certify(tmp_path / "red", "--fault", "cadence-idle", "--write-baseline", str(baseline))
        assert red.returncode == 1 and first["exit_code"] == 1, red.stdout[-2000:]
        saved = json.loads(baseline.read_text(encoding="utf-8"))
        assert {f["rule"] for f in saved["findings"]} == {"CADENCE-IDLE"} and saved["scenarios"]
        # a report folder works as the baseline too
        worse_run = pool.submit(
            certify, tmp_path / "worse", "--fault", "cadence-idle", "--fault", "missing-field", "--baseline",
            str(tmp_path / "red"),
        )  # fmt: skip
        green, second = certify(tmp_path / "green", "--fault", "cadence-idle", "--baseline", str(baseline))
        assert green.returncode == 0, green.stdout[-2000:]
        assert second["exit_code"] == 0 and second["verdict"] == "not certified"  # still not certified: only gated
        assert second["baseline"]["counts"]["new"] == 0 and second["baseline"]["counts"]["unchanged"] >= 2
        worse, third = worse_run.result()
        bad = bad_run.result()
    assert worse.returncode == 1 and third["exit_code"] == 1
    new = third["baseline"]["new"]
    assert new and {i.get("rule") for i in new} == {"MSG-REQUIRED"}, new
    assert all("CADENCE-IDLE" not in json.dumps(i) for i in new)
    assert "Baseline" in worse.stdout and "new   MSG-REQUIRED" in worse.stdout
    assert bad.returncode == 2 and "no such file" in bad.stdout
