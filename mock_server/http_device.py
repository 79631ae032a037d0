"""The device side over HTTP: the five protocol endpoints and the asset
downloads. Bodies are read with a size cap; everything else happens in
:class:`mock_server.platform.Platform`. A small message (up to INLINE_BYTES)
is judged, decided and committed here on the event loop, with the others of
the same turn (:class:`mock_server.platform.Batch`): that work is shorter than
a hop to a worker thread and back. A bigger one goes to a worker thread, so
the loop keeps reading and answering other devices meanwhile.

A device endpoint takes every method (an odd one is judged, HTTP-METHOD,
and answered 400). After the body is read, a watcher listens for the
client going away: a request whose client is gone before its answer is
decided is stored as unanswered and changes nothing else (its queued task
stays queued). Requests the router refuses (unknown path, wrong method)
are stored too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from facecert.core.model import Exchange
from facecert.mock_server.assets import Asset
from facecert.mock_server.messages import Incoming, Reply, to_json
from facecert.mock_server.platform import Platform
from facecert.recording import RecordingFailed

CHUNK = 64 * 1024
# Bodies up to this are judged on the event loop: reading and judging one (a poll, a result, an alarm) takes
# well under a millisecond, less than handing it to a worker thread; a capture with its image goes to a thread.
INLINE_BYTES = 64 * 1024


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


DRAIN_FACTOR = 8  # a 100 MB upload against the 20 MiB limit still gets its 413 (bounded: nothing is kept)


async def read_body(request: Request, limit: int) -> tuple[bytes, bool, bool]:
    """The body, stopping past ``limit`` (the first limit+ bytes are kept,
    the rest of an overrun up to DRAIN_FACTOR × limit is read and dropped, so
    the client, or a proxy still streaming it, can read the 413: closing on
    unread data resets the connection and can lose the answer on its way);
    third value: the client went away before the body was complete."""
    return await receive_body(request.receive, limit)  # the ASGI messages (Request.stream() is the same, slower)


async def receive_body(receive: Receive, limit: int) -> tuple[bytes, bool, bool]:
    """:func:`read_body` from the ASGI ``receive`` itself."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body = message.get("body", b"")  # the whole body in one message: a poll, almost always
        return (body[: limit + 1], True, False) if len(body) > limit else (body, False, False)
    kept = bytearray()
    total = 0
    drain_limit = DRAIN_FACTOR * limit + 1024 * 1024
    while True:
        if message["type"] == "http.disconnect":
            return bytes(kept), total > limit, True
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            total += len(chunk)
            if len(kept) <= limit:
                kept += chunk[: limit + 1 - len(kept)]
            if total > drain_limit or not message.get("more_body", False):
                return bytes(kept), total > limit, False
        message = await receive()


async def read_capped(request: Request, limit: int) -> tuple[bytes, bool]:
    body, too_large, _ = await read_body(request, limit)
    return body, too_large


def headers_of(scope: Scope) -> dict[str, str]:
    """``dict(request.headers)`` (a repeated header keeps its first value), read from the scope directly;
    decoded once per distinct set (a device sends the same ones every time), a copy of its own each time."""
    raw = scope["headers"]
    try:
        return dict(_headers(tuple(raw)))
    except TypeError:  # not the tuples of bytes an ASGI server gives
        return _decode_headers(raw)


@functools.lru_cache(maxsize=4096)
def _headers(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    return _decode_headers(raw)


def _decode_headers(raw: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in raw:
        headers.setdefault(key.decode("latin-1"), value.decode("latin-1"))
    return headers


def peer_of(request: Request) -> str:
    """``host:port`` of the client (``[host]:port`` for IPv6: the host stays readable, facecert.core's peer_host)."""
    return peer_from(request.scope)


def peer_from(scope: Scope) -> str:
    """:func:`peer_of` from the ASGI scope."""
    client = scope.get("client")
    if not client:
        return ""
    host, port = client
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_of(scope: Scope) -> tuple[str, str]:
    """``str(request.url)`` and ``request.url.path`` (Starlette's own URL), made once per distinct
    scheme, Host header, server address, path and query: a device asks for the same URL every time."""
    host = None
    for key, value in scope["headers"]:
        if key == b"host":
            host = value
            break
    return _url(scope.get("scheme", "http"), host, scope.get("server"), scope["path"], scope.get("query_string", b""))


@functools.lru_cache(maxsize=1024)
def _url(scheme: str, host: bytes | None, server: Any, path: str, query: bytes) -> tuple[str, str]:
    headers = [] if host is None else [(b"host", host)]
    url = URL(scope={"scheme": scheme, "server": server, "path": path, "query_string": query, "headers": headers})
    return str(url), url.path


class Departure:
    """Whether the client left before its answer: set from the event loop,
    read by the worker thread that decides the answer."""

    def __init__(self, receive: Receive, gone: bool = False) -> None:
        self.flag = threading.Event()
        self.event = asyncio.Event()
        if gone:
            self._set()
        self._task = None if gone else asyncio.create_task(self._watch(receive))

    def _set(self) -> None:
        self.flag.set()
        self.event.set()

    async def _watch(self, receive: Receive) -> None:
        # after the body, uvicorn's receive() returns only when the client disconnects (or the answer is done)
        message = await receive()
        if message["type"] == "http.disconnect":
            self._set()

    def gone(self) -> bool:
        return self.flag.is_set()

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, ending early when the client leaves."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _left() -> bool:
    return True


def _here() -> bool:
    return False


class DeviceEndpoint:
    """One protocol endpoint as an ASGI app: as a class (not a function), the
    route matches every method, so an odd method is judged, not a bare 405."""

    def __init__(self, platform: Platform, endpoint: str) -> None:
        self.platform, self.endpoint = platform, endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # the ASGI scope read directly: what a Request would give (method, URL, client), without building one
        started = time.time()
        platform = self.platform
        stall = platform.stalls.read()  # read with the stamp: a poll seen late by a held process is told apart
        platform.batch.in_flight += 1
        try:
            await self._handle(scope, receive, send, started, stall)
        finally:
            platform.batch.in_flight -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send, started: float, stall: float) -> None:
        platform = self.platform
        body, too_large, disconnected = await receive_body(receive, platform.config.max_body)
        url, path = url_of(scope)
        incoming = Incoming(
            self.endpoint,
            scope["method"],
            path,
            url,
            peer_from(scope),
            started,
            headers_of(scope),
            body,
            too_large,
            gone=_left if disconnected else _here,
            stall_started=stall,
        )
        if len(body) <= INLINE_BYTES:
            reply = await self._inline(incoming, receive, disconnected)
        else:
            reply = await self._in_thread(incoming, receive, disconnected)
        if reply.status is None:
            await DropResponse()(scope, receive, send)
            return
        await send_reply(send, reply)
        if reply.stamped is not None:  # sent later than stamped (a slow commit, a lock): not the device's time
            platform.stalls.held_since(reply.stamped)

    async def _inline(self, incoming: Incoming, receive: Receive, disconnected: bool) -> Reply:
        """Judged and decided on the loop; answered once committed with this turn's other exchanges."""
        platform = self.platform
        try:
            ex, heard = platform.hear(incoming)
            delay = platform.slow_delay(incoming, heard)
        except Exception as exc:  # noqa: BLE001 - the record and the answer must survive a bug
            return platform.failed(incoming, exc)
        if delay:
            await _slowly(incoming, receive, disconnected, delay)
        batch = platform.batch
        if batch.alone() and _others_ready():
            # Requests that arrived together (devices back after an outage) each reach this point alone: the
            # loop runs their tasks one after the other. One turn of the loop lets the others come in first,
            # so that they share one commit (100 polls at once: 1-2 commits, not 100).
            await asyncio.sleep(0)
        if batch.alone():  # nobody to share a commit with: committed now, without waiting for the loop's next turn
            reply = batch.answer_now(incoming, ex, heard)
            if reply is not None:
                return reply
        return await batch.answer(incoming, ex, heard)

    async def _in_thread(self, incoming: Incoming, receive: Receive, disconnected: bool) -> Reply:
        """A big message: judged, decided and committed in a worker thread (the loop serves others)."""
        platform = self.platform
        departure = Departure(receive, gone=disconnected)
        incoming.gone = departure.gone
        try:
            if not platform.faults:
                return await run_in_threadpool(platform.answer_safely, incoming)
            try:
                ex, heard = await run_in_threadpool(platform.hear, incoming)
                delay = platform.slow_delay(incoming, heard)
            except Exception as exc:  # noqa: BLE001 - the record and the answer must survive a bug
                return await run_in_threadpool(platform.failed, incoming, exc)
            if delay:
                await departure.wait(delay)
            return await run_in_threadpool(platform.answer_safely, incoming, ex, heard)
        finally:
            departure.stop()


def _others_ready() -> bool:
    """Whether the loop has other callbacks to run before it next polls its sockets (the tasks of requests
    that came in with this one): only then can a turn of the loop bring anyone to share this one's commit.
    A lone device's poll is then answered a turn sooner (a poll of the selector, ~20-40 µs). asyncio's own
    loops keep those callbacks in ``_ready`` (not public, there since 3.4); any other loop is given the turn."""
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    return ready is None or len(ready) > 0


async def _slowly(incoming: Incoming, receive: Receive, disconnected: bool, delay: float) -> None:
    """A slow fault's delay, ended early when the client leaves (then it is stored unanswered)."""
    departure = Departure(receive, gone=disconnected)
    incoming.gone = departure.gone
    try:
        await departure.wait(delay)
    finally:
        departure.stop()


_JSON = {"content-type": "application/json"}
_JSON_LINE = (b"content-type", b"application/json")


async def send_reply(send: Send, reply: Reply) -> None:
    """What ``Response(reply.body, reply.status, reply.headers)`` sends, without building one."""
    assert reply.status is not None
    if reply.headers == _JSON:  # what nearly every answer has: its header line made once
        headers = [_JSON_LINE]
    else:
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    if not any(k == b"content-length" for k, _ in headers) and not (reply.status < 200 or reply.status in (204, 304)):
        headers.append((b"content-length", str(len(reply.body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def device_handler(platform: Platform, endpoint: str) -> DeviceEndpoint:
    return DeviceEndpoint(platform, endpoint)


async def router_refusal(request: Request, exc: Exception) -> Response:
    """Unknown path (404) or a method a route does not take (405): a JSON
    answer, and the request is stored like every other."""
    platform: Platform = request.app.state.platform
    status = int(getattr(exc, "status_code", 404))
    body, _, _ = await read_body(request, platform.config.max_body)
    what = "no such endpoint" if status == 404 else "method not allowed"
    answer = to_json({"code": status, "log": f"{what}: {request.method} {request.url.path}"})
    headers = {"content-type": "application/json", **dict(getattr(exc, "headers", None) or {})}
    exchange = Exchange(
        request.method,
        request.url.path,
        body,
        status,
        answer,
        started=time.time(),
        ended=time.time(),
        request_headers=dict(request.headers),
        response_headers=headers,
        peer=peer_of(request),
        url=str(request.url),
    )
    try:
        await run_in_threadpool(platform.record_other, exchange)
    except RecordingFailed as exc:
        return await recording_refusal(request, exc)
    return Response(answer, status_code=status, headers=headers)


async def recording_refusal(request: Request, exc: Exception) -> Response:
    """A request the store could not keep (the disk is full or failing): 503, told once on the console
    (:meth:`Platform.unrecorded`), not a 500 with a traceback."""
    platform: Platform = request.app.state.platform
    assert isinstance(exc, RecordingFailed)
    reply = platform.unrecorded(exc)
    return Response(reply.body, status_code=503, headers=reply.headers)


class AssetResponse(Response):
    """Streams a file and logs whether the device got all of it."""

    def __init__(self, platform: Platform, asset: Asset, exchange: Exchange, row: int) -> None:
        super().__init__(b"")
        self.platform, self.asset, self.exchange, self.row = platform, asset, exchange, row

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = self.asset.size
        headers = [
            (b"content-type", self.asset.media_type.encode()),
            (b"content-length", str(size).encode()),
        ]
        if size == 0:  # the headers complete the answer: log first
            await self._log(0, completed=True)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        sent, logged = 0, False
        try:
            with self.asset.open() as fh:
                while not gone.is_set() and sent < size:
                    chunk = fh.read(CHUNK)
                    if not chunk:
                        break
                    last = sent + len(chunk) >= size
                    if last:  # logged before the last bytes leave, so the log is there when the device has the file
                        logged = await self._log(size, completed=True)
                    await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                    sent += len(chunk)
                    await asyncio.sleep(0)  # let connection_lost run: uvicorn's send() ignores a closed socket
        finally:
            watcher.cancel()
            if not logged:
                await self._log(sent, completed=False)

    async def _log(self, sent: int, completed: bool) -> bool:
        self.exchange.ended = time.time()
        self.exchange.status = 200
        try:
            await run_in_threadpool(self.platform.download_finished, self.row, self.exchange, sent, completed)
        except RecordingFailed as exc:  # the file is on its way already: it goes on, unrecorded, and is counted
            self.platform.unrecorded(exc)
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
        asset = platform.assets.resolve(name)
        peer = peer_of(request)
        body, _, _ = await read_body(request, platform.config.max_body)
        exchange = Exchange(
            request.method,
            request.url.path,
            body,
            200,
            b"",
            started=time.time(),
            url=str(request.url),
            request_headers=dict(request.headers),
            peer=peer,
        )
        if asset is None or request.method != "GET":
            status = 404 if request.method == "GET" else 405
            row = await run_in_threadpool(platform.download_started, peer, name, request.url.path, 0, status)
            exchange.status, exchange.ended = status, time.time()
            exchange.response_body = to_json(
                {
                    "code": status,
                    "log": "no such asset" if status == 404 else f"{request.method} is not allowed on assets (GET)",
                }
            )
            exchange.response_headers = {"content-type": "application/json"}
            await run_in_threadpool(platform.download_finished, row, exchange, 0, False, True)
            return Response(exchange.response_body, status_code=status, media_type="application/json")
        row = await run_in_threadpool(platform.download_started, peer, name, request.url.path, asset.size, 200)
        return AssetResponse(platform, asset, exchange, row)

    return handle
