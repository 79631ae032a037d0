"""The mutation matrix in CI: every fault knob of the reference device and
every misbehaviour of the mock server must fail its certification plan with
the intended rule named; docs/mutation-matrix.md lists every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from facecert.certify.matrix import Row, rows, run_matrix
from facecert.core.rules.registry import RULES
from facecert.mock_device.faults import EXEMPT_RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "mutation-matrix.md"
pytestmark = pytest.mark.timeout(900)  # ~60 plans, four at a time: minutes, not the suite's 300 s default


@pytest.fixture(scope="module")
def matrix() -> list[Row]:
    return run_matrix(workers=4)


def test_no_knob_passes(matrix: list[Row]) -> None:
    missed = [f"{r.peer}/{r.knob} ({r.rule}): {r.verdict}; failed {list(r.failed)[:3]}" for r in matrix if not r.caught]
    assert not missed, "\n".join(missed)


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
