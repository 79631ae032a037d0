"""What the facecert addon costs: plain mitmdump vs mitmdump with the addon.

Same run, same upstream, same messages, all on 127.0.0.1:

* direct: httpx -> upstream (the floor, subtracted to get *added* latency);
* plain: httpx -> mitmdump (reverse proxy, no script) -> upstream;
* addon: httpx -> mitmdump -s proxy_addons/facecert_addon.py -> upstream.

Two message kinds: a small taskRequest poll (~250 B, answered with idleTime)
and a ~300 KB faceRecognition capture (a real JPEG in base64, answered with
its echo). The three setups run side by side and take turns request by
request (latency: one sequential keep-alive client each) and burst by burst
(throughput: a few concurrent clients), so background load on the machine
hits all three alike. Counts are bounded; the run takes well under a minute.

Memory (``--memory``, on by default): a fresh plain mitmdump and a fresh
mitmdump with the addon each receive the same large bodies, one kind after
the other: three 20 MiB requests (the body limit), one 100 MiB request (over
the limit, streamed by the addon), one gzip decompression bomb (1 MiB on the
wire, 1 GiB inflated) and three 20 MiB answers (a download). The figure is
the process's peak resident set (VmHWM from /proc) after each kind.

    .venv/bin/python benchmarks/proxy.py [--small 400] [--large 80] [--clients 4] [--no-memory] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facecert.core.examples import example_for  # noqa: E402
from facecert.proxy_addons.process import Mitmdump, MitmdumpConfig  # noqa: E402

CAPTURE_BYTES = 295_000  # base64 of the image; the whole capture is ~300 KB


# ---- messages -------------------------------------------------------------------
def jpeg_of_about(size: int) -> bytes:
    """A real JPEG whose base64 is about ``size`` bytes (noise does not compress)."""
    rng = random.Random(7)
    side = 160
    while True:
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        if len(buffer.getvalue()) * 4 / 3 >= size:
            return buffer.getvalue()
        side += 8


def messages() -> dict[str, tuple[str, bytes]]:
    poll = example_for("device/taskRequest")
    capture = example_for("device/faceRecognition")
    capture["image"] = base64.b64encode(jpeg_of_about(CAPTURE_BYTES)).decode()
    return {
        "small": ("/taskRequest", json.dumps(poll).encode()),
        "capture": ("/faceRecognition", json.dumps(capture).encode()),
    }


# ---- upstream -------------------------------------------------------------------
def upstream_app() -> Starlette:
    idle = json.dumps(example_for("server/tasks/idleTime")).encode()

    async def handle(request: Request) -> Response:
        body = await request.body()
        if request.url.path == "/faceRecognition":
            capture = json.loads(body)
            answer = {
                "code": 0,
                "snap_time": capture.get("snap_time"),
                "frpic_name": capture.get("frpic_name"),
                "log": "ok",
            }
            return Response(json.dumps(answer), media_type="application/json")
        return Response(idle, media_type="application/json")

    async def download(request: Request) -> Response:
        return Response(b"\xff" * int(request.path_params["size"]), media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/download/{size:int}", download, methods=["GET"]),
            Route("/{rest:path}", handle, methods=["POST"]),
        ]
    )


class Upstream:
    def __enter__(self) -> str:
        self.server = uvicorn.Server(
            uvicorn.Config(upstream_app(), host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        started = threading.Event()
        for _ in range(200):
            if self.server.started:
                break
            started.wait(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---- measuring --------------------------------------------------------------------
SETUPS = ("direct", "plain", "addon")
HEADERS = {"Content-Type": "application/json"}


def interleaved_latencies(urls: dict[str, str], path: str, body: bytes, count: int) -> dict[str, list[float]]:
    """Sequential round trips in milliseconds, one keep-alive client per setup, setups taking turns
    (rotating who goes first) so that noise from other work on the machine hits all of them alike."""
    out: dict[str, list[float]] = {name: [] for name in urls}
    clients = {name: httpx.Client(base_url=url, timeout=30) for name, url in urls.items()}
    names = list(urls)
    try:
        for client in clients.values():  # warm the connections and the caches
            for _ in range(min(10, count)):
                client.post(path, content=body, headers=HEADERS).raise_for_status()
        for turn in range(count):
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                start = time.perf_counter()
                response = clients[name].post(path, content=body, headers=HEADERS)
                out[name].append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
    finally:
        for client in clients.values():
            client.close()
    return out


def burst(url: str, path: str, body: bytes, count: int, clients: int) -> tuple[int, float]:
    """``count`` requests from ``clients`` concurrent keep-alive clients: (requests, seconds)."""
    share = max(1, count // clients)

    def run(_: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(share):
                client.post(path, content=body, headers=HEADERS).raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    return share * clients, time.perf_counter() - start


def interleaved_throughput(
    urls: dict[str, str], path: str, body: bytes, count: int, clients: int, rounds: int = 4
) -> dict[str, float]:
    """Requests per second, measured in ``rounds`` alternating bursts per setup."""
    done = {name: [0, 0.0] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            requests, seconds = burst(url, path, body, max(clients, count // rounds), clients)
            done[name][0] += requests
            done[name][1] += seconds
    return {name: requests / seconds for name, (requests, seconds) in done.items()}


# ---- memory with large bodies ----------------------------------------------------------
MiB = 1024 * 1024


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed chunk by chunk (about 1/1000 of ``size``)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * MiB
    return b"".join(packer.compress(chunk) for _ in range(size // MiB)) + packer.flush()


def peak_rss(pid: int) -> int:
    """VmHWM, the process's peak resident set since it started, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))


def memory_loads() -> list[tuple[str, str, str, bytes, dict[str, str], int]]:
    """(label, method, path, body, headers, count) per kind of large traffic."""
    return [
        ("idle", "GET", "", b"", {}, 0),
        ("3 x 20 MiB requests", "POST", "/taskRequest", b"x" * (20 * MiB), {}, 3),
        ("100 MiB request", "POST", "/taskRequest", b"x" * (100 * MiB), {}, 1),
        ("gzip bomb, 1 GiB inflated", "POST", "/taskRequest", gzip_bomb(1024 * MiB), {"Content-Encoding": "gzip"}, 1),
        ("3 x 20 MiB answers", "GET", f"/download/{20 * MiB}", b"", {}, 3),
    ]


def memory_run(upstream: str, tmp: Path, addon: bool) -> dict[str, int]:
    """Peak RSS (MiB) of one fresh mitmdump after each kind of large traffic, in order."""
    options = {"facecert_report_dir": str(tmp / "memory-report")} if addon else {}
    dump = Mitmdump(MitmdumpConfig(upstream=upstream, confdir=tmp / "conf", addon=addon, options=options)).start()
    peaks: dict[str, int] = {}
    try:
        with httpx.Client(base_url=dump.url, timeout=120) as client:
            for label, method, path, body, headers, count in memory_loads():
                for _ in range(count):
                    client.request(method, path, content=body or None, headers=headers).read()
                peaks[label] = peak_rss(dump.pid) // MiB
    finally:
        dump.stop()
    return peaks


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=400, help="small messages per setup (latency)")
    parser.add_argument("--large", type=int, default=80, help="300 KB captures per setup (latency)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for throughput")
    parser.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the peak-memory run with large bodies"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    counts = {"small": max(20, min(args.small, 5000)), "capture": max(10, min(args.large, 1000))}
    bodies = messages()
    results: dict[str, dict[str, Any]] = {name: {} for name in SETUPS}
    with tempfile.TemporaryDirectory(prefix="facecert-bench-") as tmp, Upstream() as upstream:
        plain = Mitmdump(MitmdumpConfig(upstream=upstream, confdir=Path(tmp) / "conf", addon=False)).start()
        addon = Mitmdump(
            MitmdumpConfig(
                upstream=upstream,
                confdir=Path(tmp) / "conf",
                addon=True,
                options={"facecert_report_dir": str(Path(tmp) / "report")},
            )
        ).start()
        try:
            urls = {"direct": upstream, "plain": plain.url, "addon": addon.url}
            for kind, (path, body) in bodies.items():
                lat = interleaved_latencies(urls, path, body, counts[kind])
                rps = interleaved_throughput(urls, path, body, counts[kind], args.clients)
                for name in SETUPS:
                    results[name][kind] = {
                        "p50_ms": statistics.median(lat[name]),
                        "p99_ms": pct(lat[name], 0.99),
                        "rps": rps[name],
                    }
        finally:
            plain.stop()
            addon.stop()
        memory = (
            {name: memory_run(upstream, Path(tmp), name == "addon") for name in ("plain", "addon")}
            if args.memory
            else {}
        )
    report(results, counts, bodies, args.clients)
    if memory:
        print(f"{'peak RSS (MiB) after':28} {'plain':>7} {'addon':>7}")
        for label in memory["plain"]:
            print(f"{label:28} {memory['plain'][label]:7} {memory['addon'][label]:7}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"counts": counts, "clients": args.clients, "results": results, "peak_rss_mib": memory}, indent=2
            )
        )
    return 0


def report(
    results: dict[str, dict[str, Any]], counts: dict[str, int], bodies: dict[str, tuple[str, bytes]], clients: int
) -> None:
    print(f"counts {counts}, {clients} clients for throughput, capture body {len(bodies['capture'][1]):,} B")
    print(f"{'message':8} {'setup':7} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} {'req/s':>8}")
    for kind in bodies:
        direct = results["direct"][kind]
        for setup in ("direct", "plain", "addon"):
            row = results[setup][kind]
            print(
                f"{kind:8} {setup:7} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
                f"{row['p50_ms'] - direct['p50_ms']:10.2f} {row['p99_ms'] - direct['p99_ms']:10.2f} {row['rps']:8.0f}"
            )
        plain, addon = results["plain"][kind], results["addon"][kind]
        added_plain = max(1e-9, plain["p50_ms"] - direct["p50_ms"])
        print(
            f"{kind:8} addon/plain: throughput x{addon['rps'] / plain['rps']:.2f}, "
            f"added p50 x{(addon['p50_ms'] - direct['p50_ms']) / added_plain:.2f}, "
            f"p99 x{addon['p99_ms'] / plain['p99_ms']:.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
