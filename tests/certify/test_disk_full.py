"""A certification whose disk fills up gives no verdict it cannot stand behind: every scenario that
ends after our server first failed to record is an error naming HARNESS-RECORDING (the cause first,
what it had found after), as is every scenario left when a full disk broke pytest off (Allure's writer);
a disk still full when the reports are written is one line and exit 2. Before, the run ended in
pytest's INTERNALERROR traceback and a rich traceback of the HAR's write, exit 1, and no summary.

A full disk does not refuse SQLite's commits at a moment one can choose (a WAL file already grown is
written again in place), so the run whose store is full during one scenario holds the database at its size
instead (tests/certify/disk_full_plan.py); the run whose disk stays full fills a real tmpfs under ``certify
device --demo`` (root only: tests/support.py ``small_tmpfs``). The plugin's own decisions are held to
account without either."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer

from facecert.certify.plugin import PlanPlugin, classify
from facecert.certify.verdicts import ScenarioRecord, Verdict
from facecert.core.rules.registry import RULES
from facecert.recording import RecordingFailed, RecordingState
from tests.support import fill_disk, small_tmpfs

FACECERT = str(Path(sys.executable).parent / "facecert")
ROOT = Path(__file__).resolve().parents[2]
# two scenarios, then three more: the busy cadence (about 0.8 s); the idle back-off (about 2 s, polled once a
# second) with the store full from its start to its end; the security feature's, run on a store that writes
TAGS = "cadence or security"
_FIRST_DONE = re.compile(r"^\[1/\d+\] ", re.M)


def _spell(report: Path) -> tuple[int, str, list[dict[str, Any]]]:
    """The device plan with our server's store full during its second scenario (tests/certify/disk_full_plan.py)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "certify" / "disk_full_plan.py"), str(report), TAGS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return done.returncode, done.stderr, [json.loads(line) for line in done.stdout.splitlines()]


def _stays_full(folder: Path) -> tuple[int, str]:
    """`certify device --demo` with its report on ``folder``, a small disk filled for good once the first
    scenario has ended: its exit code and output."""
    proc = subprocess.Popen(
        [FACECERT, "certify", "device", "--demo", "--no-html", "--tags", "cadence", "--report", str(folder / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = ""
    try:
        for line in proc.stdout:
            seen += line
            if _FIRST_DONE.match(line):
                fill_disk(folder)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, seen + rest


@pytest.mark.slow
def test_scenarios_after_the_store_failed_are_errors_with_the_cause_first(tmp_path: Path) -> None:
    code, err, lines = _spell(tmp_path / "report")
    assert code == 0, err
    recording, *records = lines
    assert recording["recording"]["refused"] >= 1 and recording["recording"]["failing_since"] is None, recording
    first, *after = records
    assert first["verdict"] == "pass" and len(after) == 4, records
    for record in after:  # the three that ran on a store that wrote again, too: the record has a hole
        assert record["verdict"] == "error" and record["rules"] == ["HARNESS-RECORDING"], record
        message = record["message"]
        assert re.match(r"the reference server could not record \d+ device request\(s\) since ", message)
        assert "(database or disk is full (" in message and "free the space and run again" in message
    assert "Traceback" not in err, err


@pytest.mark.slow
def test_a_disk_that_stays_full_ends_the_run_without_a_traceback(tmp_path: Path) -> None:
    """What the reports find depends on the moment: the store's WAL, truncated as the session stops, gives
    back room a summary may fit in. Either the reports say HARNESS-RECORDING, or they could not be written
    and one line says so; never a traceback, never exit 0 or 1."""
    with small_tmpfs(tmp_path / "disk", "16m") as disk:
        (disk / "r").mkdir()
        stale = disk / "r" / "summary.json"  # an earlier run's, certified: never to be read as this run's
        stale.write_text('{"verdict": "certified"}', encoding="utf-8")
        code, out = _stays_full(disk)
        assert not stale.exists() or json.loads(stale.read_text())["verdict"] == "not certified", out
    assert code == 2, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    written = "NOT CERTIFIED" in out and "HARNESS-RECORDING" in out
    assert written or "No space left on device: nothing was certified (free the space and run again)" in out, out


def test_reports_the_disk_will_not_take_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facecert.certify import cli

    with pytest.raises(typer.Exit) as stopped, cli._writing(tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "summary.json"))
    assert stopped.value.exit_code == 2
    assert capsys.readouterr().out == (
        f"error: cannot write the report in {tmp_path}: No space left on device: nothing was certified "
        "(free the space and run again)\n"
    )


# ---- the plugin's decisions, without a disk to fill ---------------------------------------------------
class _Session:
    def __init__(self, state: RecordingState | None) -> None:
        self.state = state

    def recording(self) -> RecordingState | None:
        return self.state


def test_a_scenario_ended_after_a_refused_request_is_an_error_with_the_cause_first() -> None:
    state = RecordingState(
        7, 1, "database or disk is full (/r/session.db)", "free the space and run again", 1_800_000_000.0, None
    )
    failed = ScenarioRecord(name="n", feature="f", verdict=Verdict.FAIL, rules=("CADENCE-IDLE",), message="late")
    PlanPlugin(_Session(state))._blame_recording(failed)
    assert failed.verdict is Verdict.ERROR and failed.rules == ("HARNESS-RECORDING",)
    assert failed.message.startswith("the reference server could not record 7 device request(s) since ")
    assert (
        "(database or disk is full (/r/session.db)): the record is incomplete, so this scenario has no verdict; "
        "free the space and run again; without that" in failed.message
    )
    assert failed.message.endswith("; without that it was fail (CADENCE-IDLE: late)")
    assert RULES["HARNESS-RECORDING"].party == "harness"
    passed = ScenarioRecord(name="n", feature="f")
    PlanPlugin(_Session(None))._blame_recording(passed)
    assert passed.verdict is Verdict.PASS and passed.rules == ()


def test_a_step_whose_call_the_disk_refused_is_that_error_not_a_bug() -> None:
    record = ScenarioRecord(name="n", feature="f")
    classify(record, RecordingFailed("/r/session.db", OSError(errno.ENOSPC, "No space left on device")))
    assert record.verdict is Verdict.ERROR and record.rules == ("HARNESS-RECORDING",)
    assert "No space left on device (/r/session.db)" in record.message
    # a step's evidence (allure.attach) the disk would not take: seen in a real run, then HARNESS-ERROR
    attached = ScenarioRecord(name="n", feature="f")
    classify(attached, OSError(errno.ENOSPC, "No space left on device", "/r/allure-results/x-attachment.json"))
    assert attached.rules == ("HARNESS-RECORDING",) and "No space left on device" in attached.message
    bug = ScenarioRecord(name="n", feature="f")
    classify(bug, PermissionError(errno.EACCES, "Permission denied"))
    assert bug.rules == ("HARNESS-ERROR",)


@pytest.mark.parametrize(
    ("broken_by", "rule", "why"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "HARNESS-RECORDING", "broken off by a full or failing disk"),
        (KeyError("uuid"), "HARNESS-ERROR", "broken off by an internal error (KeyError: 'uuid')"),
    ],
)
def test_scenarios_pytest_was_broken_off_before_are_errors(broken_by: BaseException, rule: str, why: str) -> None:
    plugin = PlanPlugin(_Session(None))
    items = [SimpleNamespace(nodeid=f"plan::s{i}", name=f"s{i}", obj=None) for i in range(3)]
    plugin.items, plugin.total = items, 3  # type: ignore[assignment]
    plugin._record(items[0]).verdict = Verdict.PASS  # type: ignore[arg-type]
    plugin.finished.add("plan::s0")
    plugin._record(items[1])  # type: ignore[arg-type]
    excinfo = SimpleNamespace(value=broken_by)
    assert plugin.pytest_internalerror("Traceback ...", excinfo) is True  # type: ignore[arg-type]
    plugin.close_interrupted()
    done, running, unrun = plugin.scenarios
    assert done.verdict is Verdict.PASS
    assert running.verdict is Verdict.ERROR and running.rules == (rule,)
    assert running.message.startswith(why) and running.message.endswith("while it ran: its verdict is unknown")
    assert running.trace == "Traceback ..." and unrun.trace == ""
    assert unrun.rules == (rule,) and unrun.message.startswith(f"not run: the certification was {why}")
    assert unrun.message.endswith("after 1 of 3 scenarios")
