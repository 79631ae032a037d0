"""Schemathesis against a real ``facecert serve``: the device API (``facecert
openapi``) and the control API (``facecert openapi --admin``), each on a
server of its own, with every check, bounded to about two minutes together.
A failure prints Schemathesis' own report (each failure with a curl line to
reproduce it).

Checks: all (``[checks] enabled = true``), configured explicitly where the mock server's
documented behaviour differs from Schemathesis' default expectation:

- ``negative_data_rejection`` is off for ``POST /taskRequest`` only: a poll
  that breaks its schema is still answered (idleTime or the next task) so a
  sloppy device can be certified; the findings are recorded
  (docs/mock-server.md, "Answers"). Every other endpoint refuses a
  schema-invalid body with 400, and that is checked.
- ``unsupported_method`` is off for the device API: a device endpoint judges
  every method (HTTP-METHOD finding, answered 400) instead of a bare 405
  (docs/mock-server.md). The hostile corpus checks those answers
  (tests/hostile/test_corpus.py, class ``methods``). The control API keeps
  the check.
- The hooks (tests/hostile/schemathesis_hooks.py) put real images where the
  contract wants a JPEG in bodies generated as valid (an OpenAPI document
  cannot say "decodable"), and drop control requests that would close the
  server's port on purpose (outage mode ``refuse``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.conftest import FACECERT, ROOT, ServeProcess, tracebacks

pytestmark = [pytest.mark.timeout(300), pytest.mark.fuzz]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
DEVICE_SECONDS = 50
ADMIN_SECONDS = 45
MAX_EXAMPLES = 200

# Every check is on unless a section below turns it off (a check named on the command line, as with
# `-c all`, would override these per-operation settings).
COMMON = """\
# written by tests/hostile/test_schemathesis.py: see its docstring for why each setting
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


def openapi_document(folder: Path, *flags: str) -> Path:
    """The document as a user gets it: from the CLI."""
    path = folder / ("admin.json" if flags else "device.json")
    subprocess.run([str(FACECERT), "openapi", *flags, "-o", str(path)], check=True, capture_output=True, timeout=120)
    return path


def schemathesis(document: Path, url: str, folder: Path, seconds: int, config: str) -> subprocess.CompletedProcess[str]:
    path = folder / "schemathesis.toml"
    path.write_text(config, encoding="utf-8")
    argv = [
        str(SCHEMATHESIS),
        "--config-file",
        str(path),
        "run",
        str(document),
        "--url",
        url,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(seconds),
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
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.hostile.schemathesis_hooks",
        "COLUMNS": "160",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT, env=env)


def report(result: subprocess.CompletedProcess[str], server: ServeProcess) -> str:
    found = tracebacks(server.stderr())
    log = (
        f"\n\nserver tracebacks ({len(found)}), the first:\n" + "\n\n".join(t[-1500:] for t in found[:2])
        if found
        else ""
    )
    return f"schemathesis exit code {result.returncode}\n{result.stdout[-60_000:]}\n{result.stderr[-5000:]}{log}"


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path / "serve", "--time-scale", "0.05").start()
    yield server
    server.stop()


def test_device_api(fresh_server: ServeProcess, tmp_path: Path) -> None:
    document = openapi_document(tmp_path)
    result = schemathesis(document, fresh_server.url, tmp_path, DEVICE_SECONDS, DEVICE)
    assert fresh_server.alive(), "the server died under Schemathesis"
    assert result.returncode == 0, report(result, fresh_server)


def test_control_api(fresh_server: ServeProcess, tmp_path: Path) -> None:
    document = openapi_document(tmp_path, "--admin")
    result = schemathesis(document, fresh_server.url, tmp_path, ADMIN_SECONDS, COMMON)
    assert fresh_server.alive(), "the server died under Schemathesis"
    assert result.returncode == 0, report(result, fresh_server)
