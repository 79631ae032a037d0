"""`facecert rules`: every rule of the registry with its example message and the
knob that proves it; docs/rules.md is its Markdown and must stay current."""

from __future__ import annotations

import json
from pathlib import Path

from facecert.certify.rules_catalogue import catalogue, select, to_markdown
from facecert.core.profiles import PROFILES, load_profile
from facecert.core.rules.registry import RULES
from facecert.mock_device.faults import EXEMPT_RULES, FAULTS
from facecert.mock_server.misbehaviours import MISBEHAVIOURS
from tests.support import facecert

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "rules.md"


def test_every_rule_has_an_example() -> None:
    assert [rule.id for rule in RULES.values() if not rule.example.strip()] == []


def test_every_rule_a_peer_breaks_has_a_knob_or_misbehaviour() -> None:
    proved = {f.rule for f in FAULTS} | {m.rule for m in MISBEHAVIOURS.values()}
    unproved = [
        rule.id
        for rule in RULES.values()
        if rule.party != "harness" and rule.id not in EXEMPT_RULES and rule.id not in proved
    ]
    assert unproved == []
    entries = {e.id: e for e in catalogue()}
    assert all(entries[r.id].proved_by() for r in RULES.values())  # a knob, or why there is none


def test_the_catalogue_is_the_registry_and_the_profiles() -> None:
    entries = catalogue()
    assert [e.id for e in entries] == list(RULES)
    for profile in PROFILES:
        for override in load_profile(profile).overrides:
            entry = next(e for e in entries if e.id == override.rule)
            assert override.note in [o["note"] for o in entry.overrides[profile]]
            assert f"{override.severity.value} in" in entry.severities(profile)
    by_id = {e.id: e for e in entries}
    assert by_id["CADENCE-IDLE"].knobs == ["cadence-idle"] and by_id["ACK-CODE"].misbehaviours == [
        "capture-code-nonzero"
    ]
    assert [e.id for e in select(entries, ["cadence-*"])] == ["CADENCE-IDLE", "CADENCE-TASK"]


def test_docs_rules_md_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == to_markdown(catalogue()), (
        "docs/rules.md is stale: regenerate it with `facecert rules --markdown > docs/rules.md`"
    )


def test_the_command_prints_json_and_markdown() -> None:
    done = facecert("rules", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    rules = json.loads(done.stdout)["rules"]
    assert [r["id"] for r in rules] == list(RULES) and all(r["example"] and r["severity"] for r in rules)
    done = facecert("rules", "--markdown", timeout=60)
    assert done.stdout == DOC.read_text(encoding="utf-8")
    done = facecert("rules", "NO-SUCH-RULE", timeout=60)
    assert done.returncode == 2 and "no rule matches" in done.stdout and "Traceback" not in done.stderr
