"""The mutation matrix in CI: every fault knob of the reference device and
every misbehaviour of the mock server must fail its certification plan with
the intended rule named; docs/mutation-matrix.md lists every one of them.

The rows are certified in the background from the session's start (tests/suites/matrix_job.py, started
by tests/suites/conftest.py as collection ends), and the row tests, which run last, read their outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from facecert.certify.matrix import Row, rows
from facecert.core.rules.registry import RULES
from facecert.mock_device.faults import EXEMPT_RULES
from tests.background import read_result
from tests.suites.matrix_job import DEADLINE_S, key, result_name

DOC = Path(__file__).resolve().parents[2] / "docs" / "mutation-matrix.md"


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest) -> Path:
    """The session's matrix job (started as collection ended, tests/suites/conftest.py; now if it was not):
    every selected row certified in the background, niced, four at a time."""
    from tests.suites.conftest import start_matrix

    folder = start_matrix(request.session)
    assert folder is not None, "no row of the matrix was selected"
    return folder


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 60)
@pytest.mark.parametrize("row", rows(), ids=key)
def test_knob_is_caught(row: Row, matrix: Path) -> None:
    done = read_result(matrix, result_name(key(row)), DEADLINE_S, f"the outcome of the row {key(row)}")
    assert "error" not in done, f"{row.peer}/{row.knob} could not be certified: {done['error']}"
    done = Row(**{**done, "failed": tuple(done["failed"])})
    assert done.caught, f"{row.peer}/{row.knob} ({row.rule}): {done.verdict}; failed {list(done.failed)[:3]}"


def test_every_rule_a_peer_can_break_is_in_the_matrix() -> None:
    covered = {r.rule for r in rows()}
    # no knob: MSG-SCHEMA (see docs/mutation-matrix.md) and the harness's own rules (no peer breaks them)
    # and the capability rules, which a capability statement breaks (mock_device.faults.EXEMPT_RULES says where)
    breakable = {rule.id for rule in RULES.values() if rule.party != "harness"} - {"MSG-SCHEMA"} - set(EXEMPT_RULES)
    assert breakable - covered == set(), sorted(breakable - covered)


def test_the_generated_document_lists_every_row() -> None:
    text = DOC.read_text(encoding="utf-8")
    for row in rows():
        assert f"`{row.knob}`" in text, (
            f"docs/mutation-matrix.md lacks {row.knob}: regenerate it with "
            "`facecert certify matrix --write docs/mutation-matrix.md`"
        )
    assert "**NO**" not in text
