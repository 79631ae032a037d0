"""Certify a device: our mock server (and a second one for setPlatformServer)
plays the platform; the device under test, or our simulator with --demo,
talks to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecert.certify.liveness import Down
from facecert.certify.operator import Operator
from facecert.core.contract import get_contract


@dataclass
class DeviceRunConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    prefix: str = ""
    device_id: str = "ID00000000000001"
    profile: str = "strict"
    protocol_version: str | None = None
    time_scale: float = 1.0
    report: Path = Path("reports/device")
    demo: bool = False
    faults: set[str] = field(default_factory=set)  # for --demo: break the simulator on purpose
    first_poll_timeout: float = 600.0
    admin_token: str | None = None  # required on the control API when bound beyond 127.0.0.1


class DeviceSession:
    """The live peers of a device certification, as the steps see them."""

    kind = "device"

    def __init__(self, cfg: DeviceRunConfig, operator: Operator) -> None:
        from facecert.mock_server import MockServer, ServerConfig

        self.cfg = cfg
        self.operator = operator
        self.device_id = cfg.device_id
        self.time_scale = cfg.time_scale
        self.timing = get_contract().timing
        cfg.report.mkdir(parents=True, exist_ok=True)
        common = dict(profile=cfg.profile, protocol_version=cfg.protocol_version, time_scale=cfg.time_scale)
        self.db = cfg.report / "session.db"
        if self.db.exists():
            self.db.unlink()
        self.server = MockServer(
            ServerConfig(
                host=cfg.host, port=cfg.port, prefix=cfg.prefix, db=self.db, admin_token=cfg.admin_token, **common
            )
        )
        self.second = MockServer(
            ServerConfig(host=cfg.host, port=0, prefix=cfg.prefix, admin_token=cfg.admin_token, **common)
        )
        self.simulator: Any = None
        self.plan_started = 0.0
        self.plan_ended = 0.0

    # ---- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self.server.start()
        self.second.start()
        if self.cfg.demo:
            from facecert.mock_device import Device, DeviceConfig

            self.simulator = Device(
                DeviceConfig(
                    server=self.server.url,
                    device_id=self.device_id,
                    time_scale=self.time_scale,
                    faults=set(self.cfg.faults),
                    protocol_version=self.cfg.protocol_version,
                    spool_dir=self.cfg.report / "spool",
                )
            ).start()

    def stop(self) -> None:
        if self.simulator is not None:
            try:
                self.simulator.stop()
            except RuntimeError as exc:
                self.operator.say(f"[yellow]simulator stopped with an error: {exc.__cause__!r}[/]")
        self.second.stop()
        self.server.stop()

    def wait_first_poll(self) -> dict[str, Any]:
        timeout = self.cfg.first_poll_timeout if not self.cfg.demo else 30.0
        return self.operator.wait(
            f"the first taskRequest from {self.device_id}",
            lambda step: _try(lambda: self.server.wait_for_poll(self.device_id, step)),
            timeout,
        )

    # ---- protocol time ---------------------------------------------------------------
    def scaled(self, key: str) -> float:
        return self.timing[key] * self.time_scale

    @property
    def result_deadline(self) -> float:
        """How long a task's result may take: the catalogue's result deadline, scaled."""
        return self.scaled("result_timeout_s")

    def timed_findings(self) -> list[dict[str, Any]]:
        """The device's findings, each with the time of its exchange (for the root causes)."""
        exchanges = self.server.exchanges(self.device_id)
        by_id = {e["id"]: e["started"] for e in exchanges}
        by_index = {e["idx"]: e["started"] for e in exchanges}  # deadline findings name the engine's exchange
        return [
            {**f, "time": by_id.get(f.get("exchange_id"), by_index.get(f.get("exchange")))}
            for f in self.server.findings(self.device_id)
            if f.get("party") == "device"
        ]

    # ---- is the device still there? -----------------------------------------------------
    def down(self) -> Down | None:
        """The device stopped polling: the engine's POLL-STOPPED for its current stop (None
        while it polls, and again once it comes back)."""
        self.server.check_deadlines()
        stop = self.server.engine.poll_stopped(self.device_id)
        if stop is None:
            return None
        return Down(("POLL-STOPPED",), stop.message, self.server.engine.last_poll(self.device_id) or 0.0)

    # ---- things only the device (or its operator) can do ------------------------------------
    def stimulate(self, what: str, instruction: str, **args: Any) -> None:
        """Make the device act: the simulator is told; a person is asked."""
        if self.simulator is not None:
            getattr(self, f"_sim_{what}")(**args)
        else:
            self.operator.say(f"[bold cyan]OPERATOR:[/] {instruction}")

    def _sim_capture(self) -> None:
        self.simulator.capture_now()

    def _sim_alarm(self, alarm_type: int) -> None:
        self.simulator.alarm(alarm_type)

    def _sim_gps_start(self) -> None:
        self.simulator.gps_start()

    def _sim_gps_stop(self) -> None:
        self.simulator.gps_stop()

    def operator_wait(self) -> float:
        """How long to wait for something a person does (real device) or the simulator does;
        with nobody at the console, a short wait (the step then ends as an error)."""
        if self.simulator is not None:
            return 2.0
        return 120.0 if self.operator.interactive else self.scaled("idle_interval_s") + 5.0

    # ---- the plan's pace ---------------------------------------------------------------
    def floor_and_wall(self) -> tuple[float, float]:
        """Protocol floor (sum of the intervals the plan's polls had to wait) and wall time."""
        polls = [
            e
            for e in self.server.exchanges(self.device_id)
            if e["endpoint"] == "taskRequest" and self.plan_started <= e["started"] <= self.plan_ended
        ]
        floor = 0.0
        for poll in polls[:-1]:
            answer = poll.get("response_json")
            idle = isinstance(answer, dict) and answer.get("request_type") == "idleTime"
            floor += self.scaled("idle_interval_s" if idle else "task_interval_s")
        return floor, max(0.0, self.plan_ended - self.plan_started)


def _try(fn: Any) -> Any:
    try:
        return fn()
    except TimeoutError:
        return None
