"""A finished mitmproxy flow as an exchange the engine can judge, within bounds.

Like :func:`facecert.core.captures.flows.flow_to_exchange`, except that bodies come
from ``raw_content`` or the addon's :class:`~proxy_addons.bodies.BodyTap`
(never from ``.content``, which inflates without limit), are judged from at
most ``max_body`` bytes, and every text is cleaned so that it can be written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mitmproxy import http
from mitmproxy.net.http.http1 import expected_http_body_size

from facecert.core.captures.flows import stalls_of
from facecert.core.model import Exchange
from facecert.proxy_addons.bodies import STREAM_ABOVE, Body, BodyTap, Truncated, judged_body
from facecert.proxy_addons.strict import clean_text


@dataclass(frozen=True)
class Snapshot:
    exchange: Exchange
    notes: dict[str, Body] = field(default_factory=dict)  # direction ("request"/"answer") -> body with a note
    sizes: dict[str, int] = field(default_factory=dict)  # direction -> size on the wire, when not all was kept


def _expected(request: http.Request, response: http.Response | None) -> int | None:
    """The body size the headers announce: n, None (chunked) or -1 (until close); None when they are invalid."""
    try:
        return expected_http_body_size(request, response)
    except ValueError:
        return None


def should_stream(message: http.Message, request: http.Request, response: http.Response | None = None) -> bool:
    """Stream a body of unknown length (chunked, until close) or above :data:`STREAM_ABOVE`."""
    if message.stream:  # mitmproxy's own stream_large_bodies chose to: we still want to see the bytes
        return True
    expected = _expected(request, response)
    return expected is None or expected < 0 or expected > STREAM_ABOVE


def tap(message: http.Message, limit: int, request: http.Request, response: http.Response | None = None) -> None:
    """Make mitmproxy stream this body through a tap of ours."""
    expected = _expected(request, response)
    message.stream = BodyTap(limit, expected if expected is not None and expected > 0 else None)


def snapshot(flow: http.HTTPFlow, limit: int) -> Snapshot:
    """The exchange of a finished flow (answered, or failed with ``flow.error``)."""
    request, response, error = flow.request, flow.response, flow.error
    client = flow.client_conn
    peer = client.peername[0] if client is not None and client.peername else ""
    notes: dict[str, Body] = {}
    sizes: dict[str, int] = {}
    request_body = _body(request, limit, "request", notes, sizes)
    stall_started, stall_ended = stalls_of(flow)
    response_body = _body(response, limit, "answer", notes, sizes) if response is not None else None
    exchange = Exchange(
        method=clean_text(request.method),
        path=clean_text(request.path),
        url=clean_text(request.pretty_url),
        request_body=request_body,
        status=response.status_code if response is not None else None,
        response_body=response_body,
        started=request.timestamp_start,
        ended=(response.timestamp_end if response is not None and response.timestamp_end else request.timestamp_end),
        request_headers=_headers(request),
        response_headers=_headers(response) if response is not None else {},
        peer=clean_text(peer),
        error=clean_text(error.msg) if error is not None else None,
        stall_started=stall_started,
        stall_ended=stall_ended,
    )
    return Snapshot(exchange, notes, sizes)


def _body(message: http.Message, limit: int, direction: str, notes: dict[str, Body], sizes: dict[str, int]) -> bytes:
    stream: Any = message.stream
    if isinstance(stream, BodyTap):
        size = stream.size
        kept = stream.release()
    else:
        kept = message.raw_content or b""  # a body mitmproxy buffered (at most STREAM_ABOVE) or stored
        size = len(kept)
    body = judged_body(kept, size, message.headers.get("content-encoding", ""), limit)
    if body.note:
        notes[direction] = body
    if isinstance(body.data, Truncated):
        sizes[direction] = len(body.data)
    return body.data


def _headers(message: http.Message) -> dict[str, str]:
    return {clean_text(k): clean_text(v) for k, v in message.headers.items()}
