"""mitmproxy flow files (``mitmdump -w``): exact bytes, unlike HAR requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from facecert.core.captures.errors import CaptureError
from facecert.core.model import Exchange

if TYPE_CHECKING:
    from mitmproxy import http  # imported when a flow file is read: mitmproxy is slow to import

REDACTED_KEY = "facecert_redacted"  # flow.metadata: facecert redact replaced this flow's personal fields
STALL_KEY = "facecert_stall"  # flow.metadata: the proxy's stall clock at the request and at the answer


def stalls_of(flow: object) -> tuple[float, float]:
    """The stall clock readings the proxy kept in the flow's metadata (facecert.stalls): at the request and at
    the answer; (0.0, 0.0) for a flow recorded elsewhere, or one whose readings are not two numbers of seconds."""
    value = (getattr(flow, "metadata", None) or {}).get(STALL_KEY)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf") for v in value)
    ):
        return float(value[0]), float(value[1])
    return 0.0, 0.0


def flow_to_exchange(flow: object) -> Exchange | None:
    """One mitmproxy HTTPFlow as an exchange (None for non-HTTP flows)."""
    request = getattr(flow, "request", None)
    if request is None:
        return None
    response = getattr(flow, "response", None)
    error = getattr(flow, "error", None)
    stall_started, stall_ended = stalls_of(flow)
    client = getattr(flow, "client_conn", None)
    peer = client.peername[0] if client is not None and getattr(client, "peername", None) else ""
    return Exchange(
        method=request.method,
        path=request.path,
        url=request.pretty_url,
        request_body=_body(request),
        status=response.status_code if response is not None else None,
        response_body=_body(response) if response is not None else None,
        started=request.timestamp_start,
        ended=(response.timestamp_end if response is not None and response.timestamp_end else request.timestamp_end),
        request_headers=dict(request.headers.items()),
        response_headers=dict(response.headers.items()) if response is not None else {},
        peer=peer,
        error=error.msg if error is not None else None,
        redacted=bool((getattr(flow, "metadata", None) or {}).get(REDACTED_KEY)),
        stall_started=stall_started,
        stall_ended=stall_ended,
    )


def _body(message: http.Message) -> bytes:
    """Exact bytes unless the sender compressed them (then the decoded JSON)."""
    if message.headers.get("content-encoding"):
        return message.get_content(strict=False) or b""
    return message.raw_content or b""


def read_flows(path: Path) -> Iterator[Exchange]:
    from mitmproxy import io
    from mitmproxy.exceptions import FlowReadException

    with open(path, "rb") as handle:
        try:
            for flow in io.FlowReader(handle).stream():
                exchange = flow_to_exchange(flow)
                if exchange is not None:
                    yield exchange
        except (FlowReadException, ValueError, KeyError, TypeError) as exc:
            raise CaptureError(f"{path}: not a readable mitmproxy flow file ({str(exc)[:120]})") from None
