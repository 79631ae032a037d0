"""Fleets of reference devices against the mock server, all on 127.0.0.1: the asyncio fleet against the
Locust fleet (docs/performance.md, Fleet).

The server runs as its own process (MockServer, as ``facecert serve`` runs it) and is started afresh for
every run. Three sets, all in one invocation so their ratios come from the same machine state:

- ``compare``: 1,000 devices at time scale 0.05 (nominal 1,000 polls/s) for the asyncio fleet (one
  process, one loop, one httpx pool; ``facecert device --count``) and the Locust fleet with 1 and 2
  workers (``facecert fleet``): polls/s against nominal, CPU per poll of the load generator and of the
  server, and the error findings: the device's own view (asyncio: a fresh engine on each recording;
  Locust: fleet.json, judged on the devices' own clocks) and the server's (its live engine);
- ``capacity``: one Locust worker at real cadence (time scale 1, a poll every 20 s) with 2,000, 5,000
  and 10,000 devices: device-side cadence findings, devices whose driver lagged, the server's cadence
  findings, and the worker's memory (max RSS; per device from the slope between runs).

    .venv/bin/python benchmarks/fleet.py [--quick] [--only compare|capacity|asyncio|locust]
        [--devices 1000] [--duration 60] [--time-scale 0.05] [--workers 2] [--json FILE]

``--quick`` shortens every run (about 4 minutes in all instead of about 10). Bounded: at most 10,000
devices per Locust worker (5,000 for the asyncio fleet) and 300 s per run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
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

from facecert.core.contract import get_contract  # noqa: E402
from facecert.core.model import Severity  # noqa: E402
from facecert.mock_device import DeviceConfig, Fleet  # noqa: E402
from facecert.mock_device.fleet_cli import free_port, locust_command, master_args, worker_args  # noqa: E402
from facecert.mock_device.judge import judge_device  # noqa: E402

MAX_DEVICES = 5_000  # the asyncio fleet
MAX_DEVICES_PER_WORKER = 10_000  # the Locust fleet
MAX_DURATION_S = 300.0
IDLE_S = get_contract().timing["idle_interval_s"]


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


def run_asyncio(devices: int, duration: float, time_scale: float, captures_per_minute: float = 0.0) -> dict[str, Any]:
    """Today's fleet: ``devices`` asyncio devices in this process (one loop, one httpx pool)."""
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
            judged_at = time.perf_counter()
            on_devices = device_findings(fleet)
            judge_s = time.perf_counter() - judged_at
            on_server = server_findings(url)
        finally:
            stop_server(process)
    idle = IDLE_S * time_scale
    polls = summary["polls"]
    return {
        "driver": "asyncio",
        "devices": devices,
        "workers": 0,
        "duration_s": duration,
        "time_scale": time_scale,
        "wall_s": round(wall, 1),
        **rate(polls, devices, idle, summary["elapsed_s"], ramp_s=idle),
        "latency_ms": {k: summary[f"latency_{k}_ms"] for k in ("p50", "p95", "max")},
        "transport_failures": summary["failures"],
        "cpu_s": {"generator": round(cpu_fleet, 1), "server": round(cpu_server, 1)},
        "cpu_ms_per_poll": {
            "generator": round(1000 * cpu_fleet / max(1, polls), 3),
            "server": round(1000 * cpu_server / max(1, polls), 3),
        },
        "errors_device_view": on_devices,
        "errors_server_view": on_server,
        "judge_recordings_s": round(judge_s, 1),
    }


def rate(polls: int, devices: int, idle_s: float, elapsed_s: float, ramp_s: float) -> dict[str, Any]:
    """Polls/s against nominal (every device once per idle interval): the intervals the devices completed (each
    device's polls but its first, made at power-on) over the run less half the ramp (the devices start spread
    over ``ramp_s``, so on average each ran that much less)."""
    nominal = devices / idle_s
    effective = max(1e-9, elapsed_s - ramp_s / 2)
    achieved = max(0, polls - devices) / effective
    return {
        "polls": polls,
        "nominal_polls_per_s": round(nominal, 1),
        "polls_per_s": round(achieved, 1),
        "of_nominal": round(achieved / nominal, 3),
    }


def run_locust(
    devices: int, workers: int, duration: float, time_scale: float, folder: Path, captures_per_minute: float = 0.0
) -> dict[str, Any]:
    """The Locust fleet as ``facecert fleet`` runs it: a master and ``workers`` local workers (the same command
    lines), their CPU sampled from /proc while they run; fleet.json read back."""
    report = folder / f"locust-{devices}x{workers}-s{time_scale:g}"
    report.mkdir(parents=True, exist_ok=True)
    for stale in ("fleet.json", "progress.json"):  # an earlier run's, which would end this one's wait at once
        (report / stale).unlink(missing_ok=True)
    idle = IDLE_S * time_scale
    spawn_rate = max(1.0, devices / idle)
    with tempfile.TemporaryDirectory(prefix="facecert-fleet-") as tmp:
        server, url = start_server(time_scale, Path(tmp))
        port = free_port()
        cmd = locust_command(
            *master_args(
                server=url,
                devices=devices,
                spawn_rate=spawn_rate,
                duration=duration,
                report=report,
                bind="127.0.0.1",
                port=port,
                workers=workers,
                time_scale=time_scale,
                faults=[],
                fault_share=0.0,
                captures_per_minute=captures_per_minute,
                gps=False,
                protocol_version=None,
                id_prefix="LB",
            )
        )
        logs = [open(report / "master.log", "wb")]  # closed below
        cpu_server = cpu_seconds(server.pid)
        try:
            master = subprocess.Popen(cmd, stdout=logs[0], stderr=subprocess.STDOUT, cwd=ROOT)
            procs = []
            for number in range(workers):
                logs.append(open(report / f"worker-{number}.log", "wb"))
                procs.append(
                    subprocess.Popen(
                        locust_command(*worker_args("127.0.0.1", port)),
                        stdout=logs[-1],
                        stderr=subprocess.STDOUT,
                        cwd=ROOT,
                    )
                )
            cpu_master = 0.0
            on_server: dict[str, int] | None = None
            deadline = time.monotonic() + duration + devices / spawn_rate + 180
            while master.poll() is None and time.monotonic() < deadline:
                try:
                    cpu_master = cpu_seconds(master.pid)
                except (OSError, IndexError, ValueError):
                    pass
                phase = (read_progress(report) or {}).get("phase")
                if on_server is None and phase in ("gathering", "done"):  # the server's view at the cutoff
                    cpu_server = cpu_seconds(server.pid) - cpu_server
                    on_server = server_findings(url)
                time.sleep(0.25)
            if master.poll() is None:
                master.kill()
            master.wait(30)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if on_server is None:
                cpu_server = cpu_seconds(server.pid) - cpu_server
                on_server = server_findings(url)
        finally:
            for log in logs:
                log.close()
            stop_server(server)
    data = json.loads((report / "fleet.json").read_text(encoding="utf-8"))
    meta, summary = data["meta"], data["summary"]
    polls = summary["totals"]["polls"]
    elapsed = (meta["cutoff"] or meta["ended"]) - (meta["test_started"] or meta["started"])
    cpu_workers = sum(w["cpu_s"] for w in meta["workers"].values())
    device_view: collections.Counter[str] = collections.Counter()
    for rule, entry in data["by_rule"].items():
        for party in entry["parties"] or ["info"]:
            device_view[f"{party}:{rule}"] += entry["findings"]
    steady = steady_rate(report, meta, devices / spawn_rate + idle, devices / idle)
    reached = rate(polls, devices, idle, elapsed, ramp_s=devices / spawn_rate)
    return {
        "driver": "locust",
        "devices": devices,
        "workers": workers,
        "duration_s": duration,
        "time_scale": time_scale,
        **reached,
        **steady,
        "cycle": cycle(report, devices, idle, reached["polls_per_s"]),
        "verdicts": summary["verdicts"],
        "devices_late": summary["devices_late"],
        "lag_max_ms": summary["lag_max_ms"],
        "late_after_ms": meta["late_after_ms"],
        "transport_failures": summary["totals"]["failures"],
        "cpu_s": {"generator": round(cpu_workers, 1), "master": round(cpu_master, 1), "server": round(cpu_server, 1)},
        "cpu_ms_per_poll": {
            "generator": round(1000 * cpu_workers / max(1, polls), 3),
            "master": round(1000 * cpu_master / max(1, polls), 3),
            "server": round(1000 * cpu_server / max(1, polls), 3),
        },
        "worker_max_rss_mb": [w["max_rss_mb"] for w in meta["workers"].values()],
        "worker_rss_mb": [w["rss_mb"] for w in meta["workers"].values()],
        "worker_stalls": [(w["stalls"], w["stall_max_ms"], w["stall_cpu_ms"]) for w in meta["workers"].values()],
        "errors_device_view": dict(device_view),
        "errors_server_view": on_server,
        "report": str(report),
    }


def cycle(report: Path, devices: int, idle_s: float, polls_per_s: float) -> dict[str, Any]:
    """Where a device's poll cycle went (ms): the protocol's wait (the idle interval, which begins when the
    answer has come: §工作流程), the answer's time (Locust's mean taskRequest response time: the server, and
    the worker's delay in reading it), and the rest (timers fired late: the generator's lag). The nominal rate
    counts the wait alone; ``of_nominal_with_answer`` what a generator without lag reaches against this
    server's answer time (devices / (idle + answer))."""
    answer_ms = None
    with (report / "locust_stats.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "taskRequest":
                answer_ms = float(row["Average Response Time"])
    if answer_ms is None or polls_per_s <= 0:
        return {}
    cycle_ms = 1000 * devices / polls_per_s
    with_answer = devices / (idle_s + answer_ms / 1000)
    return {
        "cycle_ms": round(cycle_ms, 1),
        "wait_ms": round(1000 * idle_s, 1),
        "answer_ms": round(answer_ms, 1),
        "rest_ms": round(cycle_ms - 1000 * idle_s - answer_ms, 1),
        "nominal_with_answer_polls_per_s": round(with_answer, 1),
        "of_nominal_with_answer": round(polls_per_s / with_answer, 3),
    }


def steady_rate(report: Path, meta: dict[str, Any], settle_s: float, nominal: float) -> dict[str, Any]:
    """taskRequests per second once every device runs (from ``settle_s`` after the start to the cutoff), from
    Locust's per-second history (its cumulative count per endpoint): free of the start's ramp.

    The history has a row a second, but its count moves only when a worker's report reaches the master (every
    3 s): between two arbitrary rows the rate is off by up to a report's worth (11 % over 25 s). So the rate is
    taken between the rows where the count moved, the moments the reports came in."""
    start, end = (meta["test_started"] or meta["started"]) + settle_s, (meta["cutoff"] or meta["ended"]) - 1
    points: list[tuple[float, int]] = []
    previous = None
    with (report / "locust_stats_history.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] != "taskRequest":
                continue
            count = int(row["Total Request Count"])
            if count != previous and start <= float(row["Timestamp"]) <= end:
                points.append((float(row["Timestamp"]), count))
            previous = count
    if len(points) < 2 or points[-1][0] - points[0][0] < 5:
        return {"steady_polls_per_s": None, "steady_of_nominal": None}
    achieved = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
    return {"steady_polls_per_s": round(achieved, 1), "steady_of_nominal": round(achieved / nominal, 3)}


def read_progress(report: Path) -> Any:
    try:
        return json.loads((report / "progress.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def compare(devices: int, duration: float, time_scale: float, workers: list[int], folder: Path) -> dict[str, Any]:
    runs = [run_asyncio(devices, duration, time_scale)]
    runs += [run_locust(devices, k, duration, time_scale, folder) for k in workers]
    base = runs[0]["cpu_ms_per_poll"]["generator"]
    for entry in runs:
        entry["cpu_per_poll_vs_asyncio"] = round(entry["cpu_ms_per_poll"]["generator"] / base, 2) if base else None
    return {"devices": devices, "duration_s": duration, "time_scale": time_scale, "runs": runs}


def capacity(counts: list[int], duration: float, folder: Path) -> dict[str, Any]:
    """One worker at real cadence (time scale 1): the most devices it carries with no lag past the cadence
    slack, and its memory per device (the slope of its resident set, at the end of each run, between the runs)."""
    runs = [run_locust(count, 1, duration, 1.0, folder) for count in counts]
    slope = None
    if len(runs) >= 2:
        first, last = runs[0], runs[-1]
        slope = (last["worker_rss_mb"][0] - first["worker_rss_mb"][0]) * 1024 / (last["devices"] - first["devices"])
    carried = [r["devices"] for r in runs if r["devices_late"] == 0 and not _cadence(r["errors_device_view"])]
    return {
        "time_scale": 1.0,
        "duration_s": duration,
        "runs": runs,
        "memory_kib_per_device": round(slope, 1) if slope is not None else None,
        "most_devices_without_lag": max(carried, default=0),
    }


def _cadence(counts: dict[str, int]) -> int:
    return sum(n for key, n in counts.items() if "CADENCE" in key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("compare", "capacity", "asyncio", "locust"), help="one set or one run")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 3 minutes in all)")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=None, help="seconds per run (default 60; 20 with --quick)")
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2, help="--only locust: Locust workers")
    parser.add_argument("--capacity", default=None, help="devices per capacity run (default 2000,5000,10000)")
    parser.add_argument("--captures-per-minute", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--folder", type=Path, default=ROOT / ".cache" / "bench-fleet", help="Locust's reports")
    args = parser.parse_args()
    duration = args.duration or (20.0 if args.quick else 60.0)
    counts = [int(c) for c in (args.capacity or ("2000,5000" if args.quick else "2000,5000,10000")).split(",")]
    if not 0 < duration <= MAX_DURATION_S or not 1 <= args.devices <= MAX_DEVICES:
        parser.error(f"--devices 1..{MAX_DEVICES}, --duration up to {MAX_DURATION_S:.0f} s")
    if any(not 1 <= c <= MAX_DEVICES_PER_WORKER for c in counts) or not 1 <= args.workers <= 8:
        parser.error(f"capacity runs 1..{MAX_DEVICES_PER_WORKER} devices, --workers 1..8")
    figures: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_before": round(os.getloadavg()[0], 2),
    }
    if args.only == "asyncio":
        figures["asyncio"] = run_asyncio(args.devices, duration, args.time_scale, args.captures_per_minute)
    elif args.only == "locust":
        figures["locust"] = run_locust(
            args.devices, args.workers, duration, args.time_scale, args.folder, args.captures_per_minute
        )
    else:
        if args.only in (None, "compare"):
            figures["compare"] = compare(args.devices, duration, args.time_scale, [1, 2], args.folder)
        if args.only in (None, "capacity"):
            # at time scale 1 a device polls every 20 s: a run needs several idle intervals after its 20 s ramp
            figures["capacity"] = capacity(counts, 45.0 if args.quick else max(duration, 60.0), args.folder)
    figures["load_after"] = round(os.getloadavg()[0], 2)
    print(summary(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"every figure: {args.json}")
    else:
        print("every figure (latencies, CPU by process, findings, Locust's reports): --json FILE")


def summary(figures: dict[str, Any]) -> str:
    """The ratios the runs are read by (docs/performance.md, Fleet on Locust), one line per run: a
    table a person reads after ``make bench``, where the whole JSON buried them."""
    lines = [
        f"{figures['cpus']} CPUs, Python {figures['python']}, load {figures['load_before']} -> {figures['load_after']}"
    ]
    head = (
        f"{'run':<22} {'devices':>7} {'of nominal':>10} {'steady':>7} {'gen ms/poll':>11} {'÷ asyncio':>9} "
        f"{'server ms/poll':>14} {'late':>5} {'device errors':>13} {'server errors':>13}"
    )
    runs = [*figures.get("compare", {}).get("runs", []), *figures.get("capacity", {}).get("runs", [])]
    runs += [figures[key] for key in ("asyncio", "locust") if key in figures]
    if runs:
        lines += ["", head]
    for run in runs:
        name = "asyncio" if run["driver"] == "asyncio" else f"locust x{run['workers']}"
        steady = run.get("steady_of_nominal")
        vs = run.get("cpu_per_poll_vs_asyncio")
        per_poll = run["cpu_ms_per_poll"]
        lines.append(
            f"{name + ' at ' + format(run['time_scale'], 'g'):<22} {run['devices']:>7} {run['of_nominal']:>10.3f} "
            f"{'-' if steady is None else format(steady, '.3f'):>7} {per_poll['generator']:>11.3f} "
            f"{'-' if vs is None else format(vs, '.2f'):>9} {per_poll['server']:>14.3f} "
            f"{run.get('devices_late', '-'):>5} {sum(run['errors_device_view'].values()):>13} "
            f"{sum(run['errors_server_view'].values()):>13}"
        )
    capacity = figures.get("capacity")
    if capacity:
        lines.append(
            f"capacity at real cadence: {capacity['most_devices_without_lag']} devices on one worker without lag; "
            f"{capacity['memory_kib_per_device']} KiB a device"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
