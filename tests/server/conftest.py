"""A real mock server on an ephemeral 127.0.0.1 port per test, and an httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facecert.mock_server import MockServer, ServerConfig
from tests.server.helpers import SCALE


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MockServer]:
    with MockServer(ServerConfig(time_scale=SCALE, db=tmp_path / "session.db")) as srv:
        yield srv


@pytest.fixture
def client(server: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
