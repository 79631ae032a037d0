"""The device side over HTTP: the five protocol endpoints and the asset
downloads. Bodies are read with a size cap; everything else happens in
:meth:`mock_server.platform.Platform.process`."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from facecert.model import Exchange

from mock_server.messages import Incoming
from mock_server.platform import Platform

CHUNK = 64 * 1024


class DropConnection(Exception):
    """Raised after the status line to make uvicorn close the socket unanswered."""


class _QuietDrops(logging.Filter):
    """Deliberate drops are not server errors: keep them out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


class DropResponse(Response):
    """No answer: the connection closes before a complete response (ANSWER-MISSING)."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        raise DropConnection()


async def read_capped(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, stopping past ``limit`` (the first limit+ bytes are kept,
    the rest of a modest overrun is drained so the client can read the 413)."""
    kept = bytearray()
    total = 0
    drain_limit = 2 * limit + 1024 * 1024
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if len(kept) <= limit:
                kept += chunk[: limit + 1 - len(kept)]
            if total > drain_limit:
                break
    except ClientDisconnect:
        pass  # judged and stored as far as it came; the answer goes nowhere
    return bytes(kept), total > limit


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else ""


def device_handler(platform: Platform, endpoint: str) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        started = time.time()
        body, too_large = await read_capped(request, platform.config.max_body)
        incoming = Incoming(endpoint, request.method, request.url.path, str(request.url), _peer(request), started,
                            dict(request.headers), body, too_large)
        if platform.faults:
            await _maybe_slow(platform, incoming)
        reply = platform.process(incoming)
        if reply.status is None:
            return DropResponse()
        return Response(reply.body, status_code=reply.status, headers=reply.headers)
    return handle


async def _maybe_slow(platform: Platform, incoming: Incoming) -> None:
    request, _ = platform.parse(incoming)
    fault = platform.fault_for(platform.device_of(request, incoming), incoming.endpoint)
    if fault is not None and fault.kind == "slow":
        await asyncio.sleep(float(fault.params["delay"]))


class AssetResponse(Response):
    """Streams a file and logs whether the device got all of it."""

    def __init__(self, platform: Platform, path: Path, exchange: Exchange, row: int) -> None:
        super().__init__(b"")
        self.platform, self.path, self.exchange, self.row = platform, path, exchange, row

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = self.path.stat().st_size
        headers = [(b"content-type", self.platform.assets.media_type(self.path).encode()),
                   (b"content-length", str(size).encode())]
        if size == 0:  # the headers complete the answer: log first
            self._log(0, completed=True)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        sent, logged = 0, False
        try:
            with self.path.open("rb") as fh:
                while not gone.is_set() and sent < size:
                    chunk = fh.read(CHUNK)
                    if not chunk:
                        break
                    last = sent + len(chunk) >= size
                    if last:  # logged before the last bytes leave, so the log is there when the device has the file
                        logged = self._log(size, completed=True)
                    await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                    sent += len(chunk)
                    await asyncio.sleep(0)  # let connection_lost run: uvicorn's send() ignores a closed socket
        finally:
            watcher.cancel()
            if not logged:
                self._log(sent, completed=False)

    def _log(self, sent: int, completed: bool) -> bool:
        self.exchange.ended = time.time()
        self.exchange.status = 200
        self.platform.download_finished(self.row, self.exchange, sent, completed)
        return True


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


def asset_handler(platform: Platform) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        name = request.path_params.get("name", "")
        path = platform.assets.resolve(name)
        peer = _peer(request)
        exchange = Exchange("GET", request.url.path, b"", 200, b"", started=time.time(), url=str(request.url),
                            request_headers=dict(request.headers), peer=peer)
        if path is None or request.method != "GET":
            status = 404 if request.method == "GET" else 405
            row = platform.download_started(peer, name, request.url.path, 0, status)
            exchange.status, exchange.ended = status, time.time()
            exchange.response_body = b'{"code": 404, "log": "no such asset"}'
            platform.download_finished(row, exchange, 0, False, refused=True)
            return Response(exchange.response_body, status_code=status, media_type="application/json")
        row = platform.download_started(peer, name, request.url.path, path.stat().st_size, 200)
        return AssetResponse(platform, path, exchange, row)
    return handle
