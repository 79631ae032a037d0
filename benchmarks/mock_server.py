"""Requests/s and p50/p99 latency of /taskRequest for N concurrent simulated
devices: the mock server (judging, storing, queueing) against a bare
Starlette endpoint answering a constant idleTime, both on uvicorn 127.0.0.1,
in the same run. Bounded in requests and in time.

    .venv/bin/python benchmarks/mock_server.py [--devices 1 10 50 200] [--polls 20] [--db FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facecert.core.examples import example_for
from facecert.mock_server import MockServer, ServerConfig

TIME_LIMIT_S = 120.0


class BareServer:
    """The floor: uvicorn + Starlette answering a constant idleTime."""

    def __init__(self) -> None:
        answer = json.dumps(example_for("server/tasks/idleTime")).encode()

        async def task_request(request: Request) -> Response:
            await request.body()
            return Response(answer, media_type="application/json")

        app = Starlette(routes=[Route("/taskRequest", task_request, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                access_log=False,
                backlog=2048,
                timeout_keep_alive=30,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        ready = threading.Event()
        while not self.server.started:
            ready.wait(0.01)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def _run(url: str, devices: int, polls: int) -> tuple[float, list[float]]:
    """One client (one connection) per simulated device, as on a real site; a
    shared TLS context keeps client creation cheap (httpx builds one per client
    otherwise), and one shared pool would be quadratic in its connections."""
    latencies: list[float] = []
    deadline = time.monotonic() + TIME_LIMIT_S
    tls = ssl.create_default_context()
    clients = [httpx.AsyncClient(base_url=url, timeout=30, verify=tls) for _ in range(devices)]
    bodies = [{**example_for("device/taskRequest"), "device_id": f"BENCH{n:05d}"} for n in range(devices)]

    async def device(number: int) -> None:
        body, client = bodies[number], clients[number]
        for _ in range(polls):
            if time.monotonic() > deadline:
                return
            body["time_stamp"] = int(time.time())
            start = time.perf_counter()
            answer = await client.post("/taskRequest", json=body)
            latencies.append(time.perf_counter() - start)
            answer.raise_for_status()

    try:
        # warm-up: one poll per device opens its connection
        await asyncio.gather(*(c.post("/taskRequest", json=b) for c, b in zip(clients, bodies, strict=True)))
        start = time.perf_counter()
        await asyncio.gather(*(device(n) for n in range(devices)))
        return time.perf_counter() - start, latencies
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def measure(url: str, devices: int, polls: int) -> dict[str, float]:
    elapsed, latencies = asyncio.run(_run(url, devices, polls))
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--polls", type=int, default=20, help="polls per device (after one warm-up poll)")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: a temp file, WAL)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        print(
            f"{'devices':>7} | {'mock req/s':>10} {'p50 ms':>7} {'p99 ms':>7} | {'bare req/s':>10} {'p50 ms':>7} "
            f"{'p99 ms':>7} | {'rps ratio':>9} {'p50 ratio':>9}"
        )
        for devices in args.devices:
            with MockServer(ServerConfig(db=db, time_scale=1.0)) as srv:
                mock = measure(srv.url, devices, args.polls)
            with BareServer() as url:
                bare = measure(url, devices, args.polls)
            print(
                f"{devices:>7} | {mock['rps']:>10.0f} {mock['p50_ms']:>7.2f} {mock['p99_ms']:>7.2f} | "
                f"{bare['rps']:>10.0f} {bare['p50_ms']:>7.2f} {bare['p99_ms']:>7.2f} | "
                f"{mock['rps'] / bare['rps']:>9.2f} {mock['p50_ms'] / bare['p50_ms']:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
