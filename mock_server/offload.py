"""Big bodies are read in another process.

Reading a body within the contract's bounds costs work proportional to its
size: for a 20 MB body, tens of milliseconds at a time inside C calls (byte
counts, UTF-8 decoding, ``json.loads``) that hold the interpreter, so every
other device's exchange waits behind them even though it runs in a thread
of its own. A body above ``OFFLOAD_BYTES`` is therefore read by a worker
process (the same ``parse_message``, same limits); what comes back is small
for a refused body (the reason) and one copy for an accepted one.

The worker is ``python -m mock_server.reader_worker``, our own child on a pipe
(not multiprocessing, whose spawned children import the parent's main
script again). It starts at the first big body, so a session that never
sees one never starts it; should it fail, the body is read here as before.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from facecert.core.contract import Limits
from facecert.core.rules.message import Parsed, parse_message

OFFLOAD_BYTES = 1024 * 1024  # bodies above this are read in the worker process
_LENGTH = struct.Struct("!Q")


def _send(pipe: IO[bytes], *parts: bytes) -> None:
    for part in parts:
        pipe.write(_LENGTH.pack(len(part)))
        pipe.write(part)
    pipe.flush()


def _receive(pipe: IO[bytes]) -> bytes:
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the reader process is gone")
    size = _LENGTH.unpack(head)[0]
    data = pipe.read(size)
    if len(data) < size:
        raise EOFError("the reader process is gone")
    return data


class Reader:
    """One worker process that reads big bodies, one at a time, started when first needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    def _worker(self) -> subprocess.Popen[bytes] | None:
        if self._proc is None and not self._closed:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "facecert.mock_server.reader_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        return self._proc

    def read(self, raw: bytes | None, limits: Limits, what: str, content_fields: frozenset[str]) -> Parsed:
        """``parse_message`` of ``raw``: in the worker when it is big, else (or should the worker fail) here.
        A body beyond the limit is refused here at once, for its size alone."""
        if raw is not None and OFFLOAD_BYTES < len(raw) <= limits.max_body_bytes:
            with self._lock:
                proc = self._worker()
                if proc is not None and proc.stdin is not None and proc.stdout is not None:
                    try:
                        _send(proc.stdin, pickle.dumps((limits, what, content_fields)), raw)
                        parsed = pickle.loads(_receive(proc.stdout))  # our own child's answer
                        if isinstance(parsed, Parsed):
                            return parsed
                    except (OSError, EOFError, pickle.UnpicklingError):
                        self._stop()
        return parse_message(raw, limits, what, content_fields)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
            _close_pipes(proc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()  # the worker ends at the end of its input
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            _close_pipes(proc)


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass  # a broken pipe to a dead worker: nothing left to flush


def serve_reads(source: IO[bytes], sink: IO[bytes]) -> None:
    """The worker: read (arguments, body) pairs until the input ends, answer each with its Parsed."""
    while True:
        try:
            arguments: Any = pickle.loads(_receive(source))  # from our parent only
            body = _receive(source)
        except EOFError:
            return
        limits, what, content_fields = arguments
        _send(sink, pickle.dumps(parse_message(body, limits, what, content_fields)))
