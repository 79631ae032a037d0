"""The mutation matrix of tests/suites/test_matrix.py as a job in the background.

Each row certifies one of our reference peers broken one way (facecert.certify.matrix): about sixty
certifications that mostly wait on protocol time, 75-100 s of a worker at six at a time. A row's
verdict does not hang on its own timing: a starved row's late poll adds a cadence finding, and never
takes away the rule its knob breaks, which is all a row is checked for (``Row.caught``). So the rows run
beside the other tests, niced (the certifications the workers judge on their cadence get the CPU
first), and each row's outcome is ``rows/<peer>-<knob>.json`` in the job's folder.

    python -m tests.suites.matrix_job FOLDER --watch PID KEY [KEY ...]

The job ends with its rows, or as soon as process PID (the pytest session) is gone: then it stops its
process group, which is itself, the fork server and every row it forked.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from facecert.certify.matrix import Row, rows, run_row
from tests.background import alive, write_result

# rows certified at once: a row's plan mostly waits on protocol time (0.65-1.4 CPU-s in 4-50 s). The longest
# row, server/ignore-queued-tasks, waits out every task scenario's deadline (48 s); server rows go first. Six at
# a time took 75-100 s inside a worker; beside both workers four keep the start of the session less crowded
# and still end long before the tests that read them (about two minutes)
CONCURRENT_ROWS = 4
NICE = 10
DEADLINE_S = 900.0  # a bound on the whole matrix, far above what it takes


def key(row: Row) -> str:
    return f"{row.peer}-{row.knob}"


def result_name(name: str) -> str:
    """Where the outcome of the row ``name`` (:func:`key`) is, in the job's folder."""
    return f"rows/{name}.json"


def certify_row(row: Row, folder: Path) -> None:
    """One row, its outcome (or why it could not run) written whole."""
    try:
        result = dataclasses.asdict(run_row(row, folder / "runs"))
    except Exception as exc:  # noqa: BLE001 - the test says what stopped the row
        result = {"error": f"{type(exc).__name__}: {exc}"}
    write_result(folder / result_name(key(row)), result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("keys", nargs="+")
    parser.add_argument("--watch", type=int, required=True, help="end when this process (the session) is gone")
    args = parser.parse_args()
    os.nice(NICE)  # before the fork server starts: every row inherits it
    wanted = set(args.keys)
    chosen = sorted((row for row in rows() if key(row) in wanted), key=lambda row: row.peer != "server")
    (args.folder / "runs").mkdir(parents=True, exist_ok=True)
    pool = ThreadPoolExecutor(max_workers=CONCURRENT_ROWS, thread_name_prefix="matrix-row")
    futures = [pool.submit(certify_row, row, args.folder) for row in chosen]
    deadline = time.monotonic() + DEADLINE_S
    # woken as rows end; every half second it looks whether the session is still there
    while wait(futures, timeout=0.5).not_done:
        if not alive(args.watch) or time.monotonic() > deadline:
            os.killpg(0, signal.SIGKILL)  # its group: the job, the fork server, every row
    pool.shutdown(wait=True)


if __name__ == "__main__":
    main()
