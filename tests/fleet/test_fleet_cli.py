"""``facecert fleet``: Locust master and workers in processes of their own, a verdict per device in
fleet.json, Locust's CSV/HTML reports beside it, clear errors, and no Locust in the CLI's process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facecert.mock_device.fleet_cli import LOCUSTFILE, free_port
from facecert.mock_server import MockServer
from tests.fleet.cli_support import FLEET_ENV, FLEET_SCALE, fleet, fleet_server, read_report
from tests.support import fill_disk, small_tmpfs

FACECERT = str(Path(sys.executable).parent / "facecert")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MockServer]:
    """The fleets' server, at FLEET_SCALE (not the tests' time scale of tests/conftest.py's ``server``)."""
    yield from fleet_server(tmp_path)


def test_the_cli_process_never_imports_locust_or_gevent() -> None:
    code = "import sys, facecert.cli; sys.exit(sorted(m for m in ('locust', 'gevent') if m in sys.modules) != [])"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_locustfile_is_packaged_for_locust_f() -> None:
    done = fleet("--locustfile")
    assert done.returncode == 0 and Path(done.stdout.strip()) == LOCUSTFILE and LOCUSTFILE.is_file()


def test_an_unreachable_server_is_a_clear_error() -> None:
    done = fleet("--server", f"127.0.0.1:{free_port()}", "--devices", "2", "--duration", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not reachable" in done.stdout and "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--fault", "lose-buffered"), "certification step"),  # a plan rule: the engine cannot see it
        (("--fault", "snaptime-ms"), "--captures-per-minute"),  # needs captures the fleet was not asked for
        (("--fault", "no-such-knob"), "unknown fault knob"),
        (("--master", "--worker"), "exclude each other"),
        (("--server", "ftp://127.0.0.1"), "only http"),
    ],
)
def test_bad_invocations_exit_2_without_traceback(args: tuple[str, ...], says: str) -> None:
    done = fleet(*(args if "--server" in args else ("--server", "127.0.0.1:9", *args)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_an_unusable_report_folder_is_a_clear_error(server: MockServer, tmp_path: Path) -> None:
    taken = tmp_path / "report"
    taken.write_text("a file where the report folder should be")
    done = fleet("--server", server.url, "--devices", "2", "--duration", "2", "--report", str(taken))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--report" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_a_full_disk_for_the_report_is_said_before_any_device_starts(server: MockServer, tmp_path: Path) -> None:
    """Before, the whole run went ahead (15-30 s of a master dead at its start) to end in "no verdicts"."""
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        fill_disk(disk)
        started = time.monotonic()
        done = fleet("--server", server.url, "--devices", "2", "--duration", "2", "--report", str(disk / "r"))
        took = time.monotonic() - started
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, out
    assert f"error: the disk of {disk / 'r'} is full (less than 1024 KiB free)" in out, out
    assert "no fleet was started" in out and "Traceback" not in out, out
    assert took < 10, f"{took:.1f} s: a fleet was started anyway"


@pytest.mark.slow  # a fleet of Locust processes
def test_a_disk_that_fills_during_the_run_is_said_as_such(server: MockServer, tmp_path: Path) -> None:
    """Locust's master writes nothing on a full disk, not even its log: before, "Locust ended without
    verdicts; the master's last lines:" followed by none, and exit 1 as if the devices had failed; and
    each worker then waited 15 s in turn for the master that had died."""
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        report = disk / "r"
        argv = [FACECERT, "fleet", "--server", server.url, "--devices", "2", "--duration", "3", "--report"]
        started = time.monotonic()
        with subprocess.Popen(
            [*argv, str(report)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=FLEET_ENV
        ) as process:
            # the run has begun once the master runs (the CLI starts it after its free-space check; the log
            # file exists before that check, so filling the disk when it appears raced the check, 2026-12-02)
            deadline = time.monotonic() + 60
            while not children(process.pid) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if not children(process.pid):  # no master to starve: say what happened instead of filling anyway
                if process.poll() is None:
                    process.kill()
                out, _ = process.communicate(timeout=30)
                pytest.fail(
                    f"facecert fleet started no master ({time.monotonic() - started:.0f} s, "
                    f"exit {process.returncode}): {out[-3000:]}"
                )
            fill_disk(disk)  # the master's reports find no room
            out, _ = process.communicate(timeout=120)
        took = time.monotonic() - started
    out = " ".join(out.split())
    assert process.returncode == 2, out
    assert f"error: no verdicts: the disk of {report} is full, so Locust could not write them" in out, out
    assert "Traceback" not in out, out
    assert took < 25, f"{took:.1f} s"


def children(pid: int) -> dict[int, str]:
    """The processes ``pid`` started (their command lines), from /proc."""
    found = {}
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:  # it, a thread or a child ended meanwhile: what is left
        pass
    return found


@pytest.mark.slow  # a fleet of Locust processes
def test_workers_are_stopped_soon_after_their_master_died(server: MockServer, tmp_path: Path) -> None:
    """A master killed mid-run (as a full disk or the OOM killer does) tells its workers nothing: before,
    each of them was waited for 15 s in turn, so a fleet of two workers took 30 s more to say so."""
    report = tmp_path / "r"
    argv = [FACECERT, "fleet", "--server", server.url, "--devices", "4", "--workers", "2", "--duration", "60"]
    with subprocess.Popen(
        [*argv, "--report", str(report)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=FLEET_ENV
    ) as process:
        deadline = time.monotonic() + 60
        while '"running"' not in _text(report / "progress.json") and time.monotonic() < deadline:
            time.sleep(0.1)
        masters = [pid for pid, line in children(process.pid).items() if " --master " in line]
        assert len(masters) == 1, children(process.pid)
        os.kill(masters[0], signal.SIGKILL)
        killed = time.monotonic()
        out, _ = process.communicate(timeout=60)
        took = time.monotonic() - killed
    assert process.returncode == 1 and "Locust ended without verdicts" in out, out
    assert took < 15, f"{took:.1f} s after the master was killed"


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


@pytest.mark.slow
def test_master_and_worker_started_apart_as_on_two_machines(server: MockServer, tmp_path: Path) -> None:
    """``facecert fleet --master`` waits for its workers; ``facecert fleet --worker --master-host`` joins it."""
    port = free_port()
    report = tmp_path / "apart"
    master = subprocess.Popen(
        [FACECERT, "fleet", "--master", "--master-port", str(port), "--workers", "1", "--server", server.url,
         "--devices", "20", "--time-scale", f"{FLEET_SCALE:g}", "--duration", "5", "--report", str(report),
         "--id-prefix", "AP"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    worker = subprocess.Popen(
        [FACECERT, "fleet", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        out, _ = master.communicate(timeout=120)
        worker.communicate(timeout=60)
    finally:
        for process in (master, worker):
            if process.poll() is None:
                process.kill()
    assert f"--master-port {port}" in out, "the master says how workers join it"
    assert worker.returncode == 0
    data = read_report(report)
    verdicts = data["summary"]["verdicts"]
    assert list(data["meta"]["workers"]) == ["worker-0"]
    if data["summary"]["devices_late"]:  # the machine held the worker past the slack (a fresh clone, 2026-12-03:
        # 95 ms unscheduled, 5 ms of CPU used): those devices are rightly generator-overloaded, the run no verdict
        assert master.returncode == 2 and "no verdict:" in out, out[-3000:]
        assert verdicts.get("clean", 0) + verdicts.get("generator-overloaded", 0) == 20, verdicts
    else:
        assert master.returncode == 0, out[-3000:]
        assert verdicts["clean"] == 20, verdicts


def _running_fleet(server: MockServer, report: Path) -> tuple[subprocess.Popen[str], float]:
    """A 20-device fleet for 60 s, once it runs (its progress.json says so); and the deadline of the wait."""
    process = subprocess.Popen(
        [
            FACECERT,
            "fleet",
            "--server",
            server.url,
            "--devices",
            "20",
            "--workers",
            "1",
            "--time-scale",
            f"{FLEET_SCALE:g}",
        ]
        + ["--duration", "60", "--report", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
        # a shell's background job (CI's may be one) ignores SIGINT, and its children inherit that: Python then
        # raises no KeyboardInterrupt at all, so the child gets the terminal's default back, as a Ctrl-C would find
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    progress = report / "progress.json"
    while (json.loads(progress.read_text()) if progress.is_file() else {}).get("phase") != "running":
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the fleet never began running")
        time.sleep(0.2)
    return process, deadline


@pytest.mark.slow  # a fleet of Locust processes
def test_a_second_ctrl_c_stops_the_fleet_at_once_without_a_traceback(server: MockServer, tmp_path: Path) -> None:
    report = tmp_path / "report"
    process, _ = _running_fleet(server, report)
    try:
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)  # within the master's gathering, which may take a while
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, out
    assert "interrupted again" in out and "Traceback" not in out and "KeyboardInterrupt" not in out, out


def _commands() -> dict[int, str]:
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found


def _locust_of(report: Path) -> list[int]:
    """Our Locust master for this report folder (its command names the folder) and the workers joined to
    its port (theirs name the port only)."""
    commands = _commands()
    masters = {pid: c for pid, c in commands.items() if "locust" in c and str(report) in c}
    ports = {m.group(1) for c in masters.values() if (m := re.search(r"--master-bind-port (\d+)", c))}
    workers = [
        pid for pid, c in commands.items() if "locust" in c and any(f"--master-port {port}" in c for port in ports)
    ]
    return [*masters, *workers]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.slow  # a fleet of Locust processes
def test_sigterm_gathers_the_verdicts_and_stops_locust(server: MockServer, tmp_path: Path) -> None:
    """SIGTERM (kill, a CI job's timeout) stops a fleet as the first Ctrl-C does: the verdicts so far are
    gathered and written, and Locust's master and workers end with it. Before, SIGTERM killed `facecert
    fleet` alone: no fleet.json, and Locust (in sessions of its own) went on loading the server."""
    report = tmp_path / "report"
    process, deadline = _running_fleet(server, report)
    try:
        locust = _locust_of(report)
        assert len(locust) == 2, locust  # the master and its one worker
        while not any(d["device_id"].startswith("LOC") for d in server.devices()):  # a device has polled
            assert process.poll() is None and time.monotonic() < deadline, "no device of the fleet polled"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
        left = [pid for pid in locust if _running(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in _locust_of(report):
            os.kill(pid, signal.SIGKILL)
    assert process.returncode == 1, out  # stopped early: not a passing run
    assert "interrupted: gathering the verdicts" in out and "Traceback" not in out, out
    assert json.loads((report / "fleet.json").read_text(encoding="utf-8"))["summary"]["devices"], "no verdicts"
    assert left == [], f"Locust processes outlived facecert fleet: {left}"
