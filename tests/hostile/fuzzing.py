"""The Schemathesis passes of tests/hostile/test_schemathesis.py as a job in the background.

Each pass is mostly Schemathesis' own CPU (niced) and the server it fuzzes: a minute or more of waiting
for the worker that ran them inside its test. So the session starts them as it begins (the first worker
to claim them: tests/hostile/conftest.py, tests/background.py), as a process of its own, and the tests,
which run last, read what each pass left in ``<folder>/<api>/outcome.json``. Meanwhile both workers run
the other tests.

    python -m tests.hostile.fuzzing FOLDER --watch PID API [API ...]

The job ends with its passes, or as soon as process PID (the pytest session) is gone, its servers and
Schemathesis stopped: an interrupted session leaves nothing running.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from tests.background import alive, read_result, write_result
from tests.hostile.conftest import FACECERT, ROOT, ServeProcess, tracebacks
from tests.support import niced

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
DEVICE_EXAMPLES = 200
ADMIN_EXAMPLES = 50
TIMEOUT_S = 240  # a bound on one pass, far above what it takes
OUTCOME = "outcome.json"

# Every check is on unless a section below turns it off (a check named on the command line, as with
# `-c all`, would override these per-operation settings).
COMMON = """\
# written by tests/hostile/fuzzing.py: see tests/hostile/test_schemathesis.py for why each setting
[checks]
enabled = true
"""
DEVICE = (
    COMMON
    + """\
[checks.unsupported_method]
enabled = false

[[operations]]
include-path = "/taskRequest"
include-method = "POST"
checks.negative_data_rejection.enabled = false
"""
)
# the document's `facecert openapi` flags, examples per operation and Schemathesis config, by API
APIS = {"device": ((), DEVICE_EXAMPLES, DEVICE), "control": (("--admin",), ADMIN_EXAMPLES, COMMON)}


def openapi_document(folder: Path, *flags: str) -> Path:
    """The document as a user gets it: from the CLI."""
    path = folder / ("admin.json" if flags else "device.json")
    done = subprocess.run(
        [str(FACECERT), "openapi", *flags, "-o", str(path)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"facecert openapi {' '.join(flags)} failed: {done.stderr[-2000:]}")
    return path


def schemathesis_argv(document: Path, url: str, folder: Path, examples: int) -> list[str]:
    return [
        *niced([str(SCHEMATHESIS)]),
        "--config-file",
        str(folder / "schemathesis.toml"),
        "run",
        str(document),
        "--url",
        url,
        "--max-examples",
        str(examples),
        "--generation-database",
        "none",
        "--no-color",
        "--request-timeout",
        "20",
        "--report",
        "junit",
        "--report-junit-path",
        str(folder / f"{document.stem}-junit.xml"),
    ]


class Job:
    """Both passes, each against a server of its own; every process it started is stopped by :meth:`stop`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.servers: list[ServeProcess] = []
        self.runs: list[subprocess.Popen[str]] = []
        self.lock = threading.Lock()
        self.stopping = False

    def fuzz(self, api: str) -> None:
        """One pass; its outcome (or why it could not run) written whole into ``<api>/outcome.json``."""
        folder = self.folder / api
        folder.mkdir(parents=True, exist_ok=True)
        try:
            outcome = self._fuzz(api, folder)
        except Exception as exc:  # noqa: BLE001 - the test says what stopped the pass
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        write_result(folder / OUTCOME, outcome)

    def _fuzz(self, api: str, folder: Path) -> dict[str, Any]:
        flags, examples, config = APIS[api]
        server = ServeProcess(folder / "serve", "--time-scale", "0.05", nice=True)
        with self.lock:
            if self.stopping:
                raise RuntimeError("the session ended before this pass began")
            self.servers.append(server)
        server.start()
        document = openapi_document(folder, *flags)
        (folder / "schemathesis.toml").write_text(config, encoding="utf-8")
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.hostile.schemathesis_hooks",
            "COLUMNS": "160",
            "PYTHONPATH": str(ROOT),
        }
        argv = schemathesis_argv(document, server.url, folder, examples)
        with self.lock:
            if self.stopping:
                raise RuntimeError("the session ended before this pass began")
            run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
            self.runs.append(run)
        try:
            stdout, stderr = run.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.kill()
            stdout, stderr = run.communicate()
            stderr += f"\n(the pass did not end within {TIMEOUT_S} s and was stopped)"
        alive = server.alive()  # right after its pass, as a test would have asked
        server.stop()
        return {
            "returncode": run.returncode,
            "stdout": stdout[-60_000:],
            "stderr": stderr[-5000:],
            "alive": alive,
            "server_tracebacks": [t[-1500:] for t in tracebacks(server.stderr())[:2]],
            "server_traceback_count": len(tracebacks(server.stderr())),
        }

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            runs, servers = list(self.runs), list(self.servers)
        for run in runs:
            if run.poll() is None:
                run.kill()
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("apis", nargs="+", choices=sorted(APIS))
    parser.add_argument("--watch", type=int, required=True, help="end when this process (the session) is gone")
    args = parser.parse_args()
    job = Job(args.folder)
    pool = ThreadPoolExecutor(max_workers=len(args.apis), thread_name_prefix="fuzz")
    passes = [pool.submit(job.fuzz, api) for api in args.apis]
    deadline = time.monotonic() + TIMEOUT_S + 120
    # woken as the passes end; every half second it looks whether the session is still there
    while wait(passes, timeout=0.5).not_done:
        if not alive(args.watch) or time.monotonic() > deadline:
            job.stop()
            break
    pool.shutdown(wait=True)


def outcome(folder: Path, api: str, timeout: float) -> dict[str, Any]:
    """What the pass of ``api`` left, waiting for it up to ``timeout`` s; RuntimeError if the job died first."""
    return read_result(folder, f"{api}/{OUTCOME}", timeout, f"the {api} pass's outcome")


if __name__ == "__main__":
    main()
