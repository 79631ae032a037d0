"""The live console of ``facecert serve`` never holds up an answer (mock_server/console_feed.py).

A stdout nobody reads fills its pipe after 64 KiB; printing on the event loop then stopped every
device's answer. The feed queues lines (bounded), prints them from a thread of its own, plain
text off a terminal, and counts what it had to drop."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console

from facecert.core.examples import example_for
from facecert.mock_server.console_feed import ConsoleFeed, exchange_line

FACECERT = Path(sys.executable).parent / "facecert"
FINDING = {"severity": "error", "rule": "CADENCE-IDLE", "message": "[polled] 0.0 s after the answer"}


def _event(device: str) -> dict[str, object]:
    return {"kind": "exchange", "endpoint": "taskRequest", "device_id": device, "status": 200, "findings": [FINDING]}


class _HeldFile(io.StringIO):
    """A stdout that blocks every write until released (a pipe whose reader paused)."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()  # the printer is inside a write
        self.released = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        self.released.wait(30)
        return super().write(text)

    def isatty(self) -> bool:
        return False


def test_off_a_terminal_the_lines_are_plain_text() -> None:
    out = io.StringIO()
    feed = ConsoleFeed(Console(file=out, width=200), tick_s=0.01).start()
    feed(_event("D1"))
    feed.stop()
    text = out.getvalue()
    assert "D1" in text and "CADENCE-IDLE" in text and "[polled] 0.0 s after the answer" in text
    assert "[/]" not in text and "[red]" not in text and "\x1b[" not in text
    assert exchange_line(_event("D1"), markup=False) in text


def test_a_device_cannot_drive_the_operators_terminal(server) -> None:
    """A device_id and a path holding control characters (a screen clear, a window title) reach the
    console escaped, on a terminal (rich markup) and off it (plain text)."""
    outs = {terminal: io.StringIO() for terminal in (True, False)}
    feeds = [
        ConsoleFeed(Console(file=out, width=300, force_terminal=terminal), tick_s=0.01).start()
        for terminal, out in outs.items()
    ]
    server.platform.listeners.extend(feeds)
    body = {**example_for("device/taskRequest"), "device_id": "EVIL\x1b[2J\x1b]0;owned\x07"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/taskRequest", json=body).status_code == 200
        http.post("/%1b[2Jnowhere", content=b"{}")
    for feed in feeds:
        server.platform.listeners.remove(feed)
        feed.stop()
    for terminal, out in outs.items():
        text = out.getvalue()
        assert "EVIL\\x1b[2J" in text and "\\x07" in text, (terminal, text)
        assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text, (terminal, text)
        assert "\\x1b[2Jnowhere" in text, (terminal, text)


def test_a_stdout_that_blocks_costs_dropped_lines_never_a_wait() -> None:
    held = _HeldFile()
    feed = ConsoleFeed(Console(file=held, width=200), capacity=5, tick_s=0.01).start()
    feed(_event("D0"))
    assert held.writing.wait(5)  # the printer took it and is stuck in the write
    began = time.perf_counter()
    for n in range(1, 51):
        feed(_event(f"D{n}"))
    assert time.perf_counter() - began < 0.5  # the listener never waited on the console
    assert feed.dropped_total == 45  # five wait for the printer, the rest are counted
    held.released.set()
    feed.stop()
    assert "… 45 exchange line(s) not shown: the console fell behind (all are in the database)" in held.getvalue()


def test_a_closed_stdout_stops_the_printing_not_the_server() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    feed = ConsoleFeed(Console(file=Closed(), width=200), tick_s=0.01).start()
    feed(_event("D1"))
    feed.thread.join(5)  # the printer ends at the first write that fails
    assert feed.broken and not feed.thread.is_alive()
    feed(_event("D2"))  # still only queued: nothing raises
    feed.stop()


def test_facecert_serve_answers_while_nobody_reads_its_stdout(tmp_path: Path) -> None:
    """Thousands of exchange lines (each poll here breaks the idle cadence: a finding line too) into a
    pipe this test does not read until the end: every poll is answered in time."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [str(FACECERT), "serve", "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip().isdigit()):
            assert proc.poll() is None and time.monotonic() < deadline, "facecert serve did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(port_file.read_text())}"
        answered = asyncio.run(_poll(url, devices=10, polls=150))
        assert answered == 1500  # 1,500 exchanges and their findings: ~400 KB of lines, the pipe holds 64 KiB
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert out.count(b"CADENCE-IDLE") > 100  # what was printed reached the pipe once read


async def _poll(url: str, devices: int, polls: int) -> int:
    answered = 0

    async def device(number: int) -> None:
        nonlocal answered
        body = {**example_for("device/taskRequest"), "device_id": f"FEED{number:03d}"}
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:  # a stalled loop times out here
            for _ in range(polls):
                body["time_stamp"] = int(time.time())
                answer = await client.post("/taskRequest", json=body)
                answer.raise_for_status()
                answered += 1

    await asyncio.wait_for(asyncio.gather(*(device(n) for n in range(devices))), timeout=90)
    return answered
