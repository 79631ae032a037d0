"""The server tests talk to tests/conftest.py's ``server`` (a mock server of each test's own)
through an httpx client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from facecert.mock_server import MockServer


@pytest.fixture
def client(server: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
