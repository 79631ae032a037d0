"""What the test areas share, in one place: the time scale the reference peers run at in tests,
unique device and request ids, the simulator's download folder, an ASGI app served in a thread and
``facecert`` run as its own process (the fixtures built on these live in tests/conftest.py)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from facecert.certify.asgi import UvicornThread
from facecert.certify.matrix import run_facecert
from facecert.core.defaults import DEMO_TIME_SCALE, DEMO_TIME_SCALE_ENV, demo_time_scale
from facecert.mock_device.firmware import build_firmware
from facecert.mock_server import MockServer, ServerConfig

# Every protocol interval × the demo's time scale in tests (0.05: idle 1 s, task 0.25 s, result deadline 6 s),
# set here for every `--demo` run the tests start too (child and forked processes inherit it), so that
# FACECERT_DEMO_TIME_SCALE=0.025 make test tries half of it. Half was the default for a session: 0.025 leaves
# the cadence 81 ms of slack on a task interval and 175 ms on an idle one (±25 % + the 0.05 s allowance,
# which is not scaled), and a fresh clone of the suite on two cores lost an idle poll by 26 ms beyond it
# (tests/suites/test_capabilities.py, 2026-12-03): 112.5 ms and 300 ms at 0.05 had held in every fresh clone.
os.environ.setdefault(DEMO_TIME_SCALE_ENV, f"{DEMO_TIME_SCALE:g}")
SCALE = demo_time_scale()
FACECERT = Path(sys.executable).parent / "facecert"
GOOD_FIRMWARE = "sim-firmware.bin"
FIRMWARE_VERSION = "2.0.0_SIM_V2.0(upgraded)"

_devices = itertools.count(1)
_requests = itertools.count(7_000_001)  # far above the mock server's own request_ids


def unique_id(label: str = "dev", prefix: str = "T") -> str:
    """A device_id no other test of this process uses (the label says which test it is)."""
    return f"{prefix}{next(_devices):04d}{label.upper().replace('-', '')[:10]}"


def next_request_id() -> int:
    """A request_id for a task a test writes by hand (raw), unique in this process."""
    return next(_requests)


def make_assets(folder: Path) -> Path:
    """A server's download folder holding a valid simulator firmware image."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / GOOD_FIRMWARE).write_bytes(build_firmware(FIRMWARE_VERSION, b"payload" * 100))
    return folder


def new_server(folder: Path, time_scale: float = SCALE) -> MockServer:
    """A mock server at the tests' time scale (or ``time_scale``) with its own session database and download
    folder (the default assets and a valid simulator firmware) under ``folder``; not started."""
    assets = make_assets(folder / "assets")
    return MockServer(ServerConfig(time_scale=time_scale, assets=assets, db=folder / "session.db"))


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[UvicornThread]:
    """``app`` on uvicorn, 127.0.0.1 and an ephemeral port, in a thread; ``.base`` is its URL."""
    with UvicornThread(app, **config) as server:
        yield server


def facecert(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``facecert ARGS`` as its own process, forked from a server that has imported the harness once
    (facecert.certify.matrix.run_facecert): what ``subprocess.run([FACECERT, ...])`` gives, without
    a second of imports per run. Its stdin is /dev/null; it gets ``env``, else this process's environment."""
    with tempfile.TemporaryDirectory(prefix="facecert-run-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        code = run_facecert(
            list(args), out, err, cwd=cwd, timeout=timeout, env=dict(os.environ if env is None else env)
        )
        if code == -9:
            raise subprocess.TimeoutExpired([str(FACECERT), *args], timeout)
        read = lambda path: path.read_text(encoding="utf-8", errors="replace")  # noqa: E731
        return subprocess.CompletedProcess([str(FACECERT), *args], code, read(out), read(err))


def niced(argv: list[str], by: int = 10) -> list[str]:
    """``argv`` run at a lower CPU priority (``nice -n BY``; as it is where there is no ``nice``): for a
    CPU-hungry process whose timing no test judges (Schemathesis and the server it fuzzes), so that on a
    busy machine the certification runs next to it, which are judged on their cadence, get the CPU first."""
    nice = shutil.which("nice")
    return [nice, "-n", str(by), *argv] if nice else argv


def start_proxy(upstream: str, report: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``facecert proxy`` in front of ``upstream`` on an ephemeral 127.0.0.1 port, at the tests' time
    scale, writing to ``report``; stdout and stderr together, as text (the tests read its lines)."""
    command = [str(FACECERT), "proxy", "--upstream", upstream, "--listen", "127.0.0.1:0", "--report", str(report)]
    return subprocess.Popen(
        [*command, "--time-scale", str(SCALE), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


@contextmanager
def small_tmpfs(folder: Path, size: str = "3m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder``, to fill as a disk fills: root only (mounting needs it), a
    skip saying why elsewhere (tests/server/test_disk_full.py holds the same paths to account without it)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the max_page_count tests cover the store without it)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill_disk(folder: Path) -> Path:
    """Write zeros into ``folder/filler`` until the filesystem takes no more; the file, to free it again."""
    filler = folder / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(bytes(65536))
                out.flush()
        except OSError:
            pass
    return filler
