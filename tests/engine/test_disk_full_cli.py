"""Every command whose output the disk will not take (a report, --junit, a baseline, a HAR, the session
database) ends with one line and exit 2, whichever command it was: the user's to fix (free the space), not a
traceback of ours (``facecert.cli.main``). Before, each was a rich traceback and exit 1. The disk is a real,
filled tmpfs (root only: tests/support.py ``small_tmpfs``); what counts as the disk's doing is checked
without one."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
from pathlib import Path

import pytest

from facecert.recording import RecordingFailed, disk_failure, what_failed, what_to_do
from facecert.samples import sample_conversation
from tests.support import FACECERT, fill_disk, small_tmpfs

LINE = "error: the disk would not take what facecert writes: No space left on device; free the space and run again"


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facecert.core.captures.jsonl import write_jsonl

    path = tmp_path_factory.mktemp("capture") / "capture.jsonl"
    write_jsonl(sample_conversation(devices=1, cycles=2), path)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "{capture}", "--junit", "{disk}/junit.xml"],
        ["validate", "{capture}", "--write-baseline", "{disk}/baseline.json"],
        ["openapi", "-o", "{disk}/device.json"],
    ],
    ids=["validate --junit", "validate --write-baseline", "openapi -o"],
)
def test_output_the_disk_refuses_is_one_line_and_exit_2(args: list[str], capture: Path, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        fill_disk(disk)
        argv = [a.format(capture=capture, disk=disk) for a in args]
        done = subprocess.run([str(FACECERT), *argv], capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert " ".join(out.split()) == LINE, out


def test_only_the_disk_passes_for_the_disk(tmp_path: Path) -> None:
    assert disk_failure(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_failure(OSError(errno.EROFS, "Read-only file system"))
    assert not disk_failure(FileNotFoundError(errno.ENOENT, "No such file or directory"))
    assert not disk_failure(PermissionError(errno.EACCES, "Permission denied"))
    assert not disk_failure(ValueError("no"))
    try:
        sqlite3.connect(":memory:").execute("SELECT no_such_column")
    except sqlite3.OperationalError as bug:
        assert not disk_failure(bug)
    assert what_failed(OSError(errno.ENOSPC, "No space left on device", "/r/x.json")) == (
        "No space left on device (/r/x.json)"
    )
    # a store's refusal (a deadline's write in certify, outside the report writing) is the disk's too
    assert disk_failure(RecordingFailed("/r/session.db", OSError(errno.EIO, "Input/output error")))

    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database, " * 1024)
    with pytest.raises(sqlite3.DatabaseError) as corrupt:
        sqlite3.connect(foreign).execute("SELECT * FROM sqlite_master")
    assert corrupt.value.sqlite_errorname == "SQLITE_NOTADB" and not disk_failure(corrupt.value)


def test_free_the_space_only_when_it_is_full() -> None:
    assert what_to_do(OSError(errno.ENOSPC, "No space left on device")) == "free the space and run again"
    assert what_to_do(RecordingFailed("/r/s.db", OSError(errno.EDQUOT, "Disk quota exceeded"))).startswith("free")
    assert what_to_do(OSError(errno.EROFS, "Read-only file system")) == "check the disk and run again"
