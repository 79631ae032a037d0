"""A fleet of reference devices against the mock server, both on 127.0.0.1.

The server runs as its own process (MockServer, as ``facecert serve`` runs it), the fleet in this
one (one asyncio loop, one httpx pool), so they do not share a GIL. Records
polls/s against the nominal rate (devices / scaled idle interval), latency,
transport failures, and the error findings both ways: the server's engine
(live) and a fresh engine fed each device's own recording.

    .venv/bin/python benchmarks/fleet.py [--devices 1000] [--duration 60] [--time-scale 0.05] [--json FILE]

Bounded: at most 5,000 devices and 300 s; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecert.core.model import Severity  # noqa: E402
from facecert.mock_device import DeviceConfig, Fleet  # noqa: E402
from facecert.mock_device.judge import judge_device  # noqa: E402

MAX_DEVICES = 5_000
MAX_DURATION_S = 300.0


_SERVER = """
import sys, threading
from facecert.mock_server import MockServer, ServerConfig
server = MockServer(ServerConfig(host="127.0.0.1", port=0, time_scale=float(sys.argv[1]))).start()
open(sys.argv[2], "w").write(str(server.port))
sys.stdin.read()  # runs until the parent closes our stdin
server.stop()
"""


def start_server(time_scale: float, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The mock server in its own process on an ephemeral 127.0.0.1 port; waits for its port file."""
    port_file = folder / "port"
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(time_scale), str(port_file)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            why = process.stderr.read().decode()[-500:] if process.stderr else ""
            raise RuntimeError(f"mock server did not start: {why}")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{int(port_file.read_text())}"


def stop_server(process: subprocess.Popen[bytes]) -> None:
    try:
        if process.stdin:
            process.stdin.close()
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process (Linux /proc), to tell which side is the bottleneck."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_findings(url: str) -> dict[str, int]:
    answer = httpx.get(f"{url}/_admin/findings", timeout=120)
    answer.raise_for_status()
    counts: collections.Counter[str] = collections.Counter()
    for finding in answer.json():
        if finding.get("severity") == "error":
            counts[f"{finding.get('party')}:{finding.get('rule')}"] += 1
    return dict(counts)


def device_findings(fleet: Fleet) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for device in fleet.devices:
        for finding in judge_device(device).findings:
            if finding.severity is Severity.ERROR:
                counts[f"{finding.party}:{finding.rule}"] += 1
    return dict(counts)


def run(devices: int, duration: float, time_scale: float, captures_per_minute: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="facecert-fleet-") as tmp:
        process, url = start_server(time_scale, Path(tmp))
        try:
            fleet = Fleet(
                DeviceConfig(
                    server=url, time_scale=time_scale, captures_per_minute=captures_per_minute, request_timeout_s=10.0
                ),
                devices,
                id_prefix="BENCH",
            )
            started, cpu_fleet, cpu_server = time.perf_counter(), time.process_time(), cpu_seconds(process.pid)
            summary = asyncio.run(fleet.run_for(duration))
            wall = time.perf_counter() - started
            cpu_fleet = time.process_time() - cpu_fleet
            cpu_server = cpu_seconds(process.pid) - cpu_server
            nominal = devices / fleet.devices[0].scaled("idle_interval_s")
            judged_at = time.perf_counter()
            on_devices = device_findings(fleet)
            judge_s = time.perf_counter() - judged_at
            on_server = server_findings(url)
        finally:
            stop_server(process)
    return {
        "devices": devices,
        "duration_s": duration,
        "time_scale": time_scale,
        "wall_s": round(wall, 1),
        "nominal_polls_per_s": round(nominal, 1),
        "summary": summary,
        "cpu_s": {"fleet": round(cpu_fleet, 1), "server": round(cpu_server, 1)},
        "cpu_ms_per_poll": {
            "fleet": round(1000 * cpu_fleet / max(1, summary["polls"]), 2),
            "server": round(1000 * cpu_server / max(1, summary["polls"]), 2),
        },
        "load_before": os.getloadavg()[0],
        "errors_device_view": on_devices,
        "errors_server_view": on_server,
        "judge_recordings_s": round(judge_s, 1),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--captures-per-minute", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not 1 <= args.devices <= MAX_DEVICES or not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--devices 1..{MAX_DEVICES}, --duration up to {MAX_DURATION_S:.0f} s")
    figures = run(args.devices, args.duration, args.time_scale, args.captures_per_minute)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
