"""Many devices in one process, sharing one connection pool.

Starts are staggered over one idle interval so that a thousand devices do
not poll in the same millisecond (real fleets power up over minutes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx

from facecert.mock_device.config import DeviceConfig, mac_for
from facecert.mock_device.device import Device, wait_or_stop
from facecert.mock_device.stats import aggregate

IN_FLIGHT = 128  # requests the whole fleet has inside httpx at once
KEEPALIVE = 8


class Fleet:
    """``count`` devices cloned from ``template`` with distinct ids and MAC addresses."""

    def __init__(self, template: DeviceConfig, count: int, id_prefix: str = "SIM") -> None:
        if count < 1:
            raise ValueError("a fleet has at least one device")
        width = max(8, len(str(count)))
        self.devices = [
            Device(
                dataclasses.replace(
                    template,
                    device_id=f"{id_prefix}{n:0{width}d}" if count > 1 else template.device_id,
                    device_mac=mac_for(n) if count > 1 else template.device_mac,
                    device_name=f"{template.device_name}-{n}" if count > 1 else template.device_name,
                    faults=set(template.faults),
                    seed=template.seed + n,
                )
            )
            for n in range(count)
        ]
        self.started_at = 0.0
        self.elapsed = 0.0

    async def run(self, stop: asyncio.Event, stagger_s: float | None = None) -> None:
        """Run every device until ``stop``; one httpx.AsyncClient sized for the fleet."""
        count = len(self.devices)
        first = self.devices[0]
        spread = first.scaled("idle_interval_s") if stagger_s is None else stagger_s
        # httpcore's pool costs O(connections) per request and O(queued x connections) when requests queue
        # inside it (docs/performance.md (Fleet)); so requests beyond IN_FLIGHT wait at our semaphore (O(1))
        # and the pool holds at most IN_FLIGHT connections, KEEPALIVE of them idle: any idle connection
        # serves any device equally well.
        in_flight = min(count + 8, IN_FLIGHT)
        gate = asyncio.Semaphore(in_flight)
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=min(in_flight, KEEPALIVE))
        timeout = httpx.Timeout(first.cfg.request_timeout_s, pool=None)
        self.started_at = time.time()
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

            async def one(index: int, device: Device) -> None:
                await wait_or_stop(stop, self.started_at + spread * index / count)
                if not stop.is_set():
                    device._client = client
                    device.gate = gate
                    await device.run(stop)

            await asyncio.gather(*(one(i, d) for i, d in enumerate(self.devices)))
        for device in self.devices:
            device._client, device.gate = None, None  # the pool is closed; a later run gets a new one
        self.elapsed = time.time() - self.started_at

    async def run_for(self, seconds: float, stagger_s: float | None = None) -> dict[str, Any]:
        stop = asyncio.Event()
        runner = asyncio.create_task(self.run(stop, stagger_s))
        await wait_or_stop(stop, time.time() + seconds)
        stop.set()
        await runner
        return self.summary()

    def summary(self) -> dict[str, Any]:
        total = aggregate([d.stats for d in self.devices])
        elapsed = self.elapsed or max(1e-9, time.time() - self.started_at)
        total.update(
            devices=len(self.devices),
            elapsed_s=round(elapsed, 2),
            polls_per_s=round(total["polls"] / elapsed, 1) if elapsed else 0.0,
        )
        return total

    def counters(self) -> dict[str, int]:
        """Summed counters only: cheap enough for a live status line over thousands of devices."""
        total: dict[str, int] = {}
        for device in self.devices:
            for key, value in device.stats.counters().items():
                total[key] = total.get(key, 0) + value
        return total

    def per_device(self) -> list[dict[str, Any]]:
        return [{"device_id": d.cfg.device_id, **d.stats.summary()} for d in self.devices]
