"""A small fleet in one process: distinct identities, one connection pool,
per-device and aggregate statistics, zero device errors on the server."""

from __future__ import annotations

import asyncio

from facecert.mock_device import DeviceConfig, Fleet
from facecert.mock_server import MockServer
from tests.support import SCALE

COUNT = 20


def test_fleet_of_twenty(server: MockServer) -> None:
    fleet = Fleet(
        DeviceConfig(server=server.url, time_scale=SCALE, captures_per_minute=30, record=False),
        COUNT,
        id_prefix="FLEET",
    )
    ids = {d.cfg.device_id for d in fleet.devices}
    assert len(ids) == COUNT and len({d.cfg.device_mac for d in fleet.devices}) == COUNT
    summary = asyncio.run(fleet.run_for(3.0))
    assert summary["devices"] == COUNT and summary["failures"] == 0
    assert summary["polls"] >= 2 * COUNT, summary
    assert all(row["polls"] >= 2 for row in fleet.per_device())
    assert summary["latency_p50_ms"] > 0
    seen = {d["device_id"] for d in server.devices()}
    assert ids <= seen
    errors = [f for f in server.findings(party="device") if f["device_id"] in ids and f["severity"] == "error"]
    assert not errors, errors[:3]
    assert all(d._client is None for d in fleet.devices), "the shared pool is released when the fleet stops"
