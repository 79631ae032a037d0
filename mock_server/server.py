"""``MockServer``: the platform on uvicorn in a background thread, with the
Python API the steps and tests use (the same functions as ``/_admin``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

from facecert.core.engine import Engine
from facecert.core.model import Finding
from facecert.mock_server.app import build_app
from facecert.mock_server.config import ServerConfig
from facecert.mock_server.platform import Platform


class MockServer:
    """A running mock platform server.

    ``start()`` returns once the socket listens; ``url`` is what a device is
    configured with (base + prefix). Use it as a context manager in tests.
    """

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.platform = Platform(self.config)
        self.app = build_app(self.platform)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.platform.pause_listening = self._pause_listening

    # ---- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> MockServer:
        config = uvicorn.Config(
            self.app,
            host=self.config.host,
            port=self.config.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
            limit_concurrency=None,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="facecert-mock-server", daemon=True)
        self._thread.start()
        # uvicorn offers no event for "listening": watch its flag (or the thread dying) until a deadline
        pause, deadline = threading.Event(), time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            pause.wait(0.01)
        if not self._server.started:
            self._server.should_exit = True
            raise RuntimeError(f"the mock server could not listen on {self.config.host}:{self.config.port}")
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.platform.base = f"http://{self._host_for_url()}:{port}"
        return self

    # ---- outage mode "refuse": the port closes, then reopens -----------------------
    def _pause_listening(self, seconds: float) -> None:
        """Close the listening socket now and reopen it ``seconds`` later (in the server's loop)."""
        loop = self.platform.loop
        if loop is None:
            raise RuntimeError("the server is not running")
        loop.call_soon_threadsafe(self._close_listener, seconds)

    def _close_listener(self, seconds: float) -> None:
        assert self._server is not None
        listener = self._server.servers[0]
        if not listener.sockets:  # closed already by a refuse sent earlier on a kept-alive connection: that one reopens
            return
        # uvicorn builds its protocol factory inside startup(); asyncio keeps it on the Server
        self._factory = listener._protocol_factory  # type: ignore[attr-defined]
        self._address = listener.sockets[0].getsockname()
        listener.close()
        self.platform.set_listening(False)
        asyncio.get_running_loop().call_later(seconds, lambda: asyncio.ensure_future(self._reopen_listener()))

    async def _reopen_listener(self) -> None:
        assert self._server is not None
        sock = socket.socket(socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self._address)
        listener = await asyncio.get_running_loop().create_server(self._factory, sock=sock, backlog=2048)
        self._server.servers = [listener]
        self.platform.set_listening(True)

    def _host_for_url(self) -> str:
        host = self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.platform.close()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- addresses -------------------------------------------------------------
    @property
    def base(self) -> str:
        return self.platform.base

    @property
    def url(self) -> str:
        return self.platform.base + self.platform.prefix

    @property
    def port(self) -> int:
        return int(self.platform.base.rsplit(":", 1)[1])

    @property
    def engine(self) -> Engine:
        return self.platform.engine

    def asset_url(self, name: str) -> str:
        return self.platform.asset_url(name)

    # ---- the same functions as /_admin -------------------------------------------
    def enqueue(self, device_id: str, task: Any, raw: bool = False) -> Any:
        return self.platform.enqueue(device_id, task, raw=raw)

    def devices(self) -> list[dict[str, Any]]:
        return self.platform.devices()

    def queue(self, device_id: str) -> list[dict[str, Any]]:
        return self.platform.queue(device_id)

    def results(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.platform.results(device_id)

    def captures(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.platform.captures(device_id)

    def alarms(self) -> list[dict[str, Any]]:
        return self.platform.alarms()

    def gps(self) -> list[dict[str, Any]]:
        return self.platform.gps()

    def downloads(self) -> list[dict[str, Any]]:
        return self.platform.downloads()

    def tasks(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.platform.tasks(device_id)

    def findings(self, device_id: str | None = None, party: str | None = None) -> list[dict[str, Any]]:
        return self.platform.findings(device_id, party)

    def exchanges(self, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.platform.exchanges(device_id)

    def set_fault(self, kind: str, device_id: str | None = None, **params: Any) -> dict[str, Any]:
        return self.platform.set_fault(kind, device_id, **params)

    def clear_faults(self) -> None:
        self.platform.clear_faults()

    def set_misbehaviour(self, name: str, on: bool = True) -> None:
        self.platform.set_misbehaviour(name, on)

    def check_deadlines(self, now: float | None = None) -> list[Finding]:
        return self.platform.check_deadlines(now)

    # ---- waiting ---------------------------------------------------------------
    def wait_for_poll(self, device_id: str, timeout: float, after: float | None = None) -> dict[str, Any]:
        return self.platform.wait_for_poll(device_id, timeout, after)

    def wait_for_result(self, request_id: Any, timeout: float) -> dict[str, Any]:
        return self.platform.wait_for_result(request_id, timeout)

    def wait_for_capture(self, device_id: str, timeout: float, after: float = 0.0) -> dict[str, Any]:
        return self.platform.wait_for_capture(device_id, timeout, after)
