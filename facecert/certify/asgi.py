"""Run an ASGI app on uvicorn in a background thread (tests, certify, demo).

Binds 127.0.0.1 and an ephemeral port unless told otherwise; ``start``
returns once the socket listens, ``stop`` returns once it is closed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class UvicornThread:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        config.setdefault("log_level", "warning")
        config.setdefault("timeout_graceful_shutdown", 2)
        config.setdefault("lifespan", "on")
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **config))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{host}:{port}", daemon=True)
        self.host = host

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"uvicorn on {self.host} did not start (port in use or bad config)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn on {self.host} not listening after {timeout} s")
            time.sleep(0.005)  # polling uvicorn's own flag: it offers no event to wait on
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> UvicornThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
