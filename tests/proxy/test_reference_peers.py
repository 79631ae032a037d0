"""The reference device and the mock server with mitmdump between them: every
fault knob of the device is caught live, with its rule id, for its device.

All knobs run at once, one device each, through one proxy per protocol
version the knobs declare (a knob may need the device to claim an older
version), so the whole table costs about one scenario's time. Downloads are
pointed at the proxy, so the addon correlates them (DOWNLOAD-FETCHED) live.
Cadence tolerance is widened to ±50 % because thirty devices share two cores
here; the cadence knobs are far outside even that (40 % and 250 %).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from facecert.core.contract import get_contract
from facecert.core.rules.registry import RULES
from facecert.mock_device import FAULTS, Device, DeviceConfig, Fault
from facecert.mock_server import MockServer, ServerConfig
from facecert.proxy_addons.process import Mitmdump
from tests.device.scenarios import drive, prepare
from tests.proxy.conftest import start_proxy, summary_of
from tests.support import GOOD_FIRMWARE, SCALE, make_assets, unique_id

pytestmark = pytest.mark.slow  # a mitmdump per knob: make test-fast leaves it out

KNOBS = [fault for fault in FAULTS if fault.rule and RULES[fault.rule].origin == "engine"]  # plan rules: no engine
CLEAN = ("task", "capture", "download", "idle")  # what the fault-free devices do
_LIVE = re.compile(r"facecert (ERROR|WARNING|INFO)\s+(\S+)\s+\[.*?(?: device=(\S+))?$")


@dataclass
class Run:
    lines: list[str] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # knob or clean-<scenario> -> device id

    def live(self, device_id: str) -> set[tuple[str, str]]:
        """(severity, rule) of every live line about this device, or about an unnamed peer (the engine
        names no device when the body cannot be read, nor for method/version findings made before parsing)."""
        known = set(self.devices.values())
        hits = (_LIVE.search(line) for line in self.lines)
        return {(m.group(1), m.group(2)) for m in hits if m and _about(m, device_id, known)}

    def named(self, device_id: str) -> set[tuple[str, str]]:
        """(severity, rule) of every live line that names this device."""
        hits = (_LIVE.search(line) for line in self.lines)
        return {(m.group(1), m.group(2)) for m in hits if m and m.group(3) == device_id}


def _prepare(scenario: str, server: MockServer, proxy: Mitmdump, device_id: str) -> None:
    if scenario == "download":  # the device must fetch through the proxy for the addon to see it
        path = urlsplit(server.asset_url(GOOD_FIRMWARE)).path
        # one URL per device: the engine's download bookkeeping is by URL, and every device here is 127.0.0.1
        server.enqueue(device_id, {"request_type": "upgrade", "URL": f"{proxy.url}{path}?for={device_id}"})
    else:
        prepare(scenario, server, device_id)


def play(plan: list[tuple[str, str, Fault | None]], confdir: Path, folders: pytest.TempPathFactory) -> Run:
    """The plan's devices (label, scenario, knob) at once against a mock server, through one proxy per
    protocol version their knobs declare; every proxy's live lines and summary."""
    result = Run()
    assets = make_assets(folders.mktemp("assets"))
    versions = sorted({(fault.protocol_version if fault else None) or "" for _, _, fault in plan})
    with MockServer(ServerConfig(time_scale=SCALE, assets=assets)) as server:
        proxies = {
            v: start_proxy(
                server.url,
                confdir,
                folders.mktemp("ref"),
                facecert_time_scale=SCALE,
                facecert_tolerance=0.5,
                facecert_check_downloads=True,
                **({"facecert_protocol_version": v} if v else {}),
            )
            for v in versions
        }
        devices: list[tuple[str, Device]] = []
        try:
            for label, scenario, fault in plan:
                proxy = proxies[fault.protocol_version or "" if fault else ""]
                device_id = unique_id(label)
                result.devices[label] = device_id
                _prepare(scenario, server, proxy, device_id)
                device = Device(
                    DeviceConfig(
                        server=proxy.url,
                        device_id=device_id,
                        time_scale=SCALE,
                        faults={fault.name} if fault else set(),
                        protocol_version=fault.protocol_version if fault else None,
                    )
                )
                devices.append((scenario, device))
            for _, device in devices:
                device.start()
            with ThreadPoolExecutor(len(devices)) as pool:
                for done in [pool.submit(drive, scenario, server, device) for scenario, device in devices]:
                    done.result()
            _await_live_findings(plan, result, proxies)
        finally:
            for _, device in devices:
                device.stop()
            for proxy in proxies.values():
                proxy.stop()
                result.lines.extend(proxy.lines)
                result.summaries.append(summary_of(Path(proxy.config.options["facecert_report_dir"])))
    return result


# how long the play waits, at most, for the proxies' last live lines: the longest deadline a proxy judges on its
# own clock (a task's result), or six idle intervals, at the tests' time scale; a bound, never a sleep
DEADLINE_WAIT_S = SCALE * max(get_contract().result_deadline_s, 6 * get_contract().timing["idle_interval_s"])


def _await_live_findings(plan: list[tuple[str, str, Fault | None]], result: Run, proxies: dict[str, Mitmdump]) -> None:
    """Before the proxies stop: each knob's live line, all within one bound (a line already printed costs
    nothing). A scenario ends when the mock server has judged it, and a proxy's deadline comes later (its
    tolerance here is 0.5, the server's the contract's, and its stall clock may widen it): stopped at once,
    a proxy never saw a deadline pass. (2026-12-04, stop-after-malformed-task the last device to finish: a
    poll was due within 1.3 s for the server and 1.55 s for the proxy; the server saw the stop, the device
    sent its capture 1.5 s after its last poll, and the proxy was stopped 20 ms later, without POLL-STOPPED.)"""
    deadline, known = time.monotonic() + DEADLINE_WAIT_S, set(result.devices.values())
    for label, _, fault in plan:
        if fault is not None:
            proxy = proxies[fault.protocol_version or ""]
            left = max(0.0, deadline - time.monotonic())
            proxy.wait_for_line(_live_line(fault.rule, result.devices[label], known), timeout=left)


def _about(found: re.Match[str], device_id: str, known: set[str]) -> bool:
    """A live line counts for ``device_id`` when it names that device or no device of the play."""
    return found.group(3) == device_id or found.group(3) not in known


def _live_line(rule: str, device_id: str, known: set[str]) -> Callable[[str], bool]:
    """Whether a proxy's line is the live finding ``rule`` as :meth:`Run.live` counts it for ``device_id``:
    naming that device, or no device of the play (``known``)."""

    def match(line: str) -> bool:
        found = _LIVE.search(line)
        return found is not None and found.group(2) == rule and _about(found, device_id, known)

    return match


@pytest.fixture(scope="module")
def run(mitm_confdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    plan: list[tuple[str, str, Fault | None]] = [(f.name, f.scenario, f) for f in KNOBS]
    plan += [(f"clean-{scenario}", scenario, None) for scenario in CLEAN]
    return play(plan, mitm_confdir, tmp_path_factory)


@pytest.mark.parametrize("fault", KNOBS, ids=lambda f: f.name)
def test_knob_is_caught_live(
    run: Run, fault: Fault, mitm_confdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each knob's rule, live, for its device. A cadence knob's late poll is not held against the device
    when the proxy's own process could not run meanwhile (HARNESS-STALLED, by design: facecert.stalls), as
    on a machine the other tests hold; then that knob is played again on its own, and must be caught."""
    severity = RULES[fault.rule].severity.value.upper()
    seen = run.live(run.devices[fault.name])
    if (severity, fault.rule) not in seen and ("WARNING", "HARNESS-STALLED") in run.named(run.devices[fault.name]):
        print(f"{fault.name}: the proxy was held while its device was judged; played again on its own")
        again = play([(fault.name, fault.scenario, fault)], mitm_confdir, tmp_path_factory)
        seen = again.live(again.devices[fault.name])
    assert (severity, fault.rule) in seen, f"{fault.name}: {fault.rule} not reported live; saw {sorted(seen)}"


@pytest.mark.parametrize("scenario", CLEAN)
def test_fault_free_device_passes_live(run: Run, scenario: str) -> None:
    device_id = run.devices[f"clean-{scenario}"]
    errors = [
        f for s in run.summaries for f in s["findings"] if f["device_id"] == device_id and f["severity"] == "error"
    ]
    assert errors == [], errors


def test_downloads_through_the_proxy_are_correlated(run: Run) -> None:
    assert sum(s["downloads_seen"] for s in run.summaries) == 1  # the clean device fetched; skip-download did not
    assert all(s["addon_errors"] == 0 for s in run.summaries)


@pytest.mark.parametrize("fault", [f for f in KNOBS if f.rule == "POLL-STOPPED"], ids=lambda f: f.name)
def test_a_stopping_knob_played_alone_is_caught_before_the_proxy_stops(
    fault: Fault, mitm_confdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Alone, the knob's device is the last to finish, so its proxy is stopped as soon as the mock server has
    judged the scenario, before the proxy's own, later deadline: the play waits for the proxy's live line.
    Without that wait stop-after-malformed-task failed here in 2 of 5 runs (2026-12-04; and in the full table
    when its device happened to finish last); with it, in none."""
    alone = play([(fault.name, fault.scenario, fault)], mitm_confdir, tmp_path_factory)
    severity = RULES[fault.rule].severity.value.upper()
    assert (severity, fault.rule) in alone.live(alone.devices[fault.name]), alone.lines[-20:]
