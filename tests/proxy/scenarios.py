"""Crafted conversations through the proxy: one correct peer, and peers that
break one rule each. Every scenario speaks as its own device id, so one proxy
session judges them all and each expectation is checked on its device alone.
Bodies come from the repaired examples; broken fields are chosen through the
contract (required fields), never listed here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from tests.proxy.conftest import Upstream
from tests.support import next_request_id


@dataclass
class Peer:
    """One device talking through the proxy; the upstream answers what we queue."""

    client: httpx.Client
    upstream: Upstream
    device_id: str
    scale: float

    def wait(self, key: str) -> None:
        """The device honouring a protocol interval (this is its behaviour, not a wait for a result)."""
        threading.Event().wait(get_contract().timing[key] * self.scale)

    def post(self, path: str, body: Any) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(path, content=raw, headers={"Content-Type": "application/json"})

    def poll(self, answer: Any | None = None, status: int = 200) -> httpx.Response:
        if answer is not None:
            self.upstream.enqueue("/taskRequest", answer, status)
        body = example_for("device/taskRequest")
        body["device_id"] = self.device_id
        return self.post("/taskRequest", body)

    def task(self, schema: str = "server/tasks/getDevStatus", rid: int | None = None) -> dict[str, Any]:
        task = example_for(schema)
        task["request_id"] = rid if rid is not None else next_request_id()
        self.poll(task)
        return task

    def result(self, task: dict[str, Any], request_id: Any = None) -> httpx.Response:
        body = {
            "device_id": self.device_id,
            "request_id": task["request_id"] if request_id is None else request_id,
            "code": 0,
            "log": "ok",
        }
        schema = get_contract().all_tasks[task["request_type"]].result
        try:
            body.update({k: v for k, v in example_for(schema).items() if k not in body and k != "resp_type"})
        except KeyError:
            pass
        return self.post("/taskResult", body)

    def capture(self, **changes: Any) -> httpx.Response:
        body = example_for("device/faceRecognition")
        body["device_id"] = self.device_id
        body.update(changes)
        return self.post("/faceRecognition", body)


def without_required(schema: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body minus one field the contract requires (the first, in sorted order)."""
    name = sorted(get_contract().required_fields(schema) & body.keys())[0]
    return {k: v for k, v in body.items() if k != name}


# ---- the correct peer ------------------------------------------------------------
def correct(peer: Peer) -> None:
    task = peer.task()
    peer.result(task)
    peer.wait("task_interval_s")
    peer.poll(example_for("server/tasks/idleTime"))
    peer.capture()
    peer.wait("idle_interval_s")
    peer.poll(example_for("server/tasks/idleTime"))


# ---- broken devices -----------------------------------------------------------------
def device_missing_field(peer: Peer) -> None:
    body = example_for("device/taskRequest")
    body["device_id"] = peer.device_id
    peer.post("/taskRequest", without_required("device/taskRequest", body))


def device_not_json(peer: Peer) -> None:
    peer.post("/deviceAlarm", f'{{"device_id": "{peer.device_id}", '.encode())


def device_wrong_method(peer: Peer) -> None:
    body = example_for("device/gpsReport")
    body["device_id"] = peer.device_id
    peer.client.request("GET", "/gpsReport", content=json.dumps(body).encode())


def device_unknown_result(peer: Peer) -> None:
    task = peer.task()
    peer.result(task, request_id=next_request_id())
    peer.result(task)


def device_duplicate_result(peer: Peer) -> None:
    task = peer.task()
    peer.result(task)
    peer.result(task)


def device_no_result(peer: Peer) -> None:
    peer.task()
    peer.wait("task_interval_s")
    peer.poll(example_for("server/tasks/idleTime"))
    peer.wait("idle_interval_s")
    peer.poll(example_for("server/tasks/idleTime"))


def device_polls_too_soon(peer: Peer) -> None:
    task = peer.task()
    peer.result(task)
    peer.poll(example_for("server/tasks/idleTime"))


def device_bad_snap_time_ms(peer: Peer) -> None:
    capture = example_for("device/faceRecognition")
    peer.capture(snap_time_ms=capture["snap_time"] * 1000 + 86_400_000)


def device_bad_base64(peer: Peer) -> None:
    peer.capture(image="!!! not base64 !!!")


# ---- broken servers -----------------------------------------------------------------
def server_unknown_task(peer: Peer) -> None:
    peer.poll({"request_type": "rebootNow", "request_id": next_request_id()})


def server_missing_field(peer: Peer) -> None:
    task = example_for("server/tasks/setDevTime")
    task["request_id"] = next_request_id()
    peer.poll(without_required("server/tasks/setDevTime", task))


def server_error_status(peer: Peer) -> None:
    peer.poll(b'{"error": "boom"}', status=500)


def server_wrong_echo(peer: Peer) -> None:
    capture = example_for("device/faceRecognition")
    peer.upstream.enqueue("/faceRecognition", {"code": 0, "snap_time": capture["snap_time"] + 1, "log": "ok"})
    peer.capture()


def server_reuses_request_id(peer: Peer) -> None:
    rid = next_request_id()
    first = peer.task(rid=rid)
    peer.result(first)
    peer.wait("task_interval_s")
    second = peer.task(rid=rid)
    peer.result(second)


Scenario = Callable[[Peer], None]

#: scenario -> the rule it must trigger (None: a correct peer, no error at all)
SCENARIOS: dict[str, tuple[Scenario, str | None]] = {
    "correct": (correct, None),
    "device-missing-field": (device_missing_field, "MSG-REQUIRED"),
    "device-not-json": (device_not_json, "MSG-NOT-JSON"),
    "device-wrong-method": (device_wrong_method, "HTTP-METHOD"),
    "device-unknown-result": (device_unknown_result, "RESULT-UNKNOWN-ID"),
    "device-duplicate-result": (device_duplicate_result, "RESULT-DUPLICATE"),
    "device-no-result": (device_no_result, "RESULT-MISSING"),
    "device-polls-too-soon": (device_polls_too_soon, "CADENCE-TASK"),
    "device-bad-snap-time-ms": (device_bad_snap_time_ms, "SNAPTIME-MS"),
    "device-bad-base64": (device_bad_base64, "IMG-BASE64"),
    "server-unknown-task": (server_unknown_task, "TASK-UNKNOWN"),
    "server-missing-field": (server_missing_field, "MSG-REQUIRED"),
    "server-error-status": (server_error_status, "ANSWER-HTTP-STATUS"),
    "server-wrong-echo": (server_wrong_echo, "ACK-ECHO"),
    "server-reuses-request-id": (server_reuses_request_id, "REQUEST-ID-DUPLICATE"),
}


def device_id_for(number: int) -> str:
    return f"ID{number:014d}"
