"""Certify a platform server: our reference device plays the terminal
against the server under test (or against our mock server with --demo)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx

from facecert.certify.liveness import Down
from facecert.certify.operator import Operator
from facecert.certify.triggers import Triggers
from facecert.core.contract import get_contract
from facecert.core.defaults import OPERATOR_WAIT_S
from facecert.core.engine import Engine, EngineConfig
from facecert.core.examples import example_for
from facecert.core.model import Exchange, Finding
from facecert.core.rules.conversation import is_ok_status, utc_clock
from facecert.mock_device.persona import PERSONAS

HARNESS_ID = "FACECERT0000000001"
SECOND_ID = "FACECERT0000000002"
DOWN_AFTER_POLLS = 3  # this many unanswered polls in a row: the server stopped answering


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
    persona: str = "spec"


class ServerSession:
    """The live peers of a server certification, as the steps see them."""

    kind = "server"

    def __init__(self, cfg: ServerRunConfig, operator: Operator) -> None:
        self.cfg = cfg
        self.operator = operator
        self.time_scale = cfg.time_scale
        self.timing = get_contract().timing
        self.device_id = cfg.device_id
        self.second_device_id = SECOND_ID
        if cfg.persona not in PERSONAS:
            raise ValueError(f"unknown persona {cfg.persona!r}; one of {', '.join(PERSONAS)}")
        self.persona = cfg.persona
        self.demo_server: Any = None
        self.url = cfg.url.rstrip("/")
        self.triggers: Triggers | None = Triggers.load(cfg.triggers) if cfg.triggers else None
        self.device: Any = None
        self.probes: list[Exchange] = []
        self.client = httpx.Client(timeout=10)
        self.plan_started = self.plan_ended = 0.0
        self._judged: tuple[tuple[int, int], Engine, dict[int, int]] | None = None
        cfg.report.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        if self.cfg.demo:
            from facecert.mock_server import MockServer, ServerConfig

            self.demo_server = MockServer(
                ServerConfig(
                    profile=self.cfg.profile, protocol_version=self.cfg.protocol_version, time_scale=self.time_scale
                )
            ).start()
            for name in self.cfg.misbehaviours:
                self.demo_server.set_misbehaviour(name)
            self.url = self.demo_server.url
            if self.triggers is None:
                self.triggers = Triggers.load(Path(str(files("facecert") / "triggers" / "mock_server.yaml")))
        if self.triggers is None:
            raise ValueError("--triggers FILE is required to certify a server (see triggers/mock_server.yaml)")
        self.device = self.new_device(self.device_id).start()

    def new_device(self, device_id: str) -> Any:
        from facecert.mock_device import Device, DeviceConfig

        return Device(
            DeviceConfig(
                server=self.url,
                device_id=device_id,
                time_scale=self.time_scale,
                protocol_version=self.cfg.protocol_version,
                persona=self.persona,
                spool_dir=self.cfg.report / "spool",
            )
        )

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
        """A queued task must come within two idle polls and a task interval, plus time for the
        platform to queue it after the trigger (5 s at real time, scaled for simulators)."""
        return 2 * self.scaled("idle_interval_s") + self.scaled("task_interval_s") + max(1.0, 5.0 * self.time_scale)

    def operator_wait(self) -> float:
        """How long a person at the platform gets to queue a task by hand (manual triggers);
        with nobody at the console, a short wait (the scenario then ends as an error)."""
        return OPERATOR_WAIT_S if self.operator.interactive else self.scaled("idle_interval_s") + 1.0

    def judge(self) -> Engine:
        """The server's behaviour as our device saw it, plus the probes, judged afresh
        (cached until a new exchange arrives)."""
        seen = sorted([*self.device.exchanges, *self.probes], key=lambda ex: ex.started)
        key = (len(self.device.exchanges), len(self.probes))
        if self._judged is not None and self._judged[0] == key:
            return self._judged[1]
        engine = Engine(
            EngineConfig(
                profile=self.cfg.profile, protocol_version=self.cfg.protocol_version, time_scale=self.time_scale
            )
        )
        index: dict[int, int] = {}
        for exchange in seen:
            index[id(exchange)] = engine.feed(dataclasses.replace(exchange, index=-1)).exchange.index
        self._judged = (key, engine, index)
        return engine

    def findings_for(self, exchange: Exchange) -> list[Finding]:
        """The server's findings on one exchange the harness made (a probe, a result); what
        the harness itself broke there (a probe poll off its cadence) is never the server's."""
        engine = self.judge()
        assert self._judged is not None
        number = self._judged[2].get(id(exchange))
        return [f for f in engine.findings if number is not None and f.exchange == number and f.party == "server"]

    def timed_findings(self) -> list[dict[str, Any]]:
        """The server's findings, each with the time of its exchange (for the root causes)."""
        engine = self.judge()
        seen = sorted([*self.device.exchanges, *self.probes], key=lambda ex: ex.started)
        return [
            {**f.to_dict(), "time": seen[f.exchange].started if 0 <= f.exchange < len(seen) else None}
            for f in engine.findings
            if f.party == "server"
        ]

    # ---- the harness device's messages, as its persona sends them --------------------------
    def persona_body(self, endpoint: str, body: dict[str, Any], persona: str | None = None) -> dict[str, Any]:
        from facecert.mock_device.persona import dress

        return dress(endpoint, body, persona or self.persona)

    def poll_body(self, device_id: str, persona: str | None = None) -> bytes:
        body = {**example_for("device/taskRequest"), "device_id": device_id, "time_stamp": int(time.time())}
        return json.dumps(self.persona_body("taskRequest", body, persona)).encode()

    # ---- is the server still there? ----------------------------------------------------------
    def answered_polls(self, after: float = 0.0) -> list[Exchange]:
        """The harness device's polls whose answer came at ``after`` or later (or that were sent then, if no
        answer came): what a task queued at ``after`` can have been sent on, a poll in flight then included."""
        return [
            e
            for e in list(self.device.exchanges)
            if e.path.endswith("/taskRequest") and (e.started if e.ended is None else e.ended) >= after
        ]

    def down(self) -> Down | None:
        """The server stopped answering: the last few polls all got no answer at all."""
        recent = self.answered_polls()[-DOWN_AFTER_POLLS:]
        if len(recent) < DOWN_AFTER_POLLS or any(e.status is not None for e in recent):
            return None
        return Down(
            ("ANSWER-MISSING",),
            f"the server stopped answering: the last {len(recent)} polls since "
            f"{utc_clock(recent[0].started)} got no answer ({recent[-1].error or 'connection failed'})",
            recent[0].started,
        )

    def explain_polls(self, after: float, task: str | None = None) -> tuple[tuple[str, ...], str]:
        """What the server did instead of sending the task: the rules the engine found on
        the polls since ``after`` (the root cause) and a sentence a person can act on."""
        polls = self.answered_polls(after)
        if not polls:
            return (), "the harness device has not polled since"
        engine = self.judge()
        assert self._judged is not None
        numbers = {self._judged[2].get(id(e)) for e in polls}
        found = [
            f for f in engine.findings if f.exchange in numbers and f.party == "server" and f.severity.value == "error"
        ]
        rules = tuple(dict.fromkeys(f.rule for f in found if f.rule != "TASK-NOT-SENT"))
        resent = [f for f in engine.findings if f.rule == "TASK-RESENT" and f.exchange in numbers]
        if resent:
            rules = ("TASK-RESENT", *[r for r in rules if r != "TASK-RESENT"])
        return rules, _describe_polls(polls, task, get_contract().idle_task)

    def exchanges(self) -> list[Exchange]:
        return list(self.device.exchanges) + list(self.probes)

    def probe(self, endpoint: str, body: bytes, content_type: str = "application/json") -> Exchange:
        """Post one message as a device would, outside the harness device (robustness checks)."""
        path = get_contract().all_endpoints[endpoint].path
        started = time.time()
        try:
            response = self.client.post(self.url + path, content=body, headers={"Content-Type": content_type})
            exchange = Exchange(
                "POST",
                path,
                body,
                response.status_code,
                response.content,
                started=started,
                ended=time.time(),
                request_headers={"Content-Type": content_type},
                response_headers=dict(response.headers),
                url=self.url + path,
            )
        except httpx.HTTPError as exc:
            exchange = Exchange(
                "POST",
                path,
                body,
                None,
                None,
                started=started,
                ended=time.time(),
                url=self.url + path,
                error=f"{type(exc).__name__}: {exc}",
            )
        self.probes.append(exchange)
        return exchange


def _describe_polls(polls: list[Exchange], task: str | None, idle: str) -> str:
    count = len(polls)
    if not any(is_ok_status(e) for e in polls):
        statuses = Counter("no answer" if e.status is None else f"HTTP {e.status}" for e in polls)
        if len(statuses) == 1:
            return f"every poll since the trigger ({count}) was answered {next(iter(statuses))}"
        return f"no poll since the trigger ({count}) got a 2xx: " + ", ".join(f"{n}× {s}" for s, n in statuses.items())
    kinds: Counter[str] = Counter()
    for exchange in polls:
        try:
            answer = json.loads(exchange.response_body or b"")
        except ValueError:
            answer = None
        kinds[answer.get("request_type", "?") if isinstance(answer, dict) else "not a JSON object"] += 1
    others = [(kind, n) for kind, n in kinds.most_common() if kind not in (idle, task)]
    if others and others[0][1] >= 2:
        return f"the server kept re-sending {others[0][0]} ({others[0][1]} times in {count} polls)"
    return f"the {count} polls since the trigger were answered " + ", ".join(
        f"{n}× {k}" for k, n in kinds.most_common()
    )
