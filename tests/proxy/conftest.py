"""Real parts for the proxy tests: an upstream on uvicorn (tests.support.serving) that records what it got
and answers what the test queued, and real mitmdump processes with the addon."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facecert.core.examples import example_for
from facecert.proxy_addons.process import Mitmdump, MitmdumpConfig
from tests.support import serving

JSON = "application/json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Seen:
    method: str
    path: str
    request_sha: str
    response_sha: str
    size: int


@dataclass
class Upstream:
    """A server double: queued raw answers per path (FIFO), defaults otherwise."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    queued: dict[str, deque[tuple[int, bytes]]] = field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enqueue(self, path: str, body: Any, status: int = 200) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        with self.lock:
            self.queued[path].append((status, raw))

    def answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            if self.queued[path]:
                return self.queued[path].popleft()
        if path == "/taskRequest":
            return 200, json.dumps(example_for("server/tasks/idleTime")).encode()
        if path == "/faceRecognition":
            try:
                capture = json.loads(body)
                echo = {k: capture[k] for k in ("snap_time", "frpic_name") if k in capture}
            except (ValueError, TypeError, KeyError):
                echo = {}
            return 200, json.dumps({"code": 0, "log": "ok", **echo}).encode()
        if path.startswith("/blob/"):
            return 200, blob(int(path.rsplit("/", 1)[1]))
        return 200, b'{"code": 0, "log": "ok"}'

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            status, raw = self.answer(request.url.path, body)
            with self.lock:
                self.seen.append(Seen(request.method, request.url.path, sha(body), sha(raw), len(body)))
            return Response(raw, status_code=status, media_type=JSON)

        return Starlette(routes=[Route("/{rest:path}", handle, methods=["GET", "POST", "PUT"])])


def blob(size: int) -> bytes:
    """Deterministic bytes that are neither UTF-8 nor JSON."""
    chunk = bytes(range(256)) * 4096
    return (chunk * (size // len(chunk) + 1))[:size]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from _serve()


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[Upstream]:
    yield from _serve()


def _serve() -> Iterator[Upstream]:
    double = Upstream()
    with serving(double.app(), timeout_graceful_shutdown=1, limit_concurrency=64) as server:
        double.url = server.base
        yield double


def start_proxy(upstream_url: str, confdir: Path, report: Path, **options: object) -> Mitmdump:
    opts = {"facecert_report_dir": str(report), "facecert_time_scale": 0.05, **options}
    return Mitmdump(MitmdumpConfig(upstream=upstream_url, confdir=confdir, options=opts)).start()


def summary_of(report: Path) -> dict[str, Any]:
    return json.loads((report / "summary.json").read_text(encoding="utf-8"))


# ---- raw HTTP/1 on both sides, for what httpx and uvicorn do not produce --------------
@dataclass
class RawUpstream:
    """A socket server that reads one whole HTTP/1 request per connection (chunked with trailers
    included) and sends ``answer`` back; what it received is kept, byte for byte."""

    answer: bytes
    received: list[bytes] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            with conn:
                data = read_message(conn, timeout=10)
                self.received.append(data)
                conn.sendall(self.answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


def read_message(conn: socket.socket, timeout: float) -> bytes:
    """One HTTP/1 message off a socket: its head, then Content-Length bytes or chunks up to the
    terminating (possibly trailer-carrying) last chunk. Bounded by ``timeout`` and 1 MB."""
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 1 << 20:
        data += conn.recv(65536) or b"!"  # "!" ends the loop on EOF below
        if data.endswith(b"!"):
            return data[:-1]
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    chunked = re.search(rb"(?im)^transfer-encoding:.*chunked", head)
    while len(data) < 1 << 20:
        if length and len(body) >= int(length.group(1)):
            break
        if chunked and re.search(rb"(?:^|\r\n)0\r\n(?:[^\r\n]+\r\n)*\r\n$", body):
            break
        if not length and not chunked:
            break
        more = conn.recv(65536)
        if not more:
            break
        data += more
        body += more
    return data


def raw_exchange(address: tuple[str, int], request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, read one HTTP/1 answer back."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(request)
        return read_message(conn, timeout)


# ---- memory of a process, from /proc (Linux) ---------------------------------------------
def memory_of(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak resident set since start), in bytes."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
    return values
