"""`facecert proxy` end to end: address printed, live findings, SIGINT, summary, exit code."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from facecert.core.examples import example_for
from tests.proxy.conftest import Upstream, summary_of
from tests.support import start_proxy

pytestmark = pytest.mark.slow  # facecert proxy processes: make test-fast leaves it out

FACECERT = str(Path(sys.executable).parent / "facecert")
_ADDRESS = re.compile(r"server_url at (http://127\.0\.0\.1:\d+)")


class Output:
    """Collects a process's output in a thread; waits on a condition, never sleeps."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text = ""
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.text += line
                self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str] | None:
        with self._changed:
            self._changed.wait_for(lambda: pattern.search(self.text) is not None, timeout)
            return pattern.search(self.text)

    def close(self) -> str:
        self._thread.join(timeout=10)
        return self.text


def test_proxy_command_runs_reports_and_stops_on_sigint(upstream: Upstream, tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = start_proxy(upstream.url, report, env={**os.environ, "MITMPROXY_CONFDIR": str(tmp_path / "conf")})
    output = Output(proc)
    try:
        address = output.wait_for(_ADDRESS, timeout=30)
        assert address, output.text
        poll = example_for("device/taskRequest")
        del poll["device_name"]
        answer = httpx.post(address.group(1) + "/taskRequest", content=json.dumps(poll), timeout=10)
        assert answer.status_code == 200
        assert output.wait_for(re.compile(r"facecert ERROR\s+MSG-REQUIRED"), timeout=10), output.text
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    text = output.close()
    assert code == 1, text
    assert "FAIL: 1 exchanges" in text
    assert "Traceback" not in text
    assert summary_of(report)["errors_by_rule"] == {"MSG-REQUIRED": 1}
    assert (tmp_path / "conf").is_dir()  # mitmproxy's confdir (its CA key) is kept out of the report folder
    assert not any(p.name.startswith("mitmproxy-ca") for p in report.rglob("*"))


def test_proxy_command_refuses_bad_input_without_traceback(tmp_path: Path) -> None:
    for args in (["--upstream", "server:8080"], ["--upstream", "http://127.0.0.1:9", "--listen", "nowhere"]):
        run = subprocess.run(
            [FACECERT, "proxy", *args, "--report", str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 2, run.stdout + run.stderr
        assert "error:" in run.stdout and "Traceback" not in run.stdout + run.stderr


def test_bad_addon_option_stops_mitmdump_with_one_clear_line(mitm_confdir: Path, tmp_path: Path) -> None:
    from facecert.proxy_addons.process import MitmdumpConfig

    argv = MitmdumpConfig(
        upstream="http://127.0.0.1:9",
        confdir=mitm_confdir,
        options={"facecert_tolerance": "abc", "facecert_report_dir": str(tmp_path)},
    ).argv()
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "facecert: facecert_tolerance: 'abc' is not a number" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_proxy_carries_traffic_while_nobody_reads_its_stdout(upstream: Upstream, tmp_path: Path) -> None:
    """Each exchange here prints mitmdump's flow line and a finding; after the address this test reads
    nothing until the end: 1,200 exchanges (~250 KB of lines against pipes of 64 KiB) all go through."""
    report = tmp_path / "report"
    proc = start_proxy(upstream.url, report, env={**os.environ, "MITMPROXY_CONFDIR": str(tmp_path / "conf")})
    try:
        assert proc.stdout is not None
        address = None
        for line in proc.stdout:  # up to the line with the address, then the pipe is left alone
            address = _ADDRESS.search(line)
            if address:
                break
        assert address, "facecert proxy printed no address"
        poll = example_for("device/taskRequest")
        del poll["device_name"]  # MSG-REQUIRED on every exchange: a finding line each
        body = json.dumps(poll).encode()

        def client(count: int) -> int:
            with httpx.Client(base_url=address.group(1), timeout=5) as http:  # a stalled proxy times out here
                return sum(http.post("/taskRequest", content=body).status_code == 200 for _ in range(count))

        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(client(300))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert results == [300] * 4
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out[-3000:]
    assert out.count("MSG-REQUIRED") > 100 and "Traceback" not in out
    assert summary_of(report)["errors_by_rule"]["MSG-REQUIRED"] == 1200  # every exchange judged (and CADENCE-IDLE)


def test_echoed_mitmdump_lines_carry_no_control_characters() -> None:
    """mitmdump's lines quote what a device sent (its path, its id): echoed escaped, never raw."""
    from facecert.proxy_addons.runner import _echo_line

    line = "ERROR MSG-FORMAT /taskRequest\x1b[2J\x1b]0;owned\x07 from EVIL"
    for markup in (True, False):
        shown = _echo_line(line, markup)
        assert "\x1b" not in shown and "\x07" not in shown, shown
        assert "\\x1b[2J" in shown and "\\x07" in shown and "EVIL" in shown, shown


# loaded by both Pythons of `facecert proxy` (PYTHONPATH): mitmdump takes seconds to start, so that an interrupt
# sent once it exists lands while facecert proxy still waits for it to listen
_SLOW_MITMDUMP = "import sys, time\nif sys.argv[0].endswith('mitmdump'):\n    time.sleep(5)\n"
# mitmdump's shutdown held for a minute, as a hung `done` hook would: says so on its output first
_HUNG_MITMDUMP = """
import sys, time
if sys.argv[0].endswith("mitmdump"):
    from mitmproxy import master
    shutdown = master.Master.shutdown
    def held(self):
        print("test: shutdown held", flush=True)
        time.sleep(60)
        shutdown(self)
    master.Master.shutdown = held
"""


def _background_proxy(tmp_path: Path, site_code: str) -> subprocess.Popen[str]:
    """`facecert proxy` as a script's background job starts it: SIGINT ignored, as the shell leaves it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(site_code)
    env = {**os.environ, "PYTHONPATH": str(site), "MITMPROXY_CONFDIR": str(tmp_path / "conf")}
    command = [FACECERT, "proxy", "--upstream", "http://127.0.0.1:9", "--listen", "127.0.0.1:0"]
    return subprocess.Popen(
        [*command, "--report", str(tmp_path / "report")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )


def _child_of(pid: int, timeout: float = 30) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + timeout
    while not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.01)
    (child,) = map(int, children.read_text().split())
    return child


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's entry stays until it ends)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _stop_all(proc: subprocess.Popen[str], mitmdump: int) -> None:
    proc.kill()
    if mitmdump and _running(mitmdump):  # its own session: nothing else would stop it
        os.kill(mitmdump, signal.SIGKILL)


def test_an_interrupt_while_mitmdump_starts_stops_the_proxy_at_once(tmp_path: Path) -> None:
    """Interrupted while mitmdump is still starting: the proxy stops, kills the mitmdump it started and says
    why, instead of losing the signal and running on (or, where SIGINT was not ignored, a traceback and an
    orphaned mitmdump)."""
    proc, mitmdump = _background_proxy(tmp_path, _SLOW_MITMDUMP), 0
    try:
        mitmdump = _child_of(proc.pid)
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=20)
        outlived = _running(mitmdump)
    finally:
        _stop_all(proc, mitmdump)
    assert proc.returncode == 2, text
    assert "interrupted before mitmdump was listening" in text, text
    assert "Traceback" not in text, text
    assert not outlived, "the mitmdump it started outlived it"


def test_a_second_interrupt_kills_a_mitmdump_that_does_not_stop(tmp_path: Path) -> None:
    """The first interrupt asks mitmdump to write its reports and stop (it may take a while); one that
    does not stop is killed by the second interrupt, at once, and the proxy says so."""
    proc, mitmdump = _background_proxy(tmp_path, _HUNG_MITMDUMP), 0
    output = Output(proc)
    try:
        mitmdump = _child_of(proc.pid)
        assert output.wait_for(_ADDRESS, timeout=30), output.text
        proc.send_signal(signal.SIGINT)
        assert output.wait_for(re.compile("test: shutdown held"), timeout=30), output.text
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        outlived = _running(mitmdump)
    finally:
        _stop_all(proc, mitmdump)
    text = output.close()
    assert "interrupted again while it wrote its reports: mitmdump was killed" in text, text
    assert "Traceback" not in text, text
    assert code == 2 and not outlived, text


def test_stopping_mitmdump_whose_reader_thread_never_started(tmp_path: Path) -> None:
    """``Mitmdump.start`` can fail between making its output reader and starting it (``Thread.start``
    raises where no thread can be made); stopping it then must not raise ("cannot join thread before it
    is started", a traceback: what an interrupt there gave before the signals only counted)."""
    from facecert.proxy_addons.process import Mitmdump, MitmdumpConfig

    for stop in ("kill", "stop"):
        dump = Mitmdump(MitmdumpConfig(upstream="http://127.0.0.1:9", confdir=tmp_path))
        dump._proc = subprocess.Popen(["true"])
        dump._proc.wait()
        dump._reader = threading.Thread(target=lambda: None)  # made, not started
        assert getattr(dump, stop)() == 0
