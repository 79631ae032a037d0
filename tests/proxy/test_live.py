"""Findings live through mitmdump: each broken peer is caught with its rule id,
the correct peer passes, and the HAR the addon wrote gives the same findings
when `facecert validate` reads it offline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.proxy.conftest import Upstream, start_proxy, summary_of
from tests.proxy.scenarios import SCENARIOS, Peer, device_id_for
from tests.support import SCALE

#: each scenario's peer stops when its scenario ends while the session goes on, and the proxy's
#: live clock rightly reports that stop; a HAR has no clock after its last exchange, so offline
#: validation cannot see it (docs/proxy.md, Reports)
LIVE_CLOCK = {"POLL-STOPPED"}
_LIVE = re.compile(r"facecert (ERROR|WARNING|INFO)\s+(\S+)\s+\[#(-?\d+).*?(?: device=(\S+))?$")


@dataclass
class Session:
    report: Path
    summary: dict[str, Any]
    lines: list[str]
    spans: dict[str, tuple[int, int, str]]  # scenario -> first exchange, end exchange, device id

    def findings(self, scenario: str) -> list[dict[str, Any]]:
        first, end, device = self.spans[scenario]
        return [
            f
            for f in self.summary["findings"]
            if first <= f["exchange"] < end or (f["exchange"] == -1 and f["device_id"] == device)
        ]

    def live(self, scenario: str) -> list[tuple[str, str]]:
        first, end, device = self.spans[scenario]
        found = (_LIVE.search(line) for line in self.lines)
        return [
            (m.group(1), m.group(2))
            for m in found
            if m and (first <= int(m.group(3)) < end or (m.group(3) == "-1" and m.group(4) == device))
        ]


@pytest.fixture(scope="module")
def session(module_upstream: Upstream, mitm_confdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Session:
    report = tmp_path_factory.mktemp("live")
    dump = start_proxy(module_upstream.url, mitm_confdir, report, facecert_time_scale=SCALE)
    spans: dict[str, tuple[int, int, str]] = {}
    try:
        with httpx.Client(base_url=dump.url, timeout=30) as client:
            for number, (name, (scenario, _)) in enumerate(SCENARIOS.items(), start=1):
                device = device_id_for(number)
                first = len(module_upstream.seen)
                scenario(Peer(client, module_upstream, device, SCALE))
                spans[name] = (first, len(module_upstream.seen), device)
    finally:
        assert dump.stop() == 0
    return Session(report, summary_of(report), list(dump.lines), spans)


@pytest.mark.parametrize("name", [n for n, (_, rule) in SCENARIOS.items() if rule])
def test_broken_peer_is_caught_live(session: Session, name: str) -> None:
    rule = SCENARIOS[name][1]
    assert ("ERROR", rule) in session.live(name), f"{name}: no live ERROR line for {rule}: {session.live(name)}"
    assert rule in {f["rule"] for f in session.findings(name) if f["severity"] == "error"}


def test_correct_peer_passes(session: Session) -> None:
    _, end, _ = session.spans["correct"]
    stops = [f for f in session.findings("correct") if f["rule"] in LIVE_CLOCK]
    assert all(f["exchange"] == end - 1 for f in stops), stops  # only after its scenario's last poll
    errors = [f for f in session.findings("correct") if f["severity"] == "error" and f["rule"] not in LIVE_CLOCK]
    assert errors == []
    assert not any(level == "ERROR" and rule not in LIVE_CLOCK for level, rule in session.live("correct"))


def test_reports_are_written(session: Session) -> None:
    assert session.summary["final"] is True
    assert session.summary["addon_errors"] == 0
    assert session.summary["flows"] == max(end for _, end, _ in session.spans.values())
    assert (session.report / "junit.xml").read_text(encoding="utf-8").startswith("<?xml")
    results = list((session.report / "allure-results").glob("*-result.json"))
    parsed = [json.loads(p.read_text(encoding="utf-8")) for p in results]
    assert all(r["titlePath"] and r["name"] and r["stage"] == "finished" for r in parsed)  # Allure 3 needs titlePath
    statuses = {r["fullName"].rsplit(".", 1)[1]: r["status"] for r in parsed}
    for _, rule in SCENARIOS.values():
        if rule:
            assert statuses[rule] == "failed"


def _key(finding: dict[str, Any]) -> tuple[Any, ...]:
    return (
        finding["rule"],
        finding["severity"],
        finding["exchange"],
        finding["endpoint"],
        finding["direction"],
        finding["pointer"],
        finding["device_id"],
    )


def test_offline_validation_of_the_har_gives_the_same_findings(session: Session) -> None:
    har = session.report / "session.har"
    run = subprocess.run(
        [str(Path(sys.executable).parent / "facecert"), "validate", str(har), "--json", "--time-scale", str(SCALE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr  # the broken peers fail the session
    offline = json.loads(run.stdout)
    assert offline["exchanges"] == session.summary["flows"]
    live = [f for f in session.summary["findings"] if f["rule"] not in LIVE_CLOCK]
    assert sorted(map(_key, offline["findings"])) == sorted(map(_key, live))
