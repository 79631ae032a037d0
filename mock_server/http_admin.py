"""The control API (``/_admin/...``, JSON), a thin layer over the Platform
methods the Python API calls too. Documented by :mod:`mock_server.openapi`.

Every call passes :class:`mock_server.control_guard.ControlGuard` (Host,
cross-site and content-type checks), then the token; refusals are stored like
any other answered request. The work runs in a worker thread, so a long call
(or a device message holding the platform) never blocks the event loop, and
every answer is strict JSON.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from facecert.core.captures.har import har_text
from facecert.core.jsonsafe import loads_strict
from facecert.core.model import PARTIES, Exchange
from facecert.mock_server.bounds import MAX_LIMIT, MAX_THUMBNAIL
from facecert.mock_server.control_guard import ControlGuard, Refusal
from facecert.mock_server.faults import FAULT_KINDS, FaultError
from facecert.mock_server.http_device import peer_of, read_capped
from facecert.mock_server.images import ImageRefused, thumbnail
from facecert.mock_server.live import live_view
from facecert.mock_server.messages import to_json
from facecert.mock_server.misbehaviours import MISBEHAVIOURS, misbehaviour_name
from facecert.mock_server.openapi import admin_openapi
from facecert.mock_server.platform import Platform, Rejected
from facecert.mock_server.store import SQLITE_INT

Handler = Callable[[Request], Awaitable[Response]]


class StrictJSONResponse(Response):
    """JSON that is always RFC 8259 and UTF-8 (Starlette's would raise on a lone surrogate or NaN)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return to_json(content)


def error(status: int, message: str, **extra: Any) -> StrictJSONResponse:
    return StrictJSONResponse({"error": message, **extra}, status_code=status)


def int_param(text: str, name: str, low: int, high: int) -> int:
    """A decimal integer parameter within [low, high], or Rejected (422)."""
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise Rejected(f"{name} must be a decimal integer {low}..{high}, not {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise Rejected(f"{name} must be {low}..{high}, not {value}")
    return value


def authorised(platform: Platform, request: Request) -> bool:
    token = platform.config.admin_token
    if not token:
        return True
    given = (
        request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        or request.headers.get("x-admin-token", "")
        or request.query_params.get("token", "")
    )
    return hmac.compare_digest(given.encode(), token.encode())


def parse_json_body(raw: bytes) -> Any:
    """A control request's body: strict JSON (no NaN/Infinity, no float overflow, no lone surrogate)."""
    if not raw.strip(b" \t\r\n"):  # JSON's whitespace only: a form feed or vertical tab is not an empty body
        return {}
    try:
        return loads_strict(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(f"the body is not JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise Rejected("the body nests too deeply") from None


def store_refusal(platform: Platform, request: Request, body: bytes, refusal: Refusal) -> StrictJSONResponse:
    """Answer a refused control request and keep it on record (a cross-site attempt is worth seeing)."""
    answer = error(refusal.status, refusal.reason)
    started = time.time()
    exchange = Exchange(
        request.method,
        request.url.path,
        body,
        refusal.status,
        bytes(answer.body),  # Starlette types a body as bytes | memoryview
        started=started,
        ended=time.time(),
        request_headers=dict(request.headers),
        response_headers={"content-type": "application/json"},
        peer=peer_of(request),
        url=str(request.url),
        error=refusal.reason,
    )
    platform.record_other(exchange)
    return answer


# A call: (platform, request, parsed JSON body) -> a value to encode, or a Response. Runs in a worker thread.
Call = Callable[[Platform, Request, Any], Any]


def guarded(platform: Platform, guard: ControlGuard, handler: Call, status: int = 200) -> Handler:
    """Guard checks, token, body, clear 4xx and strict JSON for every admin call."""

    async def endpoint(request: Request) -> Response:
        raw, too_large = await read_capped(request, platform.config.max_body)
        refusal = guard.refusal(request)
        if refusal is None and not authorised(platform, request):
            refusal = Refusal(401, "admin token required (Authorization: Bearer TOKEN, X-Admin-Token or ?token=)")
        refusal = refusal or guard.write_refusal(request)
        if refusal is not None:
            return await run_in_threadpool(store_refusal, platform, request, raw, refusal)
        if too_large:
            return error(413, f"the body is larger than {platform.config.max_body:,} bytes")
        return await run_in_threadpool(_answer, platform, request, raw, handler, status)

    return endpoint


def _answer(platform: Platform, request: Request, raw: bytes, handler: Call, status: int) -> Response:
    try:
        result = handler(platform, request, parse_json_body(raw) if request.method in ("POST", "PUT") else None)
    except Rejected as exc:
        return error(422, str(exc), findings=exc.findings)
    except (FaultError, ValueError, TypeError) as exc:
        return error(422, str(exc))
    except KeyError as exc:
        return error(404, f"not found: {exc}")
    except TimeoutError as exc:
        return error(504, str(exc))
    if isinstance(result, Response):
        return result
    return StrictJSONResponse(result, status_code=status)


def _device(request: Request) -> str | None:
    return request.query_params.get("device_id") or None


def _limit(request: Request) -> int | None:
    text = request.query_params.get("limit")
    return None if text is None or text == "" else int_param(text, "limit", 1, MAX_LIMIT)


def list_devices(p: Platform, r: Request, body: Any) -> Any:
    return p.devices()


def read_queue(p: Platform, r: Request, body: Any) -> Any:
    return p.queue(r.path_params["device_id"])


def enqueue(p: Platform, r: Request, body: Any) -> Any:
    if not isinstance(body, dict) or "task" not in body:
        raise Rejected('send {"task": {...}, "raw": false}')
    raw = body.get("raw", False)
    if not isinstance(raw, bool):
        raise Rejected("raw must be true or false")
    rid = p.enqueue(r.path_params["device_id"], body["task"], raw=raw)
    return StrictJSONResponse({"request_id": rid, "device_id": r.path_params["device_id"]}, status_code=201)


def results(p: Platform, r: Request, body: Any) -> Any:
    return p.results(_device(r))


def captures(p: Platform, r: Request, body: Any) -> Any:
    return p.captures(_device(r), limit=_limit(r))


def capture_image(p: Platform, r: Request, body: Any) -> Any:
    try:
        capture_id = int_param(r.path_params["capture_id"], "capture_id", 1, SQLITE_INT[1])
    except Rejected:
        raise KeyError(f"capture {r.path_params['capture_id'][:40]}") from None
    data = p.capture_image(capture_id)
    if not data:
        raise KeyError(f"capture {capture_id} image")
    size = r.query_params.get("size", "")
    if not size:
        return Response(data, media_type="image/jpeg")
    edge = int_param(size, "size", 1, MAX_THUMBNAIL)
    try:
        small = thumbnail(data, edge)
    except ImageRefused as exc:
        raise Rejected(f"capture {capture_id} image: {exc}") from None
    # a capture never changes: the live page's browser may keep its thumbnails
    return Response(small, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


def alarms(p: Platform, r: Request, body: Any) -> Any:
    return p.alarms(_device(r))


def gps(p: Platform, r: Request, body: Any) -> Any:
    return p.gps(_device(r))


def downloads(p: Platform, r: Request, body: Any) -> Any:
    return p.downloads(limit=_limit(r))


def tasks(p: Platform, r: Request, body: Any) -> Any:
    return p.tasks(_device(r))


def findings(p: Platform, r: Request, body: Any) -> Any:
    party = r.query_params.get("party") or None  # absent or empty: both parties
    if party is not None and party not in PARTIES:
        raise Rejected(f"party must be one of {', '.join(PARTIES)}, not {party[:40]!r}")
    return p.findings(_device(r), party, limit=_limit(r))


def exchanges(p: Platform, r: Request, body: Any) -> Any:
    return p.exchanges(_device(r), _limit(r))


def list_faults(p: Platform, r: Request, body: Any) -> Any:
    with p.cond:
        return {
            "active": [f.to_dict() for f in p.faults],
            "kinds": {k: {"defaults": d, "description": text} for k, (d, text) in FAULT_KINDS.items()},
        }


def set_fault(p: Platform, r: Request, body: Any) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise Rejected('send {"kind": "outage|slow|error|malformed", "device_id": null, ...}')
    params = {k: v for k, v in body.items() if k not in ("kind", "device_id", "endpoints", "duration")}
    return StrictJSONResponse(
        p.set_fault(body["kind"], body.get("device_id"), body.get("endpoints"), body.get("duration"), **params),
        status_code=201,
    )


def clear_faults(p: Platform, r: Request, body: Any) -> Any:
    p.clear_faults(_device(r))
    return {"active": []}


FAULT_CALLS: dict[str, Call] = {"GET": list_faults, "POST": set_fault, "DELETE": clear_faults}


def faults(p: Platform, r: Request, body: Any) -> Any:
    """One route for the three fault calls, so a method it does not take gets a 405 whose Allow
    names all of them (three routes on one path answered with the first route's methods only)."""
    return FAULT_CALLS["GET" if r.method == "HEAD" else r.method](p, r, body)  # Starlette adds HEAD to GET


def list_misbehaviours(p: Platform, r: Request, body: Any) -> Any:
    return [
        {"name": m.name, "rule": m.rule, "description": m.description, "on": p.misbehaves(m.name)}
        for m in MISBEHAVIOURS.values()
    ]


def set_misbehaviour(p: Platform, r: Request, body: Any) -> Any:
    on = body.get("on", True) if isinstance(body, dict) else None
    if not isinstance(on, bool):
        raise Rejected('send {"on": true} or {"on": false}')
    try:
        name = misbehaviour_name(r.path_params["name"])  # old underscore spellings accepted
    except ValueError:
        raise KeyError(f"misbehaviour {r.path_params['name'][:40]}") from None
    p.set_misbehaviour(name, on)
    return {"name": name, "on": on}


def assets(p: Platform, r: Request, body: Any) -> Any:
    return [{"name": n, "url": p.asset_url(n)} for n in p.assets.names()]


def export_har(p: Platform, r: Request, body: Any) -> Any:
    """The session as HAR, redacted like every HAR facecert writes (facecert.core.redact: privacy by default),
    sent as it is read, a page of exchanges at a time (Store.iter_exchanges): the whole session of a long
    run, read at once, held every device's commit and sat in memory twice (rows, then text)."""
    from facecert.core.redact import current

    pieces = har_text(current().exchanges(p.store.iter_exchanges()), creator="facecert mock server")
    return StreamingResponse(_chunks(pieces), media_type="application/json")


def _chunks(pieces: Iterator[str], size: int = 64 * 1024) -> Iterator[bytes]:
    """The pieces joined into chunks of about ``size`` bytes: Starlette takes each item of a sync iterator
    from a worker thread, and one thread hop per exchange made a long export slow."""
    held: list[bytes] = []
    count = 0
    for piece in pieces:
        data = piece.encode("utf-8")
        held.append(data)
        count += len(data)
        if count >= size:
            yield b"".join(held)
            held, count = [], 0
    if held:
        yield b"".join(held)


def overview(p: Platform, r: Request, body: Any) -> Any:
    """Everything the live page shows, in one call (with the server's settings, the cadence
    windows, each device's timeline and the findings by rule: mock_server.live)."""
    devices = p.devices()
    return {
        **live_view(p),
        "devices": devices,
        "queues": {d["device_id"]: p.queue(d["device_id"]) for d in devices},
        "exchanges": p.exchanges(limit=40),
        "findings": p.findings(limit=60),
        "captures": p.captures(limit=12),
        "downloads": p.downloads(limit=20),
        "misbehaving": sorted(p.misbehaving),
        "faults": [f.to_dict() for f in p.faults],
    }


def openapi_document(p: Platform, r: Request, body: Any) -> Any:
    return admin_openapi()


def admin_routes(platform: Platform, guard: ControlGuard) -> list[Route]:
    base = f"{platform.prefix}/_admin"

    def g(handler: Call, status: int = 200) -> Handler:
        return guarded(platform, guard, handler, status)

    return [
        Route(f"{base}/devices", g(list_devices), methods=["GET"]),
        Route(f"{base}/devices/{{device_id}}/queue", g(read_queue), methods=["GET"]),
        Route(f"{base}/devices/{{device_id}}/tasks", g(enqueue), methods=["POST"]),
        Route(f"{base}/tasks", g(tasks), methods=["GET"]),
        Route(f"{base}/results", g(results), methods=["GET"]),
        Route(f"{base}/captures", g(captures), methods=["GET"]),
        Route(f"{base}/captures/{{capture_id}}/image", g(capture_image), methods=["GET"]),
        Route(f"{base}/alarms", g(alarms), methods=["GET"]),
        Route(f"{base}/gps", g(gps), methods=["GET"]),
        Route(f"{base}/downloads", g(downloads), methods=["GET"]),
        Route(f"{base}/findings", g(findings), methods=["GET"]),
        Route(f"{base}/exchanges", g(exchanges), methods=["GET"]),
        Route(f"{base}/faults", g(faults), methods=list(FAULT_CALLS)),
        Route(f"{base}/misbehaviours", g(list_misbehaviours), methods=["GET"]),
        Route(f"{base}/misbehaviours/{{name}}", g(set_misbehaviour), methods=["PUT"]),
        Route(f"{base}/assets", g(assets), methods=["GET"]),
        Route(f"{base}/export.har", g(export_har), methods=["GET"]),
        Route(f"{base}/overview", g(overview), methods=["GET"]),
        Route(f"{base}/openapi.json", g(openapi_document), methods=["GET"]),
    ]
