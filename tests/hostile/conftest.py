"""Real peers for the hostile tests: ``facecert serve`` as its own process
(its stderr captured, its RSS measurable, its SQLite file readable) and
mitmdump with the addon in front of it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facecert.proxy_addons.process import Mitmdump, MitmdumpConfig
from tests.support import niced

ROOT = Path(__file__).resolve().parents[2]
FACECERT = Path(sys.executable).parent / "facecert"
TRACEBACK = "Traceback (most recent call last)"


class ServeProcess:
    """``facecert serve`` on 127.0.0.1, an ephemeral port and a session db."""

    def __init__(self, folder: Path, *args: str, nice: bool = False) -> None:
        self.nice = nice  # at a lower CPU priority (tests.support.niced): its timing is not judged
        self.folder = folder
        self.db = folder / "session.db"
        self.port_file = folder / "port"
        self.stderr_path = folder / "serve.stderr"
        self.stdout_path = folder / "serve.stdout"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 30.0) -> ServeProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [
            str(FACECERT),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(self.port_file),
            "--db",
            str(self.db),
            "--quiet",
            *self.args,
        ]
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                niced(argv) if self.nice else argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            )
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while time.monotonic() < deadline and self.proc.poll() is None:
            text = self.port_file.read_text() if self.port_file.exists() else ""
            if text.strip().isdigit():
                self.port = int(text)
                return self
            pause.wait(0.05)  # the port file appears once uvicorn listens; no event to wait on across processes
        self.stop()
        raise RuntimeError(f"facecert serve did not start:\n{self.stderr()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return rss_of(self.proc.pid) if self.proc else 0

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""

    def stored_cases(self, header: str) -> dict[str, Any]:
        """Value of ``header`` -> stored status, for every stored exchange
        that carries it (read from the session database, read-only)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute("SELECT request_headers, status FROM exchanges").fetchall()
        finally:
            conn.close()
        found: dict[str, Any] = {}
        for headers, status in rows:
            try:
                value = json.loads(headers or "{}").get(header.lower())
            except (ValueError, AttributeError):
                continue
            if isinstance(value, str):
                found[value] = status
        return found

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def rss_of(pid: int) -> int:
    """Resident set size in bytes (Linux /proc), 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def excerpt(traceback: str, width: int = 240) -> str:
    """A traceback short enough to read in a test failure: the frames of our
    own code and the exception, each line cut to ``width``."""
    lines = traceback.splitlines()
    ours = [i for i, line in enumerate(lines) if line.strip().startswith("File") and "site-packages" not in line]
    keep = sorted({0, *ours, *(i + 1 for i in ours), *range(max(0, len(lines) - 3), len(lines))})
    return "\n".join(lines[i][:width] for i in keep if i < len(lines))


def tracebacks(text: str) -> list[str]:
    """Each traceback in a log, from its header to its last line (the exception)."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if TRACEBACK in line:
            end = i + 1
            while end < len(lines) and (
                lines[end].startswith((" ", "\t"))
                or lines[end].startswith(("During", "The ", "+"))
                or not lines[end].strip()
            ):
                end += 1
            found.append("\n".join(lines[i : end + 1]))
    return found


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path_factory.mktemp("serve"), "--time-scale", "0.05").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory, mitm_confdir: Path
) -> Iterator[tuple[ServeProcess, Mitmdump, Path]]:
    """A mock server of its own and mitmdump + the addon in reverse mode in front of it."""
    server = ServeProcess(tmp_path_factory.mktemp("serve-behind-proxy"), "--time-scale", "0.05").start()
    report = tmp_path_factory.mktemp("proxy-report")
    proxy = Mitmdump(
        MitmdumpConfig(
            upstream=server.url,
            confdir=mitm_confdir,
            options={"facecert_report_dir": str(report), "facecert_time_scale": 0.05},
        )
    )
    try:
        proxy.start()
    except Exception:
        server.stop()
        raise
    yield server, proxy, report
    proxy.stop(timeout=60)
    server.stop()


# ---- the Schemathesis passes, in the background (tests/hostile/fuzzing.py) -----------------------------
FUZZ_MODULE = "tests/hostile/test_schemathesis.py"


def pytest_collection_finish(session: pytest.Session) -> None:
    """The session's fuzzing starts as collection ends, so that it runs beside the other tests."""
    if not session.config.option.collectonly:
        start_fuzzing(session)


def start_fuzzing(session: pytest.Session) -> Path | None:
    """The fuzzing job of the APIs whose tests the session selected, started by the first worker to get
    here (idempotent); its folder, or None when no Schemathesis test was selected."""
    from tests.background import claim, launch
    from tests.hostile.fuzzing import APIS

    chosen = {
        item.callspec.params["api"]
        for item in session.items
        if item.nodeid.startswith(f"{FUZZ_MODULE}::") and hasattr(item, "callspec")
    }
    apis = [api for api in APIS if api in chosen]
    if not apis:
        return None
    folder, first, watch = claim(session.config, "fuzz")
    if first:
        launch(folder, "tests.hostile.fuzzing", str(folder), *apis, "--watch", str(watch))
    return folder
