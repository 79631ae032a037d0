"""Does one hostile peer stall everyone else? Other devices' /taskRequest
latency (p50/p99/max) against a mock server in its own process, first alone,
then while another process sends hostile bodies up to ``max_body`` back to
back (many keys, long arrays, a 20 MB string, escapes, nesting, a capture
just under the limit, and bodies over it). Prints both and the p99 ratio.
Bounded in time.

    .venv/bin/python benchmarks/stall.py [--seconds 6] [--devices 10] [--interval 0.05] [--senders 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecert.core.contract import get_contract  # noqa: E402
from facecert.core.examples import example_for  # noqa: E402

MAX_SECONDS = 120.0
CLIENT_TIMEOUT_S = 30.0  # a poll that waits longer counts as this long


def hostile_bodies(max_body: int) -> Iterator[tuple[str, str, bytes]]:
    """(what, endpoint, body): each about ``max_body`` bytes, each refused or judged at a bounded cost."""
    room = max_body - 200
    poll = json.dumps({**example_for("device/taskRequest"), "device_id": "HOSTILE"})[:-1].encode()
    keys = b",".join(b'"k%d":%d' % (i, i) for i in range(room // 14))
    yield "1M keys", "taskRequest", poll + b"," + keys[:room].rsplit(b",", 1)[0] + b"}"
    yield "10M-item array", "taskRequest", poll + b',"a":[' + b"0," * (room // 2) + b"0]}"
    yield "7M empty strings", "taskRequest", poll + b',"a":[' + b'"",' * (room // 3) + b'""]}'
    yield "20 MB string", "gpsReport", poll + b',"a":"' + b"x" * room + b'"}'
    yield "10M escaped quotes", "deviceAlarm", poll + b',"a":"' + b'\\"' * (room // 2) + b'"}'
    yield "10M-level nesting", "taskResult", b"[" * (room // 2) + b"]" * (room // 2)
    yield "20M-digit number", "taskRequest", poll + b',"a":' + b"1" * room + b"}"
    capture = json.dumps({**example_for("device/faceRecognition"), "device_id": "HOSTILE", "image": "@"}).encode()
    head, _, tail = capture.partition(b"@")
    yield "capture just under max_body", "faceRecognition", head + b"A" * (max_body - len(head) - len(tail) - 64) + tail
    yield "capture over max_body", "faceRecognition", head + b"A" * (max_body + 1024) + tail


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def other_devices(url: str, devices: int, interval: float, seconds: float) -> list[float]:
    """Latencies (s) of well-behaved polls from ``devices`` devices, each polling every ``interval``."""
    context = ssl.create_default_context()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def device(n: int) -> None:
        body = json.dumps({**example_for("device/taskRequest"), "device_id": f"OTHER{n:03d}"}).encode()
        async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S, verify=context) as client:
            await client.post("/taskRequest", content=body)  # warm-up: the connection is open
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    answer = await client.post("/taskRequest", content=body)
                except httpx.TimeoutException:  # stalled past the client's timeout: counted as that long
                    latencies.append(time.perf_counter() - started)
                    continue
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

    await asyncio.gather(*(device(n) for n in range(devices)))
    return latencies


def send_hostile(url: str, seconds: float, max_body: int, only: str = "") -> None:
    """The hostile process: every body of :func:`hostile_bodies` (whose name contains ``only``),
    round and round, until ``seconds`` pass."""
    bodies = [b for b in hostile_bodies(max_body) if only in b[0]]
    deadline, sent, worst = time.monotonic() + seconds, 0, 0
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        while time.monotonic() < deadline:
            for _, endpoint, body in bodies:
                if time.monotonic() >= deadline:
                    break
                try:
                    status = client.post(f"/{endpoint}", content=body).status_code
                except httpx.TimeoutException:
                    status = 0  # no answer within the timeout
                worst, sent = max(worst, status), sent + 1
    print(json.dumps({"sent": sent, "worst_status": worst}), flush=True)


def start_server(folder: Path, in_memory: bool = False) -> tuple[subprocess.Popen[str], str]:
    port_file = folder / "port"
    db = [] if in_memory else ["--db", str(folder / "stall.db")]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facecert.mock_server",
            "serve",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            *db,
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the mock server did not start")
        time.sleep(0.05)  # the server process writes the file once it listens; nothing to wait on across processes
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


def measure(
    url: str, devices: int, interval: float, seconds: float, senders: int, max_body: int, only: str = ""
) -> dict[str, float]:
    """Other devices' latency figures, with ``senders`` hostile processes meanwhile (0: none)."""
    hostile = [
        subprocess.Popen(
            [sys.executable, __file__, "--send-hostile", url, str(seconds), str(max_body), only],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(senders)
    ]
    try:
        latencies = asyncio.run(other_devices(url, devices, interval, seconds))
    finally:
        reports = [json.loads(p.communicate(timeout=MAX_SECONDS)[0] or "{}") for p in hostile]
    return {
        "polls": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "max_ms": 1000 * max(latencies),
        "hostile_sent": sum(r.get("sent", 0) for r in reports),
        "hostile_worst_status": max([r.get("worst_status", 0) for r in reports] or [0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between one device's polls")
    parser.add_argument("--senders", type=int, default=2, help="hostile processes sending back to back")
    parser.add_argument("--memory", action="store_true", help="session in memory instead of a file database")
    parser.add_argument("--only", default="", help="only the hostile bodies whose name contains this")
    parser.add_argument(
        "--send-hostile", nargs=4, metavar=("URL", "SECONDS", "MAX_BODY", "ONLY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.send_hostile:
        url, seconds, max_body, only = args.send_hostile
        send_hostile(url, float(seconds), int(max_body), only)
        return
    seconds = min(args.seconds, MAX_SECONDS / 3)
    max_body = get_contract().limits.max_body_bytes
    with tempfile.TemporaryDirectory(prefix="facecert-stall-") as tmp:
        proc, url = start_server(Path(tmp), args.memory)
        try:
            calm = measure(url, args.devices, args.interval, seconds, 0, max_body)
            storm = measure(url, args.devices, args.interval, seconds, args.senders, max_body, args.only)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(
        f"{args.devices} devices polling every {args.interval * 1000:.0f} ms, {seconds:.0f} s per phase, "
        f"max_body {max_body:,} bytes, {os.cpu_count()} CPUs"
    )
    print(f"{'phase':>10} {'polls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'hostile sent':>13} {'worst':>6}")
    for name, row in (("alone", calm), ("hostile", storm)):
        print(
            f"{name:>10} {row['polls']:>6} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['max_ms']:>8.2f} "
            f"{row['hostile_sent']:>13} {row['hostile_worst_status']:>6}"
        )
    print(f"p99 ratio (hostile / alone): {storm['p99_ms'] / calm['p99_ms']:.2f}")


if __name__ == "__main__":
    main()
