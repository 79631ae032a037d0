"""kill -9 mid-traffic loses no answered exchange: each one is committed
before its answer is sent; and it leaves nothing in the temporary directory (the default assets are
served from memory: a folder of them there outlived every killed server)."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.server.helpers import poll_body

ANSWERED_BEFORE_KILL = 40


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            if needle in line:
                return seen
    raise AssertionError(f"server never printed {needle!r}; output: {seen}")


def test_kill_minus_nine_keeps_every_answered_exchange(tmp_path: Path) -> None:
    db, port_file = tmp_path / "session.db", tmp_path / "port"
    temp = tmp_path / "tmp"
    temp.mkdir()
    command = [
        sys.executable,
        "-m",
        "facecert.mock_server",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--db",
        str(db),
        "--time-scale",
        "0.05",
        "--quiet",
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "TMPDIR": str(temp)},
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        _wait_for_line(proc, "listening", timeout=30)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        answered: list[str] = []
        enough = threading.Condition()

        def traffic() -> None:
            with httpx.Client(base_url=url, timeout=5) as client:
                for n in range(10_000):
                    device = f"KILL{n:05d}"
                    try:
                        client.post("/taskRequest", json=poll_body(device)).raise_for_status()
                    except httpx.HTTPError:
                        return
                    with enough:
                        answered.append(device)
                        enough.notify_all()

        driver = threading.Thread(target=traffic)
        driver.start()
        with enough:
            assert enough.wait_for(lambda: len(answered) >= ANSWERED_BEFORE_KILL, timeout=30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        driver.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    stored = {row[0] for row in sqlite3.connect(db).execute("SELECT device_id FROM exchanges")}
    assert set(answered) <= stored
    assert len(answered) >= ANSWERED_BEFORE_KILL
    assert list(temp.iterdir()) == []
