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

Both passes run at once, in the background from the session's start (tests/hostile/fuzzing.py, started by
tests/hostile/conftest.py as collection ends), and these tests, which run last, read their outcomes: each
pass is niced and mostly Schemathesis' own CPU, so no worker waits a minute or more for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile.fuzzing import APIS, TIMEOUT_S, outcome

pytestmark = [pytest.mark.timeout(TIMEOUT_S + 180), pytest.mark.fuzz]


def report(done: dict[str, Any]) -> str:
    found = done["server_tracebacks"]
    log = (
        f"\n\nserver tracebacks ({done['server_traceback_count']}), the first:\n" + "\n\n".join(found) if found else ""
    )
    return f"schemathesis exit code {done['returncode']}\n{done['stdout']}\n{done['stderr']}{log}"


@pytest.fixture(scope="module")
def fuzzed(request: pytest.FixtureRequest) -> Path:
    """The session's fuzzing job (started as collection ended; started now if it was not)."""
    from tests.hostile.conftest import start_fuzzing

    folder = start_fuzzing(request.session)
    assert folder is not None, "no Schemathesis test was selected"
    return folder


@pytest.mark.parametrize("api", list(APIS))
def test_api(fuzzed: Path, api: str) -> None:
    done = outcome(fuzzed, api, timeout=TIMEOUT_S + 150)
    assert "error" not in done, f"the {api} pass could not run: {done['error']}"
    assert done["alive"], "the server died under Schemathesis"
    assert done["returncode"] == 0, report(done)
