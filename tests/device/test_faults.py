"""Every fault knob breaks exactly its rule, and the registry has a knob for
every rule a device can break. Knobs of rules the engine finds are proven
here; knobs of rules only a certification step checks (origin "plan") are
proven through the plan, in tests/suites/test_plan_rules.py."""

from __future__ import annotations

import pytest

from facecert.core.model import Severity
from facecert.core.rules.registry import RULES
from facecert.mock_device import FAULTS, Device
from facecert.mock_device.faults import EXEMPT_RULES
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_server import MockServer
from tests.device.scenarios import STIMULUS_ERRORS, drive, prepare


def test_every_device_rule_has_a_knob() -> None:
    knobs = {fault.rule for fault in FAULTS if fault.rule}
    device_rules = {rule.id for rule in RULES.values() if rule.party in ("device", "sender")}  # plan rules too
    missing = device_rules - knobs - EXEMPT_RULES.keys()
    assert not missing, f"rules a device can break with no fault knob: {sorted(missing)}"
    assert knobs <= RULES.keys(), f"knobs naming rules the registry lacks: {sorted(knobs - RULES.keys())}"
    assert not (knobs & {r.id for r in RULES.values() if r.party == "server"}), "a device knob names a server rule"


def test_knobs_without_a_rule_name_their_check() -> None:
    assert all(fault.check for fault in FAULTS if fault.rule is None)
    assert len({fault.name for fault in FAULTS}) == len(FAULTS)


ENGINE_KNOBS = [f for f in FAULTS if f.rule and RULES[f.rule].origin == "engine"]


@pytest.mark.parametrize("fault", ENGINE_KNOBS, ids=lambda f: f.name)
def test_knob_breaks_exactly_its_rule(fault, server: MockServer, make_device) -> None:
    dev: Device = make_device(fault.name, start=False, faults={fault.name}, protocol_version=fault.protocol_version)
    prepare(fault.scenario, server, dev.cfg.device_id)
    dev.start()
    drive(fault.scenario, server, dev)
    dev.stop()
    findings = judge_device(dev).findings
    rule = RULES[fault.rule]
    broken = {f.rule for f in device_errors(findings)}
    if rule.severity is Severity.ERROR:
        assert broken == {fault.rule}, _explain(findings)
    else:
        assert broken == set(), _explain(findings)
        assert fault.rule in {f.rule for f in findings if f.party == "device"}, _explain(findings)
    stimulus = STIMULUS_ERRORS.get(fault.scenario, set())  # what the scenario's server sends on purpose
    server_errors = [
        f for f in findings if f.party == "server" and f.severity is Severity.ERROR and f.rule not in stimulus
    ]
    assert not server_errors, _explain(server_errors)


def test_lose_buffered_is_invisible_to_the_engine(server: MockServer, make_device) -> None:
    """The engine sees nothing wrong; the plan's count (RESUME-REPLAY) is what catches it."""
    dev: Device = make_device("lose", faults={"lose-buffered"})
    drive("outage", server, dev)
    dev.stop()
    delivered = {c["frpic_name"] for c in server.captures(dev.cfg.device_id)}
    made = {c["frpic_name"] for c in dev.captures_made}
    assert made - delivered, "the fault should lose the captures made during the outage"
    assert not device_errors(judge_device(dev).findings)


def _explain(findings) -> str:
    lines = [f.line() for f in findings if f.severity is not Severity.INFO]
    return "\n" + ("\n".join(lines) or "(no findings)")
