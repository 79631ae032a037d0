"""A clean, synthetic conversation built from the repaired examples: the demo's
sample capture, the benchmark's 10,000-exchange capture, and the base that
tests mutate to show each rule firing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.core.model import Exchange

T0 = 1_700_000_000.0
LATENCY = 0.004


def _json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class ConversationBuilder:
    """Builds exchanges of one device with correct timing (time scale 1)."""

    def __init__(self, device_id: str = "ID12345678901234", start: float = T0, first_rid: int = 100_000) -> None:
        self.device_id = device_id
        self.now = start
        self.rid = first_rid
        self.timing = get_contract().timing
        self.exchanges: list[Exchange] = []

    def _post(self, path: str, body: Any, answer: Any, status: int = 200) -> Exchange:
        raw_answer = answer if isinstance(answer, bytes) else _json(answer)
        exchange = Exchange(
            "POST",
            path,
            body if isinstance(body, bytes) else _json(body),
            status,
            raw_answer,
            started=self.now,
            ended=self.now + LATENCY,
            request_headers={"Content-Type": "application/json"},
            response_headers={"Content-Type": "application/json"},
            peer="192.168.1.92",
        )
        self.now += LATENCY
        self.exchanges.append(exchange)
        return exchange

    def poll_body(self) -> dict[str, Any]:
        body = example_for("device/taskRequest")
        body.update(device_id=self.device_id, time_stamp=int(self.now))
        return body

    def poll(self, task: dict[str, Any]) -> dict[str, Any]:
        if task.get("request_type") != get_contract().idle_task:
            self.rid += 1
            task = {**task, "request_id": self.rid}
        else:
            task = {**task, "time_stamp": int(self.now)}
        self._post("/taskRequest", self.poll_body(), task)
        return task

    def result(self, task: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        schema = get_contract().all_tasks[task["request_type"]].result
        body: dict[str, Any] = {
            "device_id": self.device_id,
            "request_id": task["request_id"],
            "code": 0,
            "log": f"'{task['request_type']}' success!",
        }
        try:
            example = example_for(schema) if schema else {}
            body.update({k: v for k, v in example.items() if k not in body and k != "resp_type"})
        except KeyError:
            pass
        body.update(extra or {})
        self._post("/taskResult", body, {"code": 0, "log": "ok"})

    def capture(self) -> None:
        body = example_for("device/faceRecognition")
        snap = int(self.now)
        body.update(
            device_id=self.device_id,
            timestamp=snap,
            snap_time=snap,
            snap_time_ms=snap * 1000 + 123,
            frpic_name=f"FACE_0_{snap}_{len(self.exchanges)}.jpg",
        )
        self._post(
            "/faceRecognition",
            body,
            {"code": 0, "snap_time": snap, "frpic_name": body["frpic_name"], "log": "'faceRecognition' success"},
        )

    def wait(self, key: str) -> None:
        self.now += self.timing[key]

    def cycle(self, task_schema: str) -> None:
        """One task round trip, then the 5 s wait."""
        task = self.poll(example_for(task_schema))
        self.result(task)
        self.wait("task_interval_s")

    def idle(self) -> None:
        contract = get_contract()
        self.poll(example_for(contract.all_tasks[contract.idle_task].schema))
        self.capture()
        self.wait("idle_interval_s")


SIMPLE_TASKS = (
    "server/tasks/getDevStatus",
    "server/tasks/deleteUser",
    "server/tasks/getLogFile",
    "server/tasks/setResumeTransfer",
    "server/tasks/SetFaceConfig",
    "server/tasks/delUserList",
)


def sample_conversation(devices: int = 1, cycles: int = 3) -> list[Exchange]:
    """A correct conversation: per device, ``cycles`` x (task, result, idle, capture)."""
    out: list[Exchange] = []
    for number in range(devices):
        builder = ConversationBuilder(f"ID{number:014d}", start=T0 + number * 0.01, first_rid=1_000_000 * (number + 1))
        for cycle in range(cycles):
            builder.cycle(SIMPLE_TASKS[cycle % len(SIMPLE_TASKS)])
            builder.idle()
        out.extend(builder.exchanges)
    out.sort(key=lambda ex: ex.started)
    return out


def iter_large(total: int) -> Iterator[Exchange]:
    """About ``total`` exchanges over enough devices, for benchmarks."""
    per_device = 4 * 20  # (task, result, idle, capture) x 20 cycles
    devices = max(1, -(-total // per_device))
    yield from sample_conversation(devices=devices, cycles=20)
