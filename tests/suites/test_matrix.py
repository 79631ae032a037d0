"""The mutation matrix in CI: every fault knob of the reference device and
every misbehaviour of the mock server must fail its certification plan with
the intended rule named; docs/mutation-matrix.md lists every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from facecert.certify.matrix import Row, rows, run_row
from facecert.core.rules.registry import RULES
from facecert.mock_device.faults import EXEMPT_RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "mutation-matrix.md"


# one test per row, each on any free worker (tests/conftest.py, SPREAD): the ~60 plans spread over the workers
@pytest.mark.slow
@pytest.mark.parametrize("row", rows(), ids=lambda row: f"{row.peer}-{row.knob}")
def test_knob_is_caught(row: Row, tmp_path: Path) -> None:
    done = run_row(row, tmp_path)
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
