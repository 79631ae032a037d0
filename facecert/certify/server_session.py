"""Certify a platform server: our reference device plays the terminal
against the server under test (or against our mock server with --demo)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from facecert.certify.operator import Operator
from facecert.certify.triggers import Triggers
from facecert.contract import get_contract
from facecert.engine import Engine, EngineConfig
from facecert.model import Exchange

HARNESS_ID = "FACECERT0000000001"


@dataclass
class ServerRunConfig:
    url: str = ""
    triggers: Path | None = None
    profile: str = "strict"
    protocol_version: str | None = None
    time_scale: float = 1.0
    report: Path = Path("reports/server")
    demo: bool = False
    misbehaviours: set[str] = field(default_factory=set)  # for --demo: break our server on purpose
    device_id: str = HARNESS_ID


class ServerSession:
    """The live peers of a server certification, as the steps see them."""

    kind = "server"

    def __init__(self, cfg: ServerRunConfig, operator: Operator) -> None:
        self.cfg = cfg
        self.operator = operator
        self.time_scale = cfg.time_scale
        self.timing = get_contract().timing
        self.device_id = cfg.device_id
        self.demo_server: Any = None
        self.url = cfg.url.rstrip("/")
        self.triggers: Triggers | None = Triggers.load(cfg.triggers) if cfg.triggers else None
        self.device: Any = None
        self.probes: list[Exchange] = []
        self.client = httpx.Client(timeout=10)
        self.plan_started = self.plan_ended = 0.0
        cfg.report.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        if self.cfg.demo:
            from mock_server import MockServer, ServerConfig

            self.demo_server = MockServer(ServerConfig(profile=self.cfg.profile, protocol_version=self.cfg.protocol_version,
                                                       time_scale=self.time_scale)).start()
            for name in self.cfg.misbehaviours:
                self.demo_server.set_misbehaviour(name)
            self.url = self.demo_server.url
            if self.triggers is None:
                self.triggers = Triggers.load(Path(__file__).resolve().parents[2] / "triggers" / "mock_server.yaml")
        if self.triggers is None:
            raise ValueError("--triggers FILE is required to certify a server (see triggers/mock_server.yaml)")
        self.device = self.new_device(self.device_id).start()

    def new_device(self, device_id: str) -> Any:
        from mock_device import Device, DeviceConfig

        return Device(DeviceConfig(server=self.url, device_id=device_id, time_scale=self.time_scale,
                                   protocol_version=self.cfg.protocol_version,
                                   spool_dir=self.cfg.report / "spool"))

    def stop(self) -> None:
        if self.device is not None:
            try:
                self.device.stop()
            except RuntimeError as exc:
                self.operator.say(f"[yellow]harness device stopped with an error: {exc.__cause__!r}[/]")
        self.client.close()
        if self.demo_server is not None:
            self.demo_server.stop()

    def scaled(self, key: str) -> float:
        return self.timing[key] * self.time_scale

    @property
    def task_deadline(self) -> float:
        return 2 * self.scaled("idle_interval_s") + self.scaled("task_interval_s") + 5.0

    def judge(self) -> Engine:
        """The server's behaviour as our device saw it, plus the probes, judged afresh."""
        engine = Engine(EngineConfig(profile=self.cfg.profile, protocol_version=self.cfg.protocol_version,
                                     time_scale=self.time_scale))
        seen = sorted([*self.device.exchanges, *self.probes], key=lambda ex: ex.started)
        for exchange in seen:
            engine.feed(dataclasses.replace(exchange, index=-1))
        return engine

    def exchanges(self) -> list[Exchange]:
        return list(self.device.exchanges) + list(self.probes)

    def probe(self, endpoint: str, body: bytes, content_type: str = "application/json") -> Exchange:
        """Post one message as a device would, outside the harness device (robustness checks)."""
        path = get_contract().all_endpoints[endpoint].path
        started = time.time()
        try:
            response = self.client.post(self.url + path, content=body, headers={"Content-Type": content_type})
            exchange = Exchange("POST", path, body, response.status_code, response.content, started=started,
                                ended=time.time(), request_headers={"Content-Type": content_type},
                                response_headers=dict(response.headers), url=self.url + path)
        except httpx.HTTPError as exc:
            exchange = Exchange("POST", path, body, None, None, started=started, ended=time.time(),
                                url=self.url + path, error=f"{type(exc).__name__}: {exc}")
        self.probes.append(exchange)
        return exchange
