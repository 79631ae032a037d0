"""Certify a device: our mock server (and a second one for setPlatformServer)
plays the platform; the device under test, or our simulator with --demo,
talks to it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facecert.certify.liveness import Down
from facecert.certify.operator import Operator
from facecert.core.contract import get_contract
from facecert.core.defaults import DEFAULT_DEVICE_ID, DEFAULT_HOST, DEFAULT_PORT, OPERATOR_WAIT_S, TIME_SCALE

if TYPE_CHECKING:
    from facecert.recording import RecordingState


@dataclass
class DeviceRunConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    prefix: str = ""
    device_id: str = DEFAULT_DEVICE_ID
    profile: str = "strict"
    protocol_version: str | None = None
    time_scale: float = TIME_SCALE
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
        self.db = cfg.report / "session.db"
        if self.db.exists():
            self.db.unlink()
        # the main server (the session's database) and the second one setPlatformServer sends the device to
        common = ServerConfig(
            host=cfg.host,
            prefix=cfg.prefix,
            admin_token=cfg.admin_token,
            profile=cfg.profile,
            protocol_version=cfg.protocol_version,
            time_scale=cfg.time_scale,
        )
        self.server = MockServer(dataclasses.replace(common, port=cfg.port, db=self.db))
        self.second = MockServer(dataclasses.replace(common, port=0))
        self.simulator: Any = None
        self.plan_started = 0.0
        self.plan_ended = 0.0

    def recording(self) -> RecordingState | None:
        """How our servers' stores failed to keep what the device sent (a full disk), if they did: None
        when every exchange was kept (the plugin makes every scenario after a failure an error)."""
        for server in (self.server, self.second):
            state = server.platform.recording.state()
            if not state.complete:
                return state
        return None

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
        return get_contract().result_deadline_s * self.time_scale

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
        return OPERATOR_WAIT_S if self.operator.interactive else self.scaled("idle_interval_s") + 5.0

    # ---- the plan's pace ---------------------------------------------------------------
    def floor_and_wall(self) -> tuple[float, float]:
        """Protocol floor and wall time of the plan.

        The floor is the waiting the device's own intervals impose during the plan: after each poll
        the device waits the interval its answer sets (idleTime: the idle interval, a task: the task
        interval, times the time scale) before it polls again, on whichever of our servers it polls
        (setPlatformServer sends it to the second one and back). Its wait after the last poll before
        the plan counts for the part that falls in the plan: nothing can make the device poll sooner."""
        contract = get_contract()
        polls = sorted(
            (
                e
                for server in (self.server, self.second)
                for e in server.exchanges(self.device_id)
                if e["endpoint"] == "taskRequest" and e["started"] <= self.plan_ended
            ),
            key=lambda e: e["started"],
        )
        before = [p for p in polls if p["started"] < self.plan_started][-1:]
        counted = before + [p for p in polls if p["started"] >= self.plan_started]
        floor = 0.0
        for poll in counted[:-1]:  # the last poll's wait is not over within the plan
            answer = poll.get("response_json")
            task = answer.get("request_type") if isinstance(answer, dict) else None
            wait = self.scaled(contract.interval_key(task))
            if poll["started"] < self.plan_started:
                wait = max(0.0, wait - (self.plan_started - (poll["ended"] or poll["started"])))
            floor += wait
        return floor, max(0.0, self.plan_ended - self.plan_started)


def _try(fn: Any) -> Any:
    try:
        return fn()
    except TimeoutError:
        return None
