"""A ``mitmdump`` subprocess in reverse-proxy mode, with or without the addon.

Used by ``facecert proxy``, the tests and the benchmark alike. mitmdump runs in
its own session, so a Ctrl-C in the terminal reaches us only and we forward
it: that is how the addon always gets to write its reports before exiting.
The listening address is read from mitmdump's own log line, so port 0 works.

``connection_strategy=lazy``: mitmproxy reads the device's request before it
connects to the server. With the default (eager) a server that is down makes
mitmproxy drop the device's connection before any request exists, and the
outage is invisible to the addon; lazily, the request is read, mitmproxy
answers 502 and the addon reports ANSWER-MISSING for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ADDON = Path(__file__).resolve().parent / "facecert_addon.py"
_LISTENING = re.compile(r"listening at (?:\*|\[?([0-9a-fA-F.:]+?)\]?):(\d+)")


class MitmdumpError(RuntimeError):
    """mitmdump could not be started (message meant for a person)."""


def mitmdump_path() -> Path:
    """mitmdump next to the running interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / "mitmdump"
    if local.exists():
        return local
    from shutil import which

    found = which("mitmdump")
    if not found:
        raise MitmdumpError("mitmdump not found: install mitmproxy>=12.3 in this environment")
    return Path(found)


@dataclass
class MitmdumpConfig:
    upstream: str
    confdir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    addon: bool = True
    options: dict[str, object] = field(default_factory=dict)  # facecert_* and other --set options
    extra_args: list[str] = field(default_factory=list)
    executable: Path | None = None

    def argv(self) -> list[str]:
        args = [
            str(self.executable or mitmdump_path()),
            "--mode",
            f"reverse:{self.upstream}",
            "--listen-host",
            self.listen_host,
            "--listen-port",
            str(self.listen_port),
            "--set",
            f"confdir={self.confdir}",
            "--set",
            "termlog_verbosity=info",
            "--set",
            "flow_detail=0",
            "--set",
            "connection_strategy=lazy",
        ]
        if self.addon:
            args += ["-s", str(ADDON)]
        for name, value in self.options.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["--set", f"{name}={text}"]
        return args + self.extra_args


class Mitmdump:
    """Start, watch and stop one mitmdump; its output lines are kept and can be followed."""

    def __init__(
        self, config: MitmdumpConfig, on_line: Callable[[str], None] | None = None, keep_lines: int = 20_000
    ) -> None:
        self.config = config
        self.on_line = on_line
        self.lines: deque[str] = deque(maxlen=keep_lines)
        self.address: tuple[str, int] | None = None
        self._ready = threading.Event()
        self._printed = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.address is None:
            raise MitmdumpError("mitmdump is not listening")
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise MitmdumpError("mitmdump is not running")
        return self._proc.pid

    def start(self, timeout: float = 30.0, cancelled: Callable[[], bool] | None = None) -> Mitmdump:
        """Run mitmdump and wait until it listens. ``cancelled`` is asked every 50 ms: once it says
        True this returns at once, listening or not (``address`` tells), and the caller stops it."""
        self.config.confdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            self._proc = subprocess.Popen(
                self.config.argv(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise MitmdumpError(f"cannot run mitmdump: {exc.strerror}") from None
        self._reader = threading.Thread(target=self._read, name="mitmdump-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        # set by the listening line, or when mitmdump's output ends
        while not self._ready.wait(0.05) and time.monotonic() < deadline:
            if cancelled is not None and cancelled():
                return self
        if self.address is None:
            self.stop(timeout=5)
            tail = "\n".join(list(self.lines)[-15:])
            raise MitmdumpError(f"mitmdump did not start listening (exit code {self._proc.returncode}):\n{tail}")
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            self._follow()
        finally:
            self._ready.set()
            with self._printed:
                self._printed.notify_all()

    def _follow(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            with self._printed:
                self.lines.append(line)
                self._printed.notify_all()
            if self.address is None:
                match = _LISTENING.search(line)
                if match:
                    host = match.group(1) or self.config.listen_host
                    self.address = (host, int(match.group(2)))
                    self._ready.set()
            if self.on_line is not None:
                self.on_line(line)

    def wait_for_line(self, needle: str | Callable[[str], bool], timeout: float) -> bool:
        """True once a line containing ``needle`` (or a line ``needle`` accepts) was printed; False at the
        deadline."""
        match = needle if callable(needle) else lambda line: needle in line
        with self._printed:
            return self._printed.wait_for(lambda: any(match(line) for line in self.lines), timeout)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for mitmdump to exit on its own; its exit code (None if still running at the deadline)."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGINT (mitmdump runs its ``done`` hooks: our reports), then SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._join_reader()
        return proc.returncode

    def _join_reader(self) -> None:
        """Wait for the reader's last lines, if its thread ever started (join refuses one that did not)."""
        if self._reader is not None and self._reader.is_alive():
            self._reader.join(timeout=5)

    def kill_now(self) -> None:
        """SIGKILL without waiting for anything: safe inside a signal handler (a second Ctrl-C)."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)

    def kill(self) -> int | None:
        """SIGKILL: no hook runs (what a crash or the OOM killer does); the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        self._join_reader()
        return proc.returncode

    def __enter__(self) -> Mitmdump:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
