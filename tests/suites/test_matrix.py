"""The mutation matrix in CI: every fault knob of the reference device and
every misbehaviour of the mock server must fail its certification plan with
the intended rule named; docs/mutation-matrix.md lists every one of them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from facecert.certify.matrix import SERVER_TAGS_FOR_SCENARIO, TAGS_FOR_SCENARIO, Row, rows, run_row
from facecert.core.rules.registry import RULES
from facecert.mock_device import FAULTS
from facecert.mock_device.faults import EXEMPT_RULES
from facecert.mock_server import MISBEHAVIOURS

DOC = Path(__file__).resolve().parents[2] / "docs" / "mutation-matrix.md"
FEATURES = Path(__file__).resolve().parents[2] / "features"
# rows certified at once: a row's plan mostly waits on protocol time (0.65-1.4 CPU-s in 0.2-10 s), so six at a
# time keep well under a core while the other workers test on (each row runs only the flows its knob needs:
# 143 s of plans, 38 s for the matrix alone at six; 251 s and 61 s when a server row ran the whole server plan)
CONCURRENT_ROWS = 6


def _key(row: Row) -> str:
    return f"{row.peer}-{row.knob}"


@pytest.fixture(scope="module")
def certified(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Row]]]:
    """Every row's certification, CONCURRENT_ROWS at a time from the module's first row test on, each in
    a folder of its own; server rows (most wait out task deadlines) first, as run_matrix does."""
    folder = tmp_path_factory.mktemp("matrix")
    order = sorted(rows(), key=lambda row: row.peer != "server")
    with ThreadPoolExecutor(max_workers=CONCURRENT_ROWS, thread_name_prefix="matrix-row") as pool:
        futures = {_key(row): pool.submit(run_row, row, folder) for row in order}
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()


@pytest.mark.slow
@pytest.mark.parametrize("row", rows(), ids=_key)
def test_knob_is_caught(row: Row, certified: dict[str, Future[Row]]) -> None:
    done = certified[_key(row)].result()
    assert done.caught, (
        f"{row.peer}/{row.knob} ({row.rule}): {done.verdict}; failed {list(done.failed)[:3]} "
        f"({done.why!r}); root causes {list(done.causes)}"
    )


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


def _feature_tags(peer: str) -> set[str]:
    """The tags written on the plan's features and scenarios (``@cadence`` -> ``cadence``)."""
    tags = set()
    for feature in (FEATURES / peer).glob("*.feature"):
        for line in feature.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("@"):
                tags.update(word[1:] for word in line.split() if word.startswith("@"))
    return tags


@pytest.mark.parametrize(
    ("peer", "scenarios", "table"),
    [
        ("device", {f.scenario for f in FAULTS}, TAGS_FOR_SCENARIO),
        ("server", {m.scenario for m in MISBEHAVIOURS.values()}, SERVER_TAGS_FOR_SCENARIO),
    ],
)
def test_every_knobs_scenario_selects_flows_of_its_plan(peer: str, scenarios: set[str], table: dict[str, str]) -> None:
    """A knob's ``scenario`` must be in its table (else ``rows()`` fails with a bare KeyError) and every tag
    the table gives must be on a feature of that peer's plan (else the row runs no flow and cannot catch)."""
    assert scenarios - table.keys() == set(), sorted(scenarios - table.keys())
    written = _feature_tags(peer)
    for scenario in scenarios:
        named = {tag.strip() for tag in table[scenario].split(" or ")}
        assert named <= written, (scenario, sorted(named - written))
