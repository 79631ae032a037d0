"""Big bodies are read in a worker process with the same result as here; a
worker that dies is replaced, and the body is read here meanwhile."""

from __future__ import annotations

import json

from facecert.core.contract import get_contract
from facecert.core.rules.message import parse_message
from facecert.mock_server.offload import OFFLOAD_BYTES, Reader
from tests.server.helpers import capture_body


def _read_here(raw: bytes):
    contract = get_contract()
    return parse_message(raw, contract.limits, "faceRecognition request", contract.content_fields)


def test_the_worker_reads_like_the_engine_and_survives_its_death() -> None:
    contract = get_contract()
    accepted = json.dumps({**capture_body("W"), "image": "A" * (2 * OFFLOAD_BYTES)}).encode()
    refused = b'{"device_id": "W", "a": [' + b"0," * OFFLOAD_BYTES + b"0]}"
    reader = Reader()
    try:
        for raw in (accepted, refused):
            there = reader.read(raw, contract.limits, "faceRecognition request", contract.content_fields)
            here = _read_here(raw)
            assert (there.value, there.failure, there.issues) == (here.value, here.failure, here.issues)
        worker = reader._proc
        assert worker is not None and worker.poll() is None
        worker.kill()
        worker.wait(timeout=10)
        again = reader.read(refused, contract.limits, "faceRecognition request", contract.content_fields)
        assert again.failure is not None and again.failure.rule == "MSG-TOO-MANY-MEMBERS"
        assert reader._proc is None or reader._proc.pid != worker.pid
        assert reader.read(refused, contract.limits, "x", contract.content_fields).failure is not None
        assert reader._proc is not None and reader._proc.poll() is None  # a new worker
        small = reader.read(b'{"a": 1}', contract.limits, "x", contract.content_fields)
        assert small.value == {"a": 1}
    finally:
        reader.close()
    assert reader._proc is None and worker.poll() is not None
