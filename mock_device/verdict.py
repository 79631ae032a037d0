"""A verdict per device of a fleet, judged while it runs, in bounded memory.

One :class:`facecert.core.engine.Engine` per load-generator process judges every device it runs
(the engine keeps its conversation state per device_id, as the mock server's does). Each
exchange is fed as the device finishes it and forgotten: what a device keeps is a
:class:`DeviceTally` (counters, findings counted by rule, its lag), never the exchanges.

Two clocks are kept apart. The engine judges each device **on its own clock**: a request is
timed when the device meant to send it (the core's ``due``), so a load generator too busy to
keep its timers does not make a conforming device look late. How late the driver really was
(the bytes left at ``started``, ``started - due`` after the device wanted) is the device's
**lag**, counted on the requests that end a wait the protocol times (a poll after its interval, a GPS
report after its wait: not the first poll after power-on, which nobody can time); a device whose driver
lagged by more than :func:`late_after` was not presented to the
server as a nominal device would be, and its verdict says ``generator-overloaded`` unless the
device broke a rule itself. What the server made of the traffic is its own view (the mock
server's findings; Locust's statistics), reported beside, never blamed on the device.

Verdicts (:data:`VERDICTS`): ``failed`` (the device broke a rule: the rules are named),
``generator-overloaded`` (nothing wrong on the device's clock, but its driver lagged),
``served-badly`` (the server broke a rule in this device's conversation: a 5xx, no answer, a
capture not acknowledged) and ``clean``. A device given a fault knob is *as expected* when it
names the knob's rule (mock_device.faults) and breaks no other; a device without one when clean.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from facecert.core.contract import get_contract
from facecert.core.defaults import CADENCE_ALLOWANCE_S, CADENCE_TOLERANCE
from facecert.core.engine import Engine, EngineConfig
from facecert.core.model import Exchange, Finding, Severity
from facecert.core.rules.registry import RULES
from facecert.mock_device.core import DeviceCore
from facecert.mock_device.faults import FAULTS_BY_NAME

VERDICTS = ("clean", "failed", "served-badly", "generator-overloaded")
FLEET_FORMAT = "facecert-fleet/1"
# What the process's engine remembers of tasks that are over, so that a fleet's memory does not grow with the
# tasks its devices carry out (the engine keeps a conversation's tasks for as long as it lives, which a
# certification session can afford and a day-long fleet of 10,000 devices cannot). Checked every PRUNE_EVERY
# exchanges: downloads no open task can claim any more (DOWNLOAD-FETCHED looks only at downloads since its
# task was issued) are forgotten; of the tasks whose result came, the engine keeps the latest ISSUED_KEPT
# (a request_id reused, a result naming another device's task: found within that window) and each device
# its latest FINISHED_KEPT (a second result for one of those: RESULT-DUPLICATE).
PRUNE_EVERY = 1000
ISSUED_KEPT = 10_000
FINISHED_KEPT = 32


def late_after(time_scale: float) -> float:
    """The lag (seconds) past which a device's traffic no longer reached the server as a nominal device's:
    the slack the cadence window leaves on the shortest protocol interval (the task interval: its tolerance,
    scaled, plus the network allowance). A poll sent that late is outside the server's window through the
    load generator's fault alone, however fast the network and the server."""
    return CADENCE_TOLERANCE * get_contract().timing["task_interval_s"] * time_scale + CADENCE_ALLOWANCE_S


@dataclass(slots=True)
class DeviceTally:
    """What one device leaves behind in the judge: counters, never exchanges."""

    device_id: str
    fault: str | None = None
    exchanges: int = 0
    late: int = 0  # requests sent more than late_after behind the device's own clock
    lag_max_s: float = 0.0
    lag_max_at: float = 0.0  # when (the device's own clock) the request with the largest lag was due
    findings: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)  # (party, rule)


class FleetJudge:
    """Judges every device of one process as its exchanges complete (see the module docstring)."""

    def __init__(self, time_scale: float, protocol_version: str | None = None, profile: str = "strict") -> None:
        self.time_scale = time_scale
        self.late_after_s = late_after(time_scale)
        self.engine = Engine(
            EngineConfig(
                profile=profile, protocol_version=protocol_version, time_scale=time_scale, check_downloads=True
            )
        )
        self.engine.listeners.append(self._on_finding)
        self.tallies: dict[str, DeviceTally] = {}
        self.cores: dict[str, DeviceCore] = {}
        self.frozen = False
        self.issued_kept, self.finished_kept, self.prune_every = ISSUED_KEPT, FINISHED_KEPT, PRUNE_EVERY
        self._fed = 0
        self._current: DeviceTally | None = None

    def watch(self, core: DeviceCore, fault: str | None = None) -> DeviceTally:
        """Judge this device from now on (before it starts)."""
        tally = DeviceTally(core.cfg.device_id, fault)
        self.tallies[tally.device_id] = tally
        self.cores[tally.device_id] = core

        def on_exchange(exchange: Exchange, due: float, timed: bool) -> None:
            self.feed(tally, exchange, due, timed)

        core.on_exchange = on_exchange
        return tally

    def feed(self, tally: DeviceTally, exchange: Exchange, due: float, timed: bool = True) -> None:
        """One exchange of ``tally``'s device, meant for ``due``; ``timed``: it ended a wait the protocol times
        (the lag of a request nobody can time, such as the first poll after power-on, is not held against the
        generator)."""
        if self.frozen:
            return
        tally.exchanges += 1
        lag = max(0.0, exchange.started - due) if timed else 0.0
        if lag > tally.lag_max_s:
            tally.lag_max_s, tally.lag_max_at = lag, due
        if lag > self.late_after_s:
            tally.late += 1
        self._current = tally
        try:
            self.engine.feed(dataclasses.replace(exchange, started=min(due, exchange.started), index=-1))
        finally:
            self._current = None
            self.engine.findings.clear()  # counted by the listener; the engine keeps only conversation state
        self._fed += 1
        if self._fed % self.prune_every == 0:
            self.prune()

    def prune(self) -> None:
        """Forget what no later judgement can use (see ISSUED_KEPT): memory bounded by the devices and the
        windows, not by the length of the run."""
        engine = self.engine
        with engine._lock:
            engine.forget_fetched()
            for state in engine.devices.values():
                for key in list(itertools.islice(state.finished, max(0, len(state.finished) - self.finished_kept))):
                    del state.finished[key]
                    state.last_result_end.pop(key, None)
            over = len(engine.issued) - self.issued_kept
            if over > 0:
                done = [key for key, task in engine.issued.items() if task.results > 0]  # oldest first
                for key in done[:over]:
                    del engine.issued[key]

    def _on_finding(self, finding: Finding) -> None:
        tally = self._current if self._current is not None else self.tallies.get(finding.device_id)
        if tally is not None:
            tally.findings[(finding.party, finding.rule)] += 1

    def finish(self, cutoff: float) -> None:
        """The run ends at ``cutoff`` (epoch s): nothing more is judged; tasks never reported and devices
        that stopped polling are found. A device whose next poll was due by ``cutoff`` but not yet sent
        (its driver lagging) is not judged stopped: on its own clock it polled."""
        if self.frozen:
            return
        self.frozen = True
        lagging = set()
        for device_id, core in self.cores.items():
            core.on_exchange = None
            due = core.poll_due()
            if due is not None and due <= cutoff:
                lagging.add(device_id)
        self.engine.check_deadlines(cutoff, lagging)
        self.engine.finish()
        self.engine.findings.clear()

    def record(self, device_id: str, worker: str = "") -> dict[str, Any]:
        """The device's entry of fleet.json."""
        return device_record(self.tallies[device_id], self.cores[device_id], self.late_after_s, worker)

    def records(self, worker: str = "") -> list[dict[str, Any]]:
        return [self.record(device_id, worker) for device_id in self.tallies]

    def counters(self) -> dict[str, Any]:
        """Sums over this process's devices, cheap enough for a progress report every few seconds."""
        total: collections.Counter[str] = collections.Counter()
        for device_id, core in self.cores.items():
            stats = core.stats
            tally = self.tallies[device_id]
            total["devices"] += 1
            total["polls"] += stats.polls
            total["tasks"] += stats.tasks
            total["captures"] += stats.captures_sent
            total["failures"] += stats.failures
            total["late"] += tally.late
            total["devices_late"] += bool(tally.late)
            total["devices_with_errors"] += any(_is_error(rule) for _, rule in tally.findings)
        out: dict[str, Any] = dict(total)
        out["lag_max_ms"] = round(max((t.lag_max_s for t in self.tallies.values()), default=0.0) * 1000, 1)
        return out


def _is_error(rule: str) -> bool:
    return RULES[rule].severity is Severity.ERROR


def device_record(tally: DeviceTally, core: DeviceCore, late_after_s: float, worker: str = "") -> dict[str, Any]:
    """Counters, findings by rule (device / server / notes), lag and the verdict of one device."""
    device_errors: dict[str, int] = {}
    server_errors: dict[str, int] = {}
    notes: dict[str, int] = {}
    for (party, rule), count in sorted(tally.findings.items(), key=lambda item: item[0][1]):
        kind = notes if not _is_error(rule) else device_errors if party == "device" else server_errors
        kind[rule] = kind.get(rule, 0) + count
    if device_errors:
        verdict = "failed"
    elif tally.late:
        verdict = "generator-overloaded"
    elif server_errors or core.refused:
        verdict = "served-badly"
    else:
        verdict = "clean"
    stats = core.stats
    expected_rule = FAULTS_BY_NAME[tally.fault].rule if tally.fault else None
    return {
        "worker": worker,
        "fault": tally.fault,
        "fault_rule": expected_rule,
        "polls": stats.polls,
        "idle": stats.idle,
        "tasks": stats.tasks,
        "results": stats.results,
        "captures": stats.captures_sent,
        "captures_made": stats.captures_made,
        "captures_dropped": stats.captures_dropped,
        "alarms": stats.alarms,
        "gps": stats.gps,
        "failures": stats.failures,
        "errors": device_errors,
        "server_errors": server_errors,
        "refused": dict(sorted(core.refused.items())),  # answers the device could not use, by rule (its own view)
        "notes": notes,
        "requests": tally.exchanges,
        "late": tally.late,
        "lag_max_ms": round(tally.lag_max_s * 1000, 1),
        "lag_max_at": round(tally.lag_max_at, 3),
        "verdict": verdict,
        "as_expected": as_expected(tally.fault, verdict, device_errors, notes),
    }


def as_expected(fault: str | None, verdict: str, device_errors: dict[str, int], notes: dict[str, int]) -> bool:
    """A clean device is clean; a device with a knob names the knob's rule (an info rule among the notes)
    and breaks no other rule."""
    if fault is None:
        return verdict == "clean"
    rule = FAULTS_BY_NAME[fault].rule
    if rule is None:
        return False
    if _is_error(rule):
        return set(device_errors) == {rule}
    return not device_errors and rule in notes


_COUNTS = ("polls", "tasks", "results", "captures", "alarms", "gps", "failures", "requests", "late")


def record_problem(record: Any) -> str | None:
    """Why a device record a worker sent cannot go into fleet.json (None: it can). The master listens
    on the network (``--bind``): a record from another facecert version, or from anyone who connects,
    is dropped and counted, never a crash before fleet.json is written."""
    if not isinstance(record, dict):
        return "not an object"
    if record.get("verdict") not in VERDICTS:
        return f"verdict {str(record.get('verdict'))[:40]!r} is not one of {', '.join(VERDICTS)}"
    for key in _COUNTS:
        if type(record.get(key)) is not int or record[key] < 0:
            return f"{key} is not a count"
    if type(record.get("lag_max_ms")) not in (int, float) or not math.isfinite(record["lag_max_ms"]):
        return "lag_max_ms is not a finite number"
    for kind in ("errors", "server_errors", "refused", "notes"):
        counts = record.get(kind)
        if not isinstance(counts, dict) or any(r not in RULES or type(n) is not int for r, n in counts.items()):
            return f"{kind} names a rule the registry does not hold, or a count that is not one"
    fault = record.get("fault")
    if fault is not None and fault not in FAULTS_BY_NAME:
        return f"fault {str(fault)[:40]!r} is not a knob"
    if record.get("fault_rule") != (FAULTS_BY_NAME[fault].rule if fault else None):
        return "fault_rule is not the knob's rule"
    if not isinstance(record.get("as_expected"), bool):
        return "as_expected is not a boolean"
    return None


def fleet_report(devices: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """fleet.json: ``meta`` (how the run was made), the aggregate (devices grouped by verdict and by rule)
    and every device's record, by device id."""
    by_verdict: dict[str, list[str]] = {verdict: [] for verdict in VERDICTS}
    by_rule: dict[str, dict[str, Any]] = {}
    by_fault: dict[str, dict[str, Any]] = {}
    totals: collections.Counter[str] = collections.Counter()
    for device_id in sorted(devices):
        record = devices[device_id]
        by_verdict.setdefault(record["verdict"], []).append(device_id)
        for kind, party in (("errors", "device"), ("server_errors", "server"), ("notes", None)):
            for rule, count in record[kind].items():
                entry = by_rule.setdefault(
                    rule, {"severity": RULES[rule].severity.value, "parties": [], "findings": 0, "devices": []}
                )
                if party and party not in entry["parties"]:
                    entry["parties"].append(party)
                entry["findings"] += count
                if entry["devices"][-1:] != [device_id]:
                    entry["devices"].append(device_id)
        knob = record["fault"] or "none"
        group = by_fault.setdefault(knob, {"rule": record["fault_rule"], "devices": 0, "as_expected": 0})
        group["devices"] += 1
        group["as_expected"] += bool(record["as_expected"])
        for key in _COUNTS:
            totals[key] += record[key]
    unexpected = sorted(d for d, r in devices.items() if not r["as_expected"])
    lag = [r["lag_max_ms"] for r in devices.values()]
    summary = {
        "devices": len(devices),
        "verdicts": {verdict: len(ids) for verdict, ids in by_verdict.items()},
        "as_expected": len(devices) - len(unexpected),
        "unexpected": unexpected,
        "faults": by_fault,
        "totals": dict(totals),
        "lag_max_ms": max(lag, default=0.0),
        "devices_late": sum(1 for r in devices.values() if r["late"]),
    }
    return {
        "format": FLEET_FORMAT,
        "meta": meta,
        "summary": summary,
        "by_verdict": by_verdict,
        "by_rule": dict(sorted(by_rule.items())),
        "devices": {device_id: devices[device_id] for device_id in sorted(devices)},
    }


def finish_cutoff(data: Any, now: float) -> float:
    """When the run ended, for the verdicts: the master's cutoff (every worker judges up to the same moment,
    not up to when the message reached it), never later than this worker's ``now`` (another machine's clock
    may run ahead); ``now`` when the message carries no usable cutoff."""
    cutoff = data.get("cutoff") if isinstance(data, dict) else None
    if not isinstance(cutoff, int | float) or isinstance(cutoff, bool) or not math.isfinite(cutoff) or cutoff <= 0:
        return now
    return min(float(cutoff), now)


def check_fleet_faults(names: Iterable[str], captures_per_minute: float = 0.0, gps: bool = False) -> list[str]:
    """The knobs a fleet can show by itself, or ValueError saying why one cannot: its rule must be one the
    engine finds (plan rules need a certification step) and its scenario one the fleet makes (polls and
    idle answers always, captures with captures per minute, GPS with gps; tasks, alarms and outages come
    only from a server or a plan)."""
    made = {"poll", "idle"} | ({"capture"} if captures_per_minute > 0 else set()) | ({"gps"} if gps else set())
    usable = sorted(
        f.name for f in FAULTS_BY_NAME.values() if f.rule and RULES[f.rule].origin == "engine" and f.scenario in made
    )
    chosen = []
    for name in names:
        fault = FAULTS_BY_NAME[name]
        if fault.rule is None or RULES[fault.rule].origin != "engine":
            raise ValueError(
                f"fault knob {name}: its rule {fault.rule} is checked by a certification step, not by the engine "
                f"a fleet judges with; usable here: {', '.join(usable)}"
            )
        if fault.scenario not in made:
            hint = {"capture": " (add --captures-per-minute)", "gps": " (add --gps)"}.get(fault.scenario, "")
            raise ValueError(
                f"fault knob {name} needs a {fault.scenario} scenario, which a fleet does not make by itself{hint}; "
                f"usable here: {', '.join(usable)}"
            )
        chosen.append(name)
    return chosen
