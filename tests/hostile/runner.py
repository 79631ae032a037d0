"""Send the hostile corpus and judge what came back.

The rules every case shares: an answer (unless the case broke the framing so
that none is possible), never a 5xx, strict JSON in every JSON answer, the
exchange stored when it reached the application, and the case's own
expectation. A canary device polls throughout: its latency is the stall
figure. Then the control API (every GET of its OpenAPI document), the live
page and every capture's thumbnail must still answer.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from facecert.core.examples import example_for
from facecert.mock_server.openapi import admin_openapi
from tests.hostile.corpus import CASE_HEADER, UVICORN_OWN, Case, MiB, dumps
from tests.hostile.rawhttp import Answer, exchange

HEAVY_BYTES = MiB  # cases with bodies from here on run one at a time, after the others
CANARY_DEVICE = "CANARY0000000001"


def strict_json(data: bytes) -> Any:
    """Parse as RFC 8259 JSON: NaN, Infinity and invalid UTF-8 are errors."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(data.decode("utf-8"), parse_constant=refuse)


@dataclass
class Outcome:
    case: Case
    answer: Answer
    started: float = 0.0  # time.monotonic() when the case was sent
    problems: dict[str, str] = field(default_factory=dict)  # kind (answer, json, stored, expect) -> what is wrong

    def describe(self, host: str) -> str:
        head = next(iter(self.case.chunks(host)))[:300].decode("latin-1").replace("\r\n", " | ")
        answer = (
            f"HTTP {self.answer.status} {self.answer.body[:300]!r}"
            if self.answer.status is not None
            else f"no answer ({self.answer.error})"
        )
        return (
            f"#{self.case.cid} [{self.case.klass}] {self.case.name[:120]}\n    request: {head}\n"
            f"    answer:  {answer} after {self.answer.elapsed:.2f} s\n"
            f"    problem: {'; '.join(self.problems.values())}"
        )


def own_layer_answer(answer: Answer, via_proxy: bool) -> bool:
    """Answered by the HTTP layer before the application saw the request
    (uvicorn's h11 refusal, or mitmproxy's own error page): nothing to store."""
    if answer.body.strip() == UVICORN_OWN:
        return True
    if via_proxy and answer.header("x-facecert-proxy"):  # the addon's own 400 for framing no upstream reads
        return True
    return via_proxy and (answer.header("server") or "").lower().startswith("mitmproxy")


def judge(outcome: Outcome, stored: dict[str, Any], via_proxy: bool) -> None:
    """Fill ``outcome.problems`` by the shared rules and the case's own."""
    case, answer, problems = outcome.case, outcome.answer, outcome.problems
    if answer.status is None:
        if not case.answer_optional:
            problems["answer"] = f"no answer within {case.timeout:g} s ({answer.error})"
    else:
        if answer.status >= 500:
            problems["answer"] = f"HTTP {answer.status}"
        ctype = (answer.header("content-type") or "").lower()
        if "json" in ctype and answer.body and answer.body_size <= len(answer.body):
            try:
                strict_json(answer.body)
            except (ValueError, UnicodeDecodeError) as exc:
                problems["json"] = f"answer is not strict JSON: {str(exc)[:120]}"
        if case.must_be_stored and not own_layer_answer(answer, via_proxy) and str(case.cid) not in stored:
            problems["stored"] = "answered but not stored"
    if case.expect is not None:
        complaint = case.expect(answer)
        if complaint:
            problems["expect"] = complaint


class Canary:
    """A correct device polling every 100 ms on its own connection per poll:
    how long it waits while the corpus runs is the stall figure."""

    def __init__(self, host: str, port: int, period: float = 0.1) -> None:
        self.host, self.port, self.period = host, port, period
        self.latencies: list[float] = []
        self.polls: list[tuple[float, float]] = []  # (monotonic start, latency)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-canary", daemon=True)

    def _request(self) -> bytes:
        body = example_for("device/taskRequest")
        body.update(device_id=CANARY_DEVICE, time_stamp=int(time.time()))
        data = dumps(body)
        return (
            f"POST /taskRequest HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        ).encode() + data

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            started = time.monotonic()
            answer = exchange(self.host, self.port, [self._request()], timeout=30)
            self.latencies.append(answer.elapsed)
            self.polls.append((started, answer.elapsed))
            if answer.status != 200:
                self.failures.append(f"canary poll: HTTP {answer.status} {answer.error} {answer.body[:200]!r}")

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def p99(self) -> float:
        if len(self.latencies) < 2:
            return max(self.latencies, default=0.0)
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[98]

    def slowest(self, count: int = 3) -> list[tuple[float, float]]:
        return sorted(self.polls, key=lambda poll: -poll[1])[:count]


def send_all(
    cases: Iterable[Case], host: str, port: int, workers: int = 6, on_done: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Light cases in parallel, then the heavy ones (1 MiB bodies and up)
    one at a time so the server's memory reflects one of them at once."""
    cases = list(cases)
    light = [c for c in cases if c.size < HEAVY_BYTES]
    heavy = [c for c in cases if c.size >= HEAVY_BYTES]

    def one(case: Case) -> Outcome:
        started = time.monotonic()
        answer = exchange(
            host,
            port,
            case.chunks(f"{host}:{port}"),
            method=case.method,
            timeout=case.timeout,
            half_close=case.half_close,
        )
        outcome = Outcome(case, answer, started)
        if on_done:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(one, light))
    outcomes += [one(c) for c in heavy]
    return outcomes


# ---- specials: slow clients and many connections --------------------------------------------------------------------


def slowloris(host: str, port: int, connections: int = 40, seconds: float = 4.0) -> dict[str, Any]:
    """Connections that trickle their headers (and one its body) a byte per
    100 ms for a few seconds: the server must keep serving others meanwhile.
    Bounded: every connection is closed at the end, answered or not."""
    import socket

    body = dumps(example_for("device/taskRequest"))
    data = (
        f"POST /taskRequest HTTP/1.1\r\nHost: {host}:{port}\r\n{CASE_HEADER}: slowloris\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    socks = []
    for _ in range(connections):
        sock = socket.create_connection((host, port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(sock)
    deadline = time.monotonic() + seconds
    sent, position, resets = 0, 0, 0
    pause = threading.Event()
    while time.monotonic() < deadline and position < len(data) - 1:
        for sock in socks:
            try:
                sock.send(data[position : position + 1])
                sent += 1
            except OSError:
                resets += 1
        position += 1
        pause.wait(0.1)  # the point is to be slow: one byte per connection per 100 ms
    for sock in socks:
        sock.close()
    return {"connections": connections, "bytes_each": position, "send_errors": resets, "seconds": seconds}


def many_connections(host: str, port: int, count: int = 300, timeout: float = 30.0) -> list[Answer]:
    """``count`` connections open at once, each a correct poll of its own
    device sent only once all are connected; every one must be answered."""

    async def one(index: int, ready: asyncio.Event) -> Answer:
        answer = Answer()
        started = time.monotonic()
        body = example_for("device/taskRequest")
        body.update(device_id=f"MANY{index:012d}", time_stamp=int(time.time()))
        data = dumps(body)
        request = (
            f"POST /taskRequest HTTP/1.1\r\nHost: {host}:{port}\r\n{CASE_HEADER}: many-{index}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        ).encode() + data
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            await ready.wait()
            writer.write(request)
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), timeout)
            writer.close()
            status_line = raw.split(b"\r\n", 1)[0].split()
            answer.status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
            answer.body = raw.partition(b"\r\n\r\n")[2]
        except (TimeoutError, OSError) as exc:
            answer.error = f"{type(exc).__name__}: {exc}"
        answer.elapsed = time.monotonic() - started
        return answer

    async def run() -> list[Answer]:
        ready = asyncio.Event()
        tasks = [asyncio.ensure_future(one(i, ready)) for i in range(count)]
        await asyncio.sleep(0.5)  # let every connection be accepted before any request is written
        ready.set()
        return list(await asyncio.gather(*tasks))

    return asyncio.run(run())


# ---- afterwards: the control API and the live page ------------------------------------------------------------------


def admin_gets() -> list[str]:
    """Every GET of the control API without a path parameter, from its own
    OpenAPI document."""
    return [path for path, ops in admin_openapi()["paths"].items() if "get" in ops and "{" not in path]


def control_api_still_answers(host: str, port: int, thumbnails: int = 40) -> list[str]:
    """Problems found asking the control API, the live page and the capture
    thumbnails after the corpus (empty when all answer 200 with strict JSON)."""
    problems = []

    def get(path: str) -> Answer:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        return exchange(host, port, [request], method="GET", timeout=30)

    for path in admin_gets() + ["/"]:
        answer = get(path)
        if answer.status != 200:
            problems.append(f"GET {path}: HTTP {answer.status} {answer.error} {answer.body[:200]!r}")
        elif path != "/" and answer.body_size <= len(answer.body):
            try:
                strict_json(answer.body)
            except (ValueError, UnicodeDecodeError) as exc:
                problems.append(f"GET {path}: not strict JSON ({str(exc)[:120]})")
    captures = get("/_admin/captures")
    try:
        ids = [row["id"] for row in strict_json(captures.body)] if captures.status == 200 else []
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        ids = []
    for capture_id in ids[-thumbnails:]:
        for query in ("", "?size=96"):
            answer = get(f"/_admin/captures/{capture_id}/image{query}")
            if answer.status is None or answer.status >= 500:
                problems.append(
                    f"GET /_admin/captures/{capture_id}/image{query}: HTTP {answer.status} "
                    f"{answer.error} {answer.body[:200]!r}"
                )
    return problems
