"""Jobs a test session starts in the background as collection ends, and the tests that read what they left.

A job is work that is niced and whose verdicts do not depend on its own timing: Schemathesis' passes
(tests/hostile/fuzzing.py). Inside a test it would hold a worker for a minute or more; as a process of
its own it runs beside the other tests, and the tests that read it are scheduled last (tests/conftest.py,
``LAST``). Only such work: certifications in the background (the mutation matrix was tried) crowd the
start of the session, and the certifications the workers judge on their cadence then lose polls.

Each job is claimed once per session, by whichever worker creates its folder first in the session's
base folder (:func:`claim`), runs in a process group of its own (:func:`launch`) and watches the session:
when that process is gone, the job stops what it started. Its results are JSON files, each written whole
(:func:`write_result`); :func:`read_result` waits for one, and fails at once with the job's log if the job
died first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PID_FILE, LOG_FILE = "job.pid", "job.log"


def session_folder_and_pid(config: pytest.Config) -> tuple[Path, int]:
    """The folder every worker of this session sees, and the session's process (a job watches it)."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    if hasattr(config, "workerinput"):
        # a worker's base folder is in the session's (pytest-xdist reads the same private attribute to make
        # it); the session is the controller, the worker's parent
        return base.parent, os.getppid()
    return base, os.getpid()


def claim(config: pytest.Config, name: str) -> tuple[Path, bool, int]:
    """The job's folder in the session's, whether this process is the first to ask (then it launches the
    job), and the session's pid."""
    shared, pid = session_folder_and_pid(config)
    folder = shared / name
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return folder, False, pid
    return folder, True, pid


def launch(folder: Path, module: str, *args: str) -> None:
    """``python -m MODULE ARGS`` in a process group of its own, its output in ``job.log``: a Ctrl-C at the
    terminal is the session's to handle (the job watches it), and what a killed job leaves behind is
    stopped as one group (:func:`read_result`)."""
    with (folder / LOG_FILE).open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
    (folder / PID_FILE).write_text(str(process.pid), encoding="utf-8")


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def write_result(path: Path, result: dict[str, Any]) -> None:
    """``result`` as ``path``, appearing whole or not at all (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}")
    partial.write_text(json.dumps(result), encoding="utf-8")
    partial.replace(path)


def read_result(folder: Path, name: str, timeout: float, what: str) -> dict[str, Any]:
    """The result ``name`` (a path in the job's folder), waited for up to ``timeout`` s; RuntimeError,
    with the job's log, if the job ended without it. ``what`` says what it is, for the message."""
    path = folder / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        pid_file = folder / PID_FILE
        pid = pid_file.read_text() if pid_file.exists() else ""
        if pid.isdigit() and not alive(int(pid)) and not path.exists():
            try:  # what it started, should it have been killed without stopping them
                os.killpg(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
            log = (folder / LOG_FILE).read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"the job in {folder} ended without {what}; its log:\n{log[-5000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout:.0f} s (see {folder})")
        time.sleep(0.2)  # another process writes it: no event to wait on across processes
    return json.loads(path.read_text(encoding="utf-8"))
