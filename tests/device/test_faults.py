"""Every fault knob breaks exactly its rule, and the registry has a knob for
every rule a device can break. Knobs of rules the engine finds are proven
here; knobs of rules only a certification step checks (origin "plan") are
proven through the plan, in tests/suites/test_plan_rules.py."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from facecert.core.model import Finding, Severity
from facecert.core.rules.registry import RULES
from facecert.mock_device import FAULTS, Device, DeviceConfig
from facecert.mock_device.faults import EXEMPT_RULES, Fault
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_server import MockServer
from tests.device.scenarios import STIMULUS_ERRORS, drive, prepare
from tests.support import SCALE, new_server, unique_id


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
# knobs driven at once: a knob's conversation mostly waits on the device's cadence (about 0.1 CPU-s in
# 0.3-3.6 s), each on a server and a device of its own
CONCURRENT_KNOBS = 4


def _converse(fault: Fault, folder: Path) -> list[Finding]:
    """The knob's scenario on a mock server of its own (as tests/conftest.py's ``server``) with a device
    given the knob: the device's findings, judged once it stopped."""
    srv = new_server(folder)
    srv.start()
    try:
        dev = Device(
            DeviceConfig(
                server=srv.url,
                time_scale=SCALE,
                device_id=unique_id(fault.name),
                faults={fault.name},
                protocol_version=fault.protocol_version,
            )
        )
        try:
            prepare(fault.scenario, srv, dev.cfg.device_id)
            dev.start()
            drive(fault.scenario, srv, dev)
            dev.stop()  # raises if the device's loop crashed
            return judge_device(dev).findings
        finally:
            dev.stop()  # stopped whatever happened (a second stop does nothing)
    finally:
        srv.stop()


def _params(item: pytest.Item) -> dict:
    callspec = getattr(item, "callspec", None)
    return callspec.params if callspec else {}


@pytest.fixture(scope="module")
def conversations(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[list[Finding]]]]:
    """The conversation of every knob this session tests, CONCURRENT_KNOBS at a time from the first on."""
    folder = tmp_path_factory.mktemp("knobs")
    tests = [item for item in request.session.items if getattr(item, "module", None) is request.module]
    selected = {item.callspec.params["fault"].name for item in tests if "fault" in _params(item)}
    with ThreadPoolExecutor(max_workers=CONCURRENT_KNOBS, thread_name_prefix="knob") as pool:
        # the malformed-task scenario waits for the server to see the device stop (about 3 s): it goes first
        order = sorted(ENGINE_KNOBS, key=lambda f: f.scenario != "malformed-task")
        futures = {f.name: pool.submit(_converse, f, folder / f.name) for f in order if f.name in selected}
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()


@pytest.mark.parametrize("fault", ENGINE_KNOBS, ids=lambda f: f.name)
def test_knob_breaks_exactly_its_rule(fault: Fault, conversations: dict[str, Future[list[Finding]]]) -> None:
    findings = conversations[fault.name].result()
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
