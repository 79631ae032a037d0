"""A raw-socket HTTP/1.x client for hostile requests.

httpx (and every real client) repairs what we want to send broken: it
computes Content-Length, refuses bad header names, encodes the URL, frames
the body. Here a request is the exact bytes given, streamed from an iterator
(a 100 MB body never sits in memory), and the answer is parsed leniently so
whatever the server (or a proxy) writes back can be judged.

Sending watches the socket for an early answer: a server that refuses a body
half-way (413) answers before the client has finished, and a client that kept
writing would get a reset and lose that answer.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_HEAD = 1024 * 1024  # an answer's status line and headers larger than this are a server bug
MAX_BODY_KEPT = 4 * 1024 * 1024  # answer bytes kept for inspection (the rest is counted, not kept)


@dataclass
class Answer:
    """What came back on one connection: ``status`` is None when nothing did."""

    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    body_size: int = 0
    elapsed: float = 0.0
    error: str = ""  # why the answer is missing or incomplete (reset, timeout, garbage)
    sent: int = 0  # request bytes written before the server answered or closed

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class _Conn:
    """A non-blocking socket with a deadline on every wait."""

    def __init__(self, host: str, port: int, deadline: float) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic()))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.buffer = bytearray()
        self.eof = False

    def close(self) -> None:
        self.selector.close()
        self.sock.close()

    def _wait(self, events: int) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self.selector.register(self.sock, events)
        try:
            ready = self.selector.select(left)
        finally:
            self.selector.unregister(self.sock)
        if not ready:
            raise TimeoutError("deadline passed")
        return ready[0][1]

    def send_all(self, chunks: Iterable[bytes], pause: float = 0.0) -> tuple[int, bool]:
        """Write the chunks; stop early when the server answers or closes.
        Returns (bytes sent, stopped early)."""
        sent = 0
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                events = self._wait(selectors.EVENT_READ | selectors.EVENT_WRITE)
                if events & selectors.EVENT_READ:
                    return sent, True
                try:
                    n = self.sock.send(view)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    return sent, True
                sent += n
                view = view[n:]
            if pause:
                time.sleep(pause)
        return sent, False

    def fill(self) -> bool:
        """Read what is there (waiting until the deadline); False at EOF."""
        if self.eof:
            return False
        self._wait(selectors.EVENT_READ)
        try:
            data = self.sock.recv(256 * 1024)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def take(self, n: int) -> bytes:
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_line(self, limit: int = MAX_HEAD) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                return self.take(end + 2)[:-2]
            if len(self.buffer) > limit:
                raise ValueError("line too long")
            if not self.fill():
                raise ConnectionError("closed in the middle of a line")


def _parse_head(conn: _Conn) -> tuple[int, str, list[tuple[str, str]]]:
    while b"\r\n\r\n" not in conn.buffer:
        if len(conn.buffer) > MAX_HEAD:
            raise ValueError("answer head larger than 1 MiB")
        if not conn.fill():
            if not conn.buffer:
                raise ConnectionError("closed without an answer")
            raise ConnectionError(f"closed inside the answer head: {bytes(conn.buffer[:80])!r}")
    end = conn.buffer.find(b"\r\n\r\n")
    head = conn.take(end + 4).decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {head[0][:80]!r}")
    headers = []
    for line in head[1:]:
        if line:
            key, _, value = line.partition(":")
            headers.append((key.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _read_body(conn: _Conn, answer: Answer, method: str) -> None:
    kept = bytearray()

    def keep(data: bytes) -> None:
        answer.body_size += len(data)
        if len(kept) < MAX_BODY_KEPT:
            kept.extend(data[: MAX_BODY_KEPT - len(kept)])

    try:
        if method == "HEAD" or answer.status in (204, 304) or (answer.status or 0) < 200:
            return
        if (answer.header("transfer-encoding") or "").lower().endswith("chunked"):
            while True:
                size = int(conn.read_line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while conn.read_line():  # trailers
                        pass
                    return
                while len(conn.buffer) < size + 2:
                    if not conn.fill():
                        raise ConnectionError("closed inside a chunk")
                keep(conn.take(size))
                conn.take(2)
        length = answer.header("content-length")
        if length is not None:
            want = int(length)
            while answer.body_size + len(conn.buffer) < want:
                keep(conn.take(len(conn.buffer)))
                if not conn.fill():
                    raise ConnectionError(f"closed after {answer.body_size} of {want} body bytes")
            keep(conn.take(want - answer.body_size))
            return
        while conn.fill():  # no length: the body ends with the connection
            keep(conn.take(len(conn.buffer)))
        keep(conn.take(len(conn.buffer)))
    finally:
        answer.body = bytes(kept)


def exchange(
    host: str,
    port: int,
    chunks: Iterable[bytes],
    method: str = "POST",
    timeout: float = 10.0,
    half_close: bool = False,
    pause: float = 0.0,
) -> Answer:
    """Send the request bytes on a new connection and read one answer.

    ``half_close`` shuts our side for writing once sent (a client that went
    quiet); ``pause`` sleeps between chunks (a slow client). Never raises for
    what the server does: a reset, a timeout or garbage is in ``error``.
    """
    started = time.monotonic()
    answer = Answer()
    try:
        conn = _Conn(host, port, started + timeout)
    except OSError as exc:
        answer.error = f"connect: {exc}"
        return answer
    try:
        answer.sent, _ = conn.send_all(chunks, pause)
        if half_close:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        while True:
            answer.status, answer.reason, answer.headers = _parse_head(conn)
            if answer.status != 100:
                break
        _read_body(conn, answer, method.upper())
    except (OSError, TimeoutError, ValueError, ConnectionError) as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
        answer.elapsed = time.monotonic() - started
    return answer
