"""A server that is down or misbehaves never kills the device: it logs, backs
off and keeps polling; odd tasks get a non-zero code when they carry an id."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from facecert.mock_device import Device, DeviceConfig
from facecert.mock_device.judge import device_errors, judge_device
from facecert.mock_device.tasks import BAD_PARAMETER, COMMAND_UNKNOWN
from facecert.mock_server import MockServer
from tests.device.scenarios import wait
from tests.support import SCALE, new_server, unique_id

SERVER_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("outage", {"mode": "drop"}),
    ("outage", {"mode": "503"}),
    ("error", {"status": 500}),
    ("malformed", {}),
    ("slow", {"delay": 0.6}),
]
FAULT_IDS = [f"{k}-{list(p.values())}" for k, p in SERVER_FAULTS]


def _survive(kind: str, params: dict[str, Any], folder: Path) -> Device:
    """A device on a mock server of its own (as tests/conftest.py's ``server``) through the server fault
    and back: the device, stopped (which raises if its loop crashed)."""
    srv = new_server(folder)
    srv.start()
    try:
        dev = Device(DeviceConfig(server=srv.url, time_scale=SCALE, device_id=unique_id(kind), request_timeout_s=0.3))
        try:
            dev.start()
            wait(dev, lambda: dev.stats.polls >= 1, "the first poll")
            srv.set_fault(kind, device_id=dev.cfg.device_id, **params)
            failures = dev.stats.failures
            wait(dev, lambda: dev.stats.failures >= failures + 2, "two failed polls")
            srv.clear_faults()
            idle = dev.stats.idle
            wait(dev, lambda: dev.stats.idle > idle, "an idleTime answer once the server is back")
            dev.stop()  # raises if the device's loop crashed
            return dev
        finally:
            dev.stop()  # stopped whatever happened (a second stop does nothing)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def survivals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Device]]]:
    """Every server fault's conversation at once, each on a server of its own: they wait on the device's
    back-off and cadence (about 0.1 CPU-s in 2 s each)."""
    folder = tmp_path_factory.mktemp("server-faults")
    with ThreadPoolExecutor(max_workers=len(SERVER_FAULTS), thread_name_prefix="server-fault") as pool:
        futures = {
            FAULT_IDS[i]: pool.submit(_survive, kind, params, folder / str(i))
            for i, (kind, params) in enumerate(SERVER_FAULTS)
        }
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()


@pytest.mark.parametrize(("kind", "params"), SERVER_FAULTS, ids=FAULT_IDS)
def test_device_survives_server_faults(
    kind: str, params: dict[str, Any], survivals: dict[str, Future[Device]], request: pytest.FixtureRequest
) -> None:
    dev = survivals[request.node.callspec.id].result()
    assert "backing off" in dev.log_text()


RAW_TASKS: list[tuple[str, Any, int | None]] = [
    ("unknown-command", {"request_type": "rebootNow", "request_id": 880001}, COMMAND_UNKNOWN),
    ("missing-parameter", {"request_type": "deleteUser", "request_id": 880002}, BAD_PARAMETER),
    ("wrong-type", {"request_type": "setDevTime", "request_id": 880003, "time_stamp": "soon"}, BAD_PARAMETER),
    ("no-request-id", {"request_type": "rebootNow"}, None),
    ("not-json", b'{"request_type": "getDevStatus", "request_id": 880004,', None),
    ("json-array", b"[1, 2, 3]", None),
]


@pytest.mark.parametrize(("label", "task", "code"), RAW_TASKS, ids=[t[0] for t in RAW_TASKS])
def test_odd_tasks(label: str, task: Any, code: int | None, server: MockServer, make_device) -> None:
    dev: Device = make_device(label, start=False)
    server.enqueue(dev.cfg.device_id, task, raw=True)
    dev.start()
    wait(dev, lambda: dev.stats.idle >= 1, "polling to go on after the odd task")
    dev.stop()
    if code is None:
        assert not dev.results
    else:
        assert [r["code"] for r in dev.results] == [code]
        assert dev.results[0]["request_id"] == task["request_id"]
    errors = device_errors(judge_device(dev).findings)
    assert not errors, "\n".join(f.line() for f in errors)


def test_a_stopped_device_lets_its_poll_in_flight_finish(server: MockServer, make_device) -> None:
    """Stopping the device while the server holds its poll (0.4 s) waits for the answer (within
    device.STOP_GRACE_S) instead of tearing the exchange: the server stores it answered, with no
    ANSWER-MISSING, and the device sends nothing after it."""
    dev: Device = make_device("stop-in-flight")
    wait(dev, lambda: dev.stats.polls >= 1, "the first poll")
    server.set_fault("slow", device_id=dev.cfg.device_id, delay=0.4)
    polls = dev.stats.polls
    wait(dev, lambda: dev.stats.polls > polls, "the poll answered before the fault")  # counted once answered
    wait(dev, lambda: dev.in_flight >= 1, "a poll held by the server")
    answered = dev.stats.polls
    dev.stop()
    device_id = dev.cfg.device_id
    # the held poll is stored once the server is done with it: answered (or, torn, unanswered)
    wait(dev, lambda: len(server.exchanges(device_id)) > answered, "the held poll stored")
    assert dev.stats.polls == answered + 1  # its answer reached the device
    assert not [f for f in server.findings(device_id) if f["rule"] == "ANSWER-MISSING"]
    assert [row["status"] for row in server.exchanges(device_id)] == [200] * (answered + 1)


class _FailsOnce(httpx.AsyncHTTPTransport):
    """A real transport whose first request raises what no transport error is (a bug in a library below)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.failed:
            self.failed = True
            raise RuntimeError("Set changed size during iteration")
        return await super().handle_async_request(request)


def test_a_bug_inside_the_http_client_costs_one_poll_not_the_device(server: MockServer, make_device) -> None:
    """An exception from below the driver (once seen from anyio's lazy import inside httpcore) is logged and
    taken as a failed request: the device backs off and polls on, where it used to wait for ever."""
    transport = _FailsOnce()
    dev: Device = make_device("client-bug", start=False)
    dev._client = httpx.AsyncClient(transport=transport)  # the driver's own client, with the failing transport
    dev.start()
    wait(dev, lambda: dev.stats.idle >= 2, "polls after the failed one")
    dev.stop()
    assert transport.failed and dev.stats.failures >= 1
    assert "internal error: RuntimeError: Set changed size during iteration" in dev.log_text()
