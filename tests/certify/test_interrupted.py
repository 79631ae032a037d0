"""A certification stopped part-way (Ctrl-C at the console, SIGTERM from a CI job's timeout) is no
certificate: the scenario it stopped and every one it never reached are errors naming
HARNESS-INTERRUPTED, in every output (console, summary.json, JUnit, Allure), and the exit code is 2.
Before, Ctrl-C after 9 of 46 scenarios printed "CERTIFIED: 9 pass" and exited 0, and SIGTERM killed
the run with no summary at all."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

FACECERT = str(Path(sys.executable).parent / "facecert")
_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] ", re.M)


def _terminal_sigint() -> None:
    """SIGINT as a terminal's Ctrl-C finds it: a suite run as a shell's background job (CI's may be one)
    ignores SIGINT, and its children inherit that, so Python would raise no KeyboardInterrupt at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _certify_and_stop(folder: Path, how: signal.Signals) -> tuple[int, str, int]:
    """`certify device --demo`, sent ``how`` once three scenarios have ended: its exit code, its output and
    the plan's size (from its progress lines)."""
    proc = subprocess.Popen(
        [FACECERT, "certify", "device", "--demo", "--no-html", "--report", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_terminal_sigint,
    )
    assert proc.stdout is not None
    seen = ""
    try:
        for line in proc.stdout:
            seen += line
            done = _PROGRESS.match(line)
            if done and int(done.group(1)) >= 3:
                proc.send_signal(how)
                break
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    total = int(_PROGRESS.findall(seen)[-1][1])
    return proc.returncode, seen + rest, total


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str, int]]:
    """Both ways of stopping, at once (each waits on protocol time)."""
    hows = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
    folders = {name: tmp_path_factory.mktemp(name.lower()) / "report" for name in hows}
    with ThreadPoolExecutor(len(hows)) as pool:
        runs = {name: pool.submit(_certify_and_stop, folders[name], how) for name, how in hows.items()}
        return {name: (folders[name], *run.result()) for name, run in runs.items()}


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_a_stopped_certification_is_not_certified(stopped: dict[str, tuple[Path, int, str, int]], how: str) -> None:
    folder, code, output, total = stopped[how]
    named = "Ctrl-C" if how == "SIGINT" else "SIGTERM"
    assert code == 2, output[-3000:]
    assert "NOT CERTIFIED" in output and "Traceback" not in output, output[-3000:]
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "not certified" and summary["exit_code"] == 2
    scenarios = summary["scenarios"]
    assert len(scenarios) == total  # every scenario of the plan is listed, run or not
    ended = [s for s in scenarios if s["rules"] != ["HARNESS-INTERRUPTED"]]
    stopped_ones = [s for s in scenarios if s["rules"] == ["HARNESS-INTERRUPTED"]]
    assert len(ended) >= 3 and all(s["verdict"] == "pass" for s in ended), ended
    assert stopped_ones and all(s["verdict"] == "error" for s in stopped_ones)
    assert all(named in s["message"] for s in stopped_ones), stopped_ones[:2]
    # named as when they run: the feature's name and the outline's values, not a path or a <placeholder>
    assert not [s for s in stopped_ones if ".feature" in s["feature"] or "<" in s["name"]], stopped_ones[:3]
    assert [c["rule"] for c in summary["root_causes"]] == ["HARNESS-INTERRUPTED"]
    cases = ET.parse(folder / "junit.xml").getroot().iter("testcase")
    assert sum(1 for _ in cases) == total
    allure = [json.loads(p.read_text(encoding="utf-8")) for p in (folder / "allure-results").glob("*-result.json")]
    assert len(allure) == total and sum(1 for r in allure if r["status"] == "passed") == len(ended)
    assert (folder / "manifest.json").is_file()  # sealed like any finished run


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_before_the_device_came_says_so(tmp_path: Path, how: signal.Signals) -> None:
    """Waiting for a real device's first poll (it was never pointed at us): a stop is a clear one-line error,
    exit 2, with the session's record kept; SIGTERM killed it silently, Ctrl-C exited 130 saying nothing."""
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [FACECERT, "certify", "device", "--listen", "127.0.0.1:0", "--no-html", "--report", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_terminal_sigint,
    )
    assert proc.stdout is not None
    try:
        seen = ""
        while "Configure the device's server URL" not in seen:
            line = proc.stdout.readline()
            assert line, seen
            seen += line
        proc.send_signal(how)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2, seen + rest
    assert "stopped before the device's first poll: nothing was certified" in rest, rest
    assert "Traceback" not in rest and (report / "session.db").is_file()
