"""Requests/s and p50/p99 latency of /taskRequest for N concurrent simulated
devices: the mock server (``facecert serve``: the engine's judgement of every
exchange, the queues, a SQLite file store committed before each answer, its
live console into a pipe) against a bare Starlette endpoint answering a fixed
idleTime (the same app and uvicorn options in ``python benchmarks/mock_server.py
--serve-bare``), both on uvicorn on 127.0.0.1, measured in the same run. Each
server is a process of its own, as it is deployed, and the load generator (one
httpx client and connection per device) another: neither server shares an
interpreter, its GIL or its collector with the load. With ``--threads`` both
run on a thread of this process instead, beside the load (``MockServer``),
which was the default until 2026-12-04: there the three share one GIL and one
garbage collector, so the load's pauses land on whichever server is measured.
The two are measured alternately, ``--rounds`` times per device count, and the
medians compared. Bounded in requests and in time.

    .venv/bin/python benchmarks/mock_server.py [--devices 1 10 50 200] [--polls 20] [--min-requests 1000]
                                               [--rounds 3] [--quick] [--threads] [--db FILE] [--json FILE]

A measurement has at least ``--min-requests`` timed requests (one device polls 1,000 times, not 20: a
p99 of 20 samples is their maximum, and of 200 their second-slowest, which swung 1.08-2.39x between
runs of one day; docs/performance.md, twenty-third session), after a warm-up of at least WARM_UP_REQUESTS
polls and two per device:
a new server's first ~15 polls take 1.5-3 ms against ~1 ms after (docs/performance.md, seventeenth session),
and a site's server runs for hours. In the default mode the load generator's cyclic collector is paused
while it times (its objects frozen first; for at most QUIET_COLLECTOR_MAX requests, so memory stays
bounded): a collection of its 200 clients' garbage stalled every device at once, the slowest round, which
made the p99 of either server (docs/performance.md, twentieth session).

It prints, per device count, both servers' req/s, p50 and p99, the CPU the
server's process (with ``--threads``: its thread) spent per request, and the ratios the targets are stated in
(docs/performance.md, "Mock server"): mock ÷ bare req/s (target ≥ 0.8) and
mock ÷ bare p99 (target ≤ 1.5). Under each row it says what the mock judged of the polls it was sent (from
its control API): the simulated devices poll back to back, so nearly every poll is a CADENCE-IDLE finding
the mock makes, stores and prints, and that work is part of the mock's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facecert.core.examples import example_for
from facecert.mock_server import MockServer, ServerConfig

TIME_LIMIT_S = 120.0  # per measurement
TARGET_RPS_RATIO = 0.8
TARGET_P99_RATIO = 1.5
QUICK_POLLS = 5
WARM_UP_REQUESTS = 20  # at least, and two polls per device: see the module's docstring
# timed requests with the load generator's collector paused: each leaves ~6 KB of httpx's cyclic garbage
# (10,000 polls: +56 MB), so past this many (~120 MB) the collector runs again, pauses and all
QUIET_COLLECTOR_MAX = 20_000
MIN_REQUESTS = 1000  # per measurement: 1 device polls 1,000 times, 10 devices 100 each, 50 and 200 the --polls
MEASURED = ("rps", "p50_ms", "p99_ms", "server_cpu_us")
JUDGED_LISTED = 3  # rules named in the printed line of what the mock found


def bare_uvicorn() -> uvicorn.Server:
    """The bare endpoint's app on uvicorn (any free port): the same in a thread and in ``--serve-bare``."""
    answer = json.dumps(example_for("server/tasks/idleTime")).encode()

    async def task_request(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    app = Starlette(routes=[Route("/taskRequest", task_request, methods=["POST"])])
    return uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False, backlog=2048, timeout_keep_alive=30
        )
    )


def serve_bare(port_file: Path) -> None:
    """``--serve-bare``: the bare endpoint as a process of its own; its port into ``port_file``."""
    server = bare_uvicorn()

    def tell() -> None:
        while not server.started:
            time.sleep(0.01)
        port_file.write_text(str(server.servers[0].sockets[0].getsockname()[1]))

    threading.Thread(target=tell, daemon=True).start()
    server.run()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server_process(argv: list[str], port_file: Path) -> Iterator[tuple[str, Callable[[], float]]]:
    """A server process that writes its port to ``port_file``: its URL and a reader of its CPU seconds."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip().isdigit()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start (exit code {proc.poll()})")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{int(port_file.read_text())}", lambda: process_cpu_s(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def bare_process(folder: Path) -> Iterator[tuple[str, Callable[[], float]]]:
    port_file = folder / f"bare-{time.monotonic_ns()}.port"
    with server_process([sys.executable, __file__, "--serve-bare", str(port_file)], port_file) as served:
        yield served


@contextmanager
def mock_process(db: Path) -> Iterator[tuple[str, Callable[[], float]]]:
    port_file = db.with_suffix(".port")
    facecert = Path(sys.executable).parent / "facecert"
    options = {"--host": "127.0.0.1", "--port": "0", "--port-file": str(port_file), "--db": str(db)}
    argv = [str(facecert), "serve", *(item for pair in options.items() for item in pair)]
    with server_process(argv, port_file) as served:
        yield served


class BareServer:
    """The floor: uvicorn + Starlette answering a constant idleTime."""

    def __init__(self) -> None:
        self.server = bare_uvicorn()
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> tuple[str, threading.Thread]:
        self.thread.start()
        ready = threading.Event()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            ready.wait(0.01)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}", self.thread

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def bare_server() -> Iterator[tuple[str, Callable[[], float]]]:
    with BareServer() as (url, thread):
        yield url, lambda: thread_cpu_s(thread)


@contextmanager
def mock_server(db: Path) -> Iterator[tuple[str, Callable[[], float]]]:
    with MockServer(ServerConfig(db=db, time_scale=1.0)) as srv:
        thread = srv._thread
        assert thread is not None
        yield srv.url, lambda: thread_cpu_s(thread)


def thread_cpu_s(thread: threading.Thread) -> float:
    """CPU seconds the thread has used (its POSIX CPU clock; 0 where there is none)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))
    except (AttributeError, OSError):
        return 0.0


async def _run(
    url: str, devices: int, polls: int, warm: Callable[[], None], quiet_collector: bool = False
) -> tuple[float, list[float]]:
    """One client (one connection) per simulated device, as on a real site; a
    shared TLS context keeps client creation cheap (httpx builds one per client
    otherwise), and one shared pool would be quadratic in its connections.
    ``quiet_collector``: this process's cyclic collector paused while it times, for up to
    QUIET_COLLECTOR_MAX requests (only where no server runs in it: a server on a thread here would have
    its own garbage left uncollected)."""
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
            if quiet_collector and len(latencies) == QUIET_COLLECTOR_MAX:
                gc.enable()  # bounded memory over bounded pauses: see QUIET_COLLECTOR_MAX

    try:
        # warm-up: the first polls open each device's connection and warm the server (see the docstring)
        for _ in range(warm_up_rounds(devices)):
            await asyncio.gather(*(c.post("/taskRequest", json=b) for c, b in zip(clients, bodies, strict=True)))
        warm()
        if quiet_collector:
            gc.collect()
            gc.freeze()
            gc.disable()
        try:
            start = time.perf_counter()
            await asyncio.gather(*(device(n) for n in range(devices)))
            return time.perf_counter() - start, latencies
        finally:
            if quiet_collector:
                gc.enable()
                gc.unfreeze()
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def warm_up_rounds(devices: int) -> int:
    """Warm-up polls per device: WARM_UP_REQUESTS in all at least, and two each."""
    return max(2, -(-WARM_UP_REQUESTS // devices))


def measure(
    url: str,
    devices: int,
    polls: int,
    server_cpu: Callable[[], float] | None = None,
    quiet_collector: bool = False,
) -> dict[str, float]:
    """req/s, p50 and p99 (ms) of ``devices`` devices polling ``polls`` times each; with a reader of the
    server's CPU seconds (its thread's, or its process's), the CPU it spent per request (µs)."""
    cpu_before = [0.0]

    def warm() -> None:  # the CPU is counted from the end of the warm-up (first requests compile schemas)
        cpu_before[0] = server_cpu() if server_cpu else 0.0

    elapsed, latencies = asyncio.run(_run(url, devices, polls, warm, quiet_collector))
    cpu = (server_cpu() - cpu_before[0]) if server_cpu else 0.0
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "server_cpu_us": cpu / max(1, len(latencies)) * 1e6,
    }


def judged(url: str) -> dict[str, Any]:
    """What the mock found in the polls it was sent (warm-up included), from its own control API
    (``/_admin/overview``: the devices' poll counts and the findings by rule): the simulated devices poll
    back to back, against the idleTime each answer gives, so every poll after a device's first is a
    CADENCE-IDLE finding the mock makes, stores and prints. Its cost is part of what is measured."""
    view = httpx.get(f"{url}/_admin/overview", timeout=30).raise_for_status().json()
    polls = sum(int(device.get("polls") or 0) for device in view["devices"])
    by_rule = {group["rule"]: int(group["count"]) for group in view["finding_groups"]}
    return {"polls": polls, "findings": sum(by_rule.values()), "by_rule": by_rule}


def judged_line(found: dict[str, Any]) -> str:
    """``found`` (:func:`judged`) as one line: findings per poll, the most frequent rules first."""
    polls = max(1, found["polls"])
    rules = sorted(found["by_rule"].items(), key=lambda item: -item[1])[:JUDGED_LISTED]
    named = ", ".join(f"{rule} {count / polls:.2f}" for rule, count in rules)
    return f"{found['findings'] / polls:.2f} findings per poll ({named or 'none'}) over {found['polls']} polls"


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def polls_for(devices: int, polls: int, min_requests: int) -> int:
    """``polls`` per device, more when that makes fewer than ``min_requests`` in all: a p99 needs a
    hundred or more samples (20 polls of one device make it the slowest of 20)."""
    return max(polls, -(-min_requests // devices)) if min_requests else polls


def compare(
    devices: int, polls: int, rounds: int, db_dir: Path, min_requests: int = 0, processes: bool = True
) -> dict[str, Any]:
    """Bare and mock measured alternately ``rounds`` times (a fresh mock database each time); medians."""
    polls = polls_for(devices, polls, min_requests)
    runs: dict[str, list[dict[str, float]]] = {"bare": [], "mock": []}
    found: dict[str, Any] = {}
    for n in range(rounds):
        for kind in ("bare", "mock") if n % 2 == 0 else ("mock", "bare"):  # neither always runs first
            db = db_dir / f"bench-{devices}-{n}.db"
            if processes:
                server = bare_process(db_dir) if kind == "bare" else mock_process(db)
            else:
                server = bare_server() if kind == "bare" else mock_server(db)
            with server as (url, server_cpu):
                runs[kind].append(measure(url, devices, polls, server_cpu, quiet_collector=processes))
                if kind == "mock" and not found:  # the same in every round: asked once, after its measurement
                    found = judged(url)
    medians = {f"{kind}_{key}": _median(runs[kind], key) for kind in runs for key in MEASURED}
    return {
        "devices": devices,
        "polls": polls,
        "rounds": rounds,
        **medians,
        "rps_ratio": medians["mock_rps"] / medians["bare_rps"],
        "p50_ratio": medians["mock_p50_ms"] / medians["bare_p50_ms"],
        "p99_ratio": medians["mock_p99_ms"] / medians["bare_p99_ms"],
        "mock_judged": found,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--polls", type=int, default=20, help="polls per device (after the warm-up)")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=MIN_REQUESTS,
        help=f"at least this many timed requests per measurement (more polls per device; default {MIN_REQUESTS})",
    )
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each server per device count")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_POLLS} polls per device, one round")
    parser.add_argument("--db", type=Path, default=None, help="folder for the mock's SQLite files (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(  # kept so that the figures' commands of earlier sessions still run: the default now
        "--processes", action="store_true", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="both servers on a thread of this process, beside the load (MockServer; the default until 2026-12-04)",
    )
    parser.add_argument("--serve-bare", type=Path, default=None, help=argparse.SUPPRESS)  # PORT_FILE: internal
    args = parser.parse_args()
    if args.processes and args.threads:
        parser.error("--processes (the default) and --threads: choose one")
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return
    polls, rounds = (QUICK_POLLS, 1) if args.quick else (args.polls, args.rounds)
    min_requests = 0 if args.quick else args.min_requests
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db_dir = args.db or Path(tmp)
        db_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"{'devices':>7} | {'mock req/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'cpu µs':>6} | {'bare req/s':>10} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'cpu µs':>6} | {'rps ratio':>9} {'p99 ratio':>9} {'p50 ratio':>9}"
        )
        for devices in args.devices:
            row = compare(devices, polls, rounds, db_dir, min_requests, processes=not args.threads)
            rows.append(row)
            ok = row["rps_ratio"] >= TARGET_RPS_RATIO and row["p99_ratio"] <= TARGET_P99_RATIO
            print(
                f"{devices:>7} | {row['mock_rps']:>10.0f} {row['mock_p50_ms']:>7.2f} {row['mock_p99_ms']:>7.2f} "
                f"{row['mock_server_cpu_us']:>6.0f} | {row['bare_rps']:>10.0f} {row['bare_p50_ms']:>7.2f} "
                f"{row['bare_p99_ms']:>7.2f} {row['bare_server_cpu_us']:>6.0f} | {row['rps_ratio']:>9.2f} "
                f"{row['p99_ratio']:>9.2f} {row['p50_ratio']:>9.2f}  {'ok' if ok else 'below target'}",
                flush=True,
            )
            print(f"{'':>7} | mock judged: {judged_line(row['mock_judged'])}", flush=True)
    print(
        f"targets: req/s ratio >= {TARGET_RPS_RATIO}, p99 ratio <= {TARGET_P99_RATIO} "
        f"({polls} polls per device, at least {min_requests} requests, median of {rounds} round(s), "
        f"{'servers on threads beside the load' if args.threads else 'each server a process of its own'}, "
        f"1-min load average {os.getloadavg()[0]:.1f})"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
