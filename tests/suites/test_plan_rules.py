"""Rules only a certification step can check (origin "plan" in the registry:
a task that never came, a face count that did not change, a capture that
never arrived) are proven the way a user meets them: `facecert certify
device|server --demo` against our reference peer broken by the knob or the
misbehaviour of that rule, limited to the flows that check it. Every run must
end "not certified" (exit 1) with the rule among the root causes and behind a
failed scenario. The correct peers passing those scenarios is
tests/suites/test_certify.py (both reference peers are certified)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from facecert.certify.matrix import SERVER_TAGS_FOR_SCENARIO, TAGS_FOR_SCENARIO
from facecert.core.rules.registry import RULES
from facecert.mock_device import FAULTS
from facecert.mock_device.faults import EXEMPT_RULES
from facecert.mock_server import MISBEHAVIOURS
from tests.support import facecert

pytestmark = pytest.mark.slow  # a certification run per plan rule: make test-fast leaves it out

FACECERT = [sys.executable, "-m", "facecert.cli"]


# the server flows whose steps check a plan rule a misbehaviour breaks (a device knob says it by its scenario).
# TASK-NOT-SENT: the foreign-result scenario queues a task for a second device and one poll shows it missing;
# the 13 scenarios of @tasks check it too but each waits out its task deadline (~105 s in all): the mutation
# matrix (tests/suites/test_matrix.py) runs the whole server plan with this misbehaviour.
@dataclass(frozen=True)
class Breaker:
    peer: str  # "device" (a fault knob) or "server" (a misbehaviour)
    name: str
    rule: str
    tags: str

    def command(self, report: Path) -> list[str]:
        option = "--fault" if self.peer == "device" else "--misbehave"
        return [
            "certify",
            self.peer,
            "--demo",
            "--no-html",
            option,
            self.name,
            "--tags",
            self.tags,
            "--report",
            str(report),
        ]


BREAKERS = [
    Breaker("device", f.name, f.rule, TAGS_FOR_SCENARIO[f.scenario])
    for f in FAULTS
    if f.rule and RULES[f.rule].origin == "plan"
]
BREAKERS += [
    Breaker("server", m.name, m.rule, SERVER_TAGS_FOR_SCENARIO[m.scenario])
    for m in MISBEHAVIOURS.values()
    if RULES[m.rule].origin == "plan"
]


@dataclass
class Run:
    returncode: int
    output: str
    summary: dict[str, Any] | None


def _run(breaker: Breaker, folder: Path) -> Run:
    report = folder / f"{breaker.peer}-{breaker.name}"
    done = facecert(*breaker.command(report))
    path = report / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return Run(done.returncode, (done.stdout + done.stderr)[-3000:], summary)


# the breakers whose plans take longest (plan_seconds at time scale 0.05: 9.1, 9.1, 7.1, 6.3, 5.2; the others
# 0.4-3.7), started first so that none of them starts last
LONGEST = ("no-capture", "lose-buffered", "ignore-platform-server", "no-alarm", "static-face-count")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every breaker's certification, four at a time (the plans mostly wait on protocol time), longest first."""
    folder = tmp_path_factory.mktemp("plan-rules")
    order = sorted(BREAKERS, key=lambda b: LONGEST.index(b.name) if b.name in LONGEST else len(LONGEST))
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="plan-rule") as pool:
        futures = {b.name: pool.submit(_run, b, folder) for b in order}
        return {name: future.result() for name, future in futures.items()}


def test_every_plan_rule_a_peer_can_break_has_a_breaker() -> None:
    # a capability statement breaks the CAP-* rules (tests/suites/test_capabilities.py; EXEMPT_RULES says so)
    breakable = {r.id for r in RULES.values() if r.origin == "plan" and r.party != "harness"} - EXEMPT_RULES.keys()
    assert breakable == {b.rule for b in BREAKERS}, sorted(breakable ^ {b.rule for b in BREAKERS})
    for breaker in BREAKERS:  # the device party breaks device rules, the server party server rules
        assert RULES[breaker.rule].party == breaker.peer, breaker


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda b: f"{b.peer}-{b.name}")
def test_plan_rule_fires_through_the_plan(breaker: Breaker, runs: dict[str, Run]) -> None:
    run = runs[breaker.name]
    assert run.summary is not None, run.output
    summary = run.summary
    assert run.returncode == 1, run.output
    assert summary["verdict"] == "not certified", run.output
    causes = {c["rule"] for c in summary["root_causes"]}
    assert breaker.rule in causes, f"{breaker.rule} not among the root causes {sorted(causes)}"
    failed = [s for s in summary["scenarios"] if s["verdict"] == "fail" and breaker.rule in s["rules"]]
    assert failed, [(s["name"], s["verdict"], s["rules"]) for s in summary["scenarios"]]
