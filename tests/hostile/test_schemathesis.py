"""Schemathesis against a real ``facecert serve``: the device API (``facecert
openapi``) and the control API (``facecert openapi --admin``), each on a
server of its own, with every check, each phase run once (see "Budget" below).
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

Budget: one pass of every phase (examples, coverage, fuzzing, stateful), with a number of generated
cases per operation, and no ``--max-time``: with a time budget Schemathesis repeats fuzzing until the
budget is spent (the device API's 5 operations took 50 s of fuzzing where one pass of 200 cases each
takes about 25 s), and the budget also made what ran depend on the machine's load. The control API
has 21 operations: 50 cases each in one pass is more than the 45 s budget used to reach on the two
CI cores (about 36 each) and takes about as long; its coverage and stateful phases run whole.

Both passes run at once, from the module's first test on (``passes``): each is niced and mostly
Schemathesis' own CPU, so the worker holds the longer of the two instead of their sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.conftest import ROOT, ServeProcess, tracebacks
from tests.support import facecert, niced

pytestmark = [pytest.mark.timeout(300), pytest.mark.fuzz]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
DEVICE_EXAMPLES = 200
ADMIN_EXAMPLES = 50
TIMEOUT_S = 240  # a bound on one pass, far above what it takes

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
    done = facecert("openapi", *flags, "-o", str(path), timeout=120)
    assert done.returncode == 0, done.stderr
    return path


def schemathesis(
    document: Path, url: str, folder: Path, examples: int, config: str
) -> subprocess.CompletedProcess[str]:
    path = folder / "schemathesis.toml"
    path.write_text(config, encoding="utf-8")
    argv = [
        *niced([str(SCHEMATHESIS)]),
        "--config-file",
        str(path),
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
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.hostile.schemathesis_hooks",
        "COLUMNS": "160",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, env=env)


def report(result: subprocess.CompletedProcess[str], server: ServeProcess) -> str:
    found = tracebacks(server.stderr())
    log = (
        f"\n\nserver tracebacks ({len(found)}), the first:\n" + "\n\n".join(t[-1500:] for t in found[:2])
        if found
        else ""
    )
    return f"schemathesis exit code {result.returncode}\n{result.stdout[-60_000:]}\n{result.stderr[-5000:]}{log}"


@dataclass
class Pass:
    """One API's Schemathesis pass against a server of its own, and whether that server outlived it."""

    result: subprocess.CompletedProcess[str]
    server: ServeProcess
    alive: bool


# the document's `facecert openapi` flags, examples per operation and Schemathesis config, by API
APIS = {"device": ((), DEVICE_EXAMPLES, DEVICE), "control": (("--admin",), ADMIN_EXAMPLES, COMMON)}


def fuzz(api: str, folder: Path, servers: list[ServeProcess]) -> Pass:
    flags, examples, config = APIS[api]
    folder.mkdir(parents=True)
    server = ServeProcess(folder / "serve", "--time-scale", "0.05", nice=True)
    servers.append(server)  # stopped by the fixture, whatever happens here
    server.start()
    result = schemathesis(openapi_document(folder, *flags), server.url, folder, examples, config)
    return Pass(result, server, server.alive())  # alive right after its pass, as a test would have asked


@pytest.fixture(scope="module")
def passes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Pass]]]:
    """The passes of the APIs this session tests (both, unless a test is run alone), started together."""
    folder = tmp_path_factory.mktemp("schemathesis")
    tests = {item.name for item in request.session.items if getattr(item, "module", None) is request.module}
    wanted = [api for api in APIS if f"test_{api}_api" in tests]
    servers: list[ServeProcess] = []
    with ThreadPoolExecutor(max_workers=len(APIS), thread_name_prefix="schemathesis") as pool:
        try:
            yield {api: pool.submit(fuzz, api, folder / api, servers) for api in wanted}
        finally:
            for server in servers:
                server.stop()


def test_device_api(passes: dict[str, Future[Pass]]) -> None:
    done = passes["device"].result()
    assert done.alive, "the server died under Schemathesis"
    assert done.result.returncode == 0, report(done.result, done.server)


def test_control_api(passes: dict[str, Future[Pass]]) -> None:
    done = passes["control"].result()
    assert done.alive, "the server died under Schemathesis"
    assert done.result.returncode == 0, report(done.result, done.server)
