"""``facecert device``: the knob list, a short run with its summary, clear
errors (exit 2, no traceback) for bad invocations."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facecert.mock_device import FAULTS
from facecert.mock_server import MockServer
from tests.support import SCALE, facecert

pytestmark = pytest.mark.slow  # facecert device processes: make test-fast leaves it out

FACECERT = [str(Path(sys.executable).parent / "facecert")]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return facecert("device", *args, timeout=timeout, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_list_faults_names_every_knob() -> None:
    done = run("--list-faults")
    assert done.returncode == 0
    for fault in FAULTS:
        assert fault.name in done.stdout


def test_short_run_against_the_mock_server(server: MockServer) -> None:
    done = run(
        "--server",
        server.url,
        "--count",
        "3",
        "--time-scale",
        f"{SCALE:g}",
        "--duration",
        "1.5",
        "--captures-per-minute",
        "60",
        "--id",
        "CLI",
    )
    assert done.returncode == 0, done.stderr
    assert "summary" in done.stdout and "CLI" in done.stdout
    assert {d["device_id"] for d in server.devices()} >= {"CLI00000000", "CLI00000001", "CLI00000002"}


def _terminal_sigint() -> None:
    """SIGINT as a terminal's Ctrl-C finds it: a suite run as a shell's background job (CI's may be one)
    ignores SIGINT, and its children inherit that, so Python would raise no KeyboardInterrupt at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_by_a_signal_it_still_prints_its_summary(server: MockServer, how: signal.Signals) -> None:
    """Ctrl-C and SIGTERM (kill, a CI job's timeout) alike: the run stops and the summary (and the judgement)
    is printed; SIGTERM's default killed it with nothing printed."""
    device_id = f"SIG{how.name}"
    proc = subprocess.Popen(
        [*FACECERT, "device", "--server", server.url, "--time-scale", f"{SCALE:g}", "--duration", "60"]
        + ["--id", device_id, "--judge"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        preexec_fn=_terminal_sigint,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(d["device_id"].startswith(device_id) for d in server.devices()):
            assert time.monotonic() < deadline, "the device never polled"
            time.sleep(0.05)
        proc.send_signal(how)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert "stopped" in out and "summary" in out and "no findings" in out, out


@pytest.mark.parametrize(
    "args",
    [
        ("--server", "http://127.0.0.1:1", "--fault", "no-such-knob"),
        (),
        ("--server", "127.0.0.1:1", "--protocol-version", "7.7"),
        ("--server", "http://"),
        ("--server", "ftp://127.0.0.1"),
        ("--server", "127.0.0.1:99999"),
        ("--server", "127.0.0.1:1 /x"),
        ("--server", "127.0.0.1:1", "--count", "0"),
        ("--server", "127.0.0.1:1", "--persona", "vendor"),
    ],
)
def test_bad_invocations_exit_2_without_traceback(args: tuple[str, ...]) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr


def test_unreachable_server_is_survived() -> None:
    done = run("--server", "127.0.0.1:1", "--time-scale", f"{SCALE:g}", "--duration", "1")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_judge_reports_the_device_fault_and_exits_1(server: MockServer) -> None:
    done = run(
        "--server",
        server.url,
        "--time-scale",
        f"{SCALE:g}",
        "--duration",
        "1.5",
        "--id",
        "CLIJUDGE",
        "--fault",
        "missing-field",
        "--judge",
    )
    assert done.returncode == 1, done.stdout
    assert "MSG-REQUIRED" in done.stdout


def test_field_persona_sends_the_vendor_extras(server: MockServer) -> None:
    done = run(
        "--server",
        server.url,
        "--time-scale",
        f"{SCALE:g}",
        "--duration",
        "1.5",
        "--id",
        "CLIFIELD",
        "--persona",
        "field",
        "--judge",
    )
    assert done.returncode == 0, done.stdout
    assert "MSG-UNKNOWN-FIELD" in done.stdout  # info: reported, not failed
    polls = [e for e in server.exchanges("CLIFIELD") if e["endpoint"] == "taskRequest"]
    assert polls and set(server.platform.contract.vendor_extras["taskRequest"]) <= set(polls[0]["request_json"])


def test_a_ctrl_c_inside_a_request_leaves_no_traceback() -> None:
    """A Ctrl-C that lands inside a request ends that task with KeyboardInterrupt, which asyncio also raises out
    of the loop; unless the device marks it seen, asyncio prints "Task exception was never retrieved" and a
    traceback after the summary (fresh clone, 2026-12-02). The same script with and without the device's callback."""
    script = (
        "import asyncio, gc, sys\n"
        "from facecert.mock_device.device import Device\n"
        "async def req():\n"
        "    await asyncio.sleep(0.01)\n"
        "    raise KeyboardInterrupt\n"
        "async def main():\n"
        "    task = asyncio.get_running_loop().create_task(req())\n"
        "    holder = type('H', (), {'_requests': {task}})()\n"
        "    if sys.argv[1] == 'device':\n"
        "        task.add_done_callback(lambda t: Device._request_done(holder, t))\n"
        "    await asyncio.sleep(5)\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped')\n"
        "gc.collect()\n"
    )
    bare, handled = (
        subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, timeout=60)
        for how in ("bare", "device")
    )
    assert "never retrieved" in bare.stderr  # what the test would see without the callback
    assert handled.stdout.strip() == "stopped" and handled.stderr == "", handled.stderr


def test_a_bug_inside_a_request_is_logged_not_silenced(caplog: pytest.LogCaptureFixture) -> None:
    """Marking a request's exception seen (for Ctrl-C) must not hide a bug: any other exception is logged."""
    import asyncio

    from facecert.mock_device.device import Device

    async def broken() -> None:
        raise RuntimeError("the core failed on a reply")

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(broken())
        holder = type("H", (), {"_requests": {task}})()
        await asyncio.wait([task])
        Device._request_done(holder, task)  # type: ignore[arg-type]

    with caplog.at_level("ERROR", logger="mock_device"):
        asyncio.run(main())
    assert [r.exc_info[1].args for r in caplog.records if r.exc_info] == [("the core failed on a reply",)]
