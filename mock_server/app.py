"""The Starlette application: device endpoints (from the catalogue, under the
prefix), assets, the control API and the live page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from facecert.mock_server.control_guard import ControlGuard
from facecert.mock_server.http_admin import admin_routes
from facecert.mock_server.http_device import (
    DeviceEndpoint,
    asset_handler,
    device_handler,
    install_log_filter,
    recording_refusal,
    router_refusal,
)
from facecert.mock_server.page import favicon, page_handler
from facecert.mock_server.platform import Platform
from facecert.recording import RecordingFailed


def deadline_period(platform: Platform) -> float:
    """How often to look for overdue results and stopped devices: a tenth of the result deadline or
    a quarter of the longest poll wait, whichever is shorter, 50 ms..1 s."""
    return max(0.05, min(1.0, platform.result_timeout() / 10, platform.engine.longest_wait() / 4))


async def _deadlines(platform: Platform) -> None:
    period = deadline_period(platform)
    while True:
        await asyncio.sleep(period)  # a timer, not a wait for a condition
        try:
            await run_in_threadpool(platform.check_deadlines)  # it takes the platform's lock: not on the loop
        except Exception:  # noqa: BLE001 - the timer must keep running
            pass


class MockApp(Starlette):
    """The Starlette application, with a device endpoint's exact path handed to its endpoint directly:
    a poll needs none of the router's matching and the middleware's wrapping (the endpoint answers every
    request itself, a bug of ours a 500 with the exchange stored; anything else, a trailing slash
    included, goes through Starlette as before)."""

    def __init__(self, devices: dict[str, DeviceEndpoint], **options: Any) -> None:
        super().__init__(**options)
        self.devices = devices

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            endpoint = self.devices.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def build_app(platform: Platform) -> MockApp:
    install_log_filter()
    prefix = platform.prefix
    guard = ControlGuard(platform.config.host, tuple(platform.config.public_names))
    # device endpoints take every method (ASGI apps): a GET or BREW is judged (HTTP-METHOD) and answered 400
    devices = {f"{prefix}{e.path}": device_handler(platform, e.name) for e in platform.contract.all_endpoints.values()}
    routes = [Route(path, endpoint) for path, endpoint in devices.items()]
    routes.append(Route(f"{prefix}/assets/{{name:path}}", asset_handler(platform), methods=["GET", "HEAD", "POST"]))
    routes.extend(admin_routes(platform, guard))
    routes.append(Route(f"{prefix}/", page_handler(platform, guard), methods=["GET"]))
    icons = dict.fromkeys(("/favicon.ico", f"{prefix}/favicon.ico"))  # the browser asks at the root
    routes.extend(Route(path, favicon, methods=["GET"]) for path in icons)
    if prefix:
        routes.append(Route(prefix, page_handler(platform, guard), methods=["GET"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        platform.loop = asyncio.get_running_loop()
        timer = asyncio.create_task(_deadlines(platform))
        try:
            yield
        finally:
            timer.cancel()

    app = MockApp(
        devices,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: router_refusal, 405: router_refusal, RecordingFailed: recording_refusal},
    )
    app.state.platform = platform
    return app
