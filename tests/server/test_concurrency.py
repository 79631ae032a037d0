"""Many devices at once: every request answered, request ids unique, every
exchange stored (no shared-state races)."""

from __future__ import annotations

import asyncio
import sqlite3
import ssl

import httpx
import pytest

from facecert.core.examples import example_for
from facecert.mock_server import MockServer
from tests.server.helpers import capture_body, poll_body

DEVICES = 200
TASKS_EACH = 2


async def _device(url: str, tls: ssl.SSLContext, device: str) -> list[httpx.Response]:
    """One device: its own connection, polls until idle, then a capture."""
    async with httpx.AsyncClient(base_url=url, timeout=30, verify=tls) as client:
        got = [await client.post("/taskRequest", json=poll_body(device)) for _ in range(TASKS_EACH + 1)]
        return got + [await client.post("/faceRecognition", json=capture_body(device))]


async def _fleet(url: str) -> list[httpx.Response]:
    tls = ssl.create_default_context()  # shared: httpx would build one per client
    per_device = await asyncio.wait_for(
        asyncio.gather(*(_device(url, tls, f"FLEET{n:04d}") for n in range(DEVICES))), timeout=60
    )
    return [r for responses in per_device for r in responses]


@pytest.mark.slow  # benchmark-like: 200 devices' latency
def test_two_hundred_devices_at_once(server: MockServer) -> None:
    enqueued = [
        server.enqueue(f"FLEET{n:04d}", example_for("server/tasks/getDevStatus"))
        for n in range(DEVICES)
        for _ in range(TASKS_EACH)
    ]
    responses = asyncio.run(_fleet(server.url))
    assert len(responses) == DEVICES * (TASKS_EACH + 2)
    assert all(r.status_code == 200 for r in responses)
    sent = [r.json() for r in responses if r.request.url.path.endswith("/taskRequest")]
    rids = [task["request_id"] for task in sent if "request_id" in task]
    assert len(rids) == len(set(rids)) == len(enqueued) and set(rids) == set(enqueued)
    by_device = {
        n: [r.json() for r in responses[n * (TASKS_EACH + 2) : (n + 1) * (TASKS_EACH + 2)]] for n in range(DEVICES)
    }
    for n, answers in by_device.items():  # each device got its own tasks, in order, then idleTime
        mine = [t["request_id"] for t in server.tasks(f"FLEET{n:04d}")]
        assert [a.get("request_id") for a in answers[:TASKS_EACH]] == mine
        assert answers[TASKS_EACH]["request_type"] == "idleTime"
    stored = sqlite3.connect(server.config.db).execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]
    assert stored == len(responses)
    assert not [f for f in server.findings(party="server")]
