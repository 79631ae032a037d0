"""`facecert validate` reads a capture that can be read only once: a pipe (`<(zcat capture.jsonl.gz)`), a FIFO,
or standard input (`-`). The format is sniffed first and the capture then read from its start, so such an
input lost its first 4 KiB and failed mid-line ("Expecting value: line 1 column 1")."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from facecert.core.captures import write_jsonl
from facecert.samples import sample_conversation
from tests.support import facecert

FACECERT = str(Path(sys.executable).parent / "facecert")


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    exchanges = sample_conversation(devices=3, cycles=6)
    path = write_jsonl(exchanges, tmp_path_factory.mktemp("pipes") / "capture.jsonl")
    assert path.stat().st_size > 3 * 4096  # more than one sniff's worth
    return path, len(exchanges)


def _bash(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)


def test_a_pipe_is_judged_like_the_file(capture: tuple[Path, int]) -> None:
    path, count = capture
    plain = _bash(f"{FACECERT} validate {shlex.quote(str(path))}")
    piped = _bash(f"{FACECERT} validate <(cat {shlex.quote(str(path))})")
    assert plain.returncode == piped.returncode == 0, piped.stdout + piped.stderr
    assert f"PASS: {count} exchanges" in plain.stdout and f"PASS: {count} exchanges" in piped.stdout, piped.stdout


def test_standard_input_is_dash(capture: tuple[Path, int]) -> None:
    path, count = capture
    done = _bash(f"cat {shlex.quote(str(path))} | {FACECERT} validate -")
    assert done.returncode == 0 and f"PASS: {count} exchanges" in done.stdout, done.stdout + done.stderr


def test_an_error_in_a_pipe_names_the_pipe_not_a_copy(capture: tuple[Path, int]) -> None:
    path, _ = capture
    done = _bash(f"{FACECERT} validate <(head -c 5000 {shlex.quote(str(path))})")  # cut mid-line
    assert done.returncode == 2, done.stdout + done.stderr
    assert "/dev/fd/" in done.stdout and "facecert-validate-" not in done.stdout, done.stdout


def test_an_input_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    """A Unix socket is not a regular file either, and cannot be opened: one line, exit 2, no traceback."""
    path = tmp_path / "capture.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        done = facecert("validate", str(path), timeout=60)
    assert done.returncode == 2 and "cannot read" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
