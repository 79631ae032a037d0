"""HTTP/1 chunked trailers through mitmproxy 12, which cannot read them yet.

mitmproxy parses an HTTP/1 message with trailers as far as its last chunk,
then raises ``NotImplementedError("HTTP trailers are not implemented yet.")``
inside its protocol layer (``Http1Connection.read_body``; mitmproxy issue
#2474): the connection hangs and the device never gets an answer. Its HTTP
stream already handles trailer events (as HTTP/2 produces them) and its
HTTP/1 writer would only need to put them into the last chunk.

:func:`install` wraps three methods, changing nothing else:

* ``read_body``: the h11 body reader's trailers are taken off the end of the
  message and handed on as a Request/ResponseTrailers event just before its
  end, which mitmproxy's stream stores on the flow and sends on;
* ``Http1Client.send`` / ``Http1Server.send``: a trailers event is held, and
  the chunked terminator ``0\\r\\n\\r\\n`` carries them (``0\\r\\n<trailers>\\r\\n``).

So the trailers reach the other side unchanged. Installed once per process
when the addon is imported; a no-op if mitmproxy's code no longer has the
limitation (the wrapped methods are checked first).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any

import h11
from mitmproxy import http
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    RequestEndOfMessage,
    RequestTrailers,
    ResponseEndOfMessage,
    ResponseTrailers,
)

_LAST_CHUNK = b"0\r\n\r\n"
_HELD = "_facecert_trailers"  # on a connection: trailers waiting for the last chunk
_INSTALLED = "_facecert_trailers_installed"  # on the class: wrapped once

Commands = Generator[Any, Any, None]


class _KeepTrailers:
    """Wraps an h11 body reader: trailers are kept here and the end of message is passed on without them."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.trailers: http.Headers | None = None

    def _strip(self, event: Any) -> Any:
        if isinstance(event, h11.EndOfMessage) and event.headers:
            self.trailers = http.Headers([(bytes(k), bytes(v)) for k, v in event.headers.raw_items()])
            return h11.EndOfMessage()
        return event

    def __call__(self, buf: Any) -> Any:
        return self._strip(self.reader(buf))

    def read_eof(self) -> Any:
        return self._strip(self.reader.read_eof())


def _relay(generator: Commands, change: Callable[[Any], list[Any]]) -> Commands:
    """Run a layer's command generator, passing each command through ``change`` and answers back in."""
    answer = None
    while True:
        try:
            command = generator.send(answer)
        except StopIteration:
            return
        for item in change(command):
            answer = yield item


def _nothing() -> Commands:
    yield from ()


def _read_body(original: Callable[..., Commands]) -> Callable[..., Commands]:
    def read_body(self: Any, event: Any) -> Commands:
        reader = self.body_reader
        if not isinstance(reader, _KeepTrailers):
            self.body_reader = reader = _KeepTrailers(reader)

        def change(command: Any) -> list[Any]:
            ended = command.event if isinstance(command, ReceiveHttp) else None
            if reader.trailers is None or not isinstance(ended, (RequestEndOfMessage, ResponseEndOfMessage)):
                return [command]
            kind = RequestTrailers if isinstance(ended, RequestEndOfMessage) else ResponseTrailers
            trailers, reader.trailers = reader.trailers, None
            return [ReceiveHttp(kind(ended.stream_id, trailers)), command]

        return _relay(original(self, event), change)

    return read_body


def _send(
    original: Callable[..., Commands], held: type[RequestTrailers] | type[ResponseTrailers]
) -> Callable[..., Commands]:
    def send(self: Any, event: Any) -> Commands:
        if isinstance(event, held):
            setattr(self, _HELD, event.trailers)  # written with the last chunk
            return _nothing()
        trailers = getattr(self, _HELD, None)

        def change(command: Any) -> list[Any]:
            if trailers is not None and isinstance(command, commands.SendData) and command.data == _LAST_CHUNK:
                setattr(self, _HELD, None)
                return [commands.SendData(command.connection, b"0\r\n" + bytes(trailers) + b"\r\n")]
            return [command]

        return _relay(original(self, event), change)

    return send


def _still_unsupported() -> bool:
    try:
        return "trailers are not implemented" in inspect.getsource(_http1.Http1Connection.read_body)
    except (OSError, TypeError):
        return False


def install() -> bool:
    """Wrap mitmproxy's HTTP/1 layer once; True when it is (now or already) wrapped."""
    if getattr(_http1.Http1Connection, _INSTALLED, False):
        return True
    if not _still_unsupported():
        return False
    _http1.Http1Connection.read_body = _read_body(_http1.Http1Connection.read_body)  # type: ignore[method-assign]
    _http1.Http1Client.send = _send(_http1.Http1Client.send, RequestTrailers)  # type: ignore[method-assign]
    _http1.Http1Server.send = _send(_http1.Http1Server.send, ResponseTrailers)  # type: ignore[method-assign]
    setattr(_http1.Http1Connection, _INSTALLED, True)
    return True
