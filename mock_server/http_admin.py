"""The control API (``/_admin/...``, JSON), a thin layer over the Platform
methods the Python API calls too. Documented by :mod:`mock_server.openapi`."""

from __future__ import annotations

import hmac
import io
import json
from typing import Any, Awaitable, Callable

from PIL import Image, UnidentifiedImageError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from facecert.captures.har import exchanges_to_har

from mock_server.faults import FAULT_KINDS, FaultError
from mock_server.http_device import read_capped
from mock_server.misbehaviours import MISBEHAVIOURS
from mock_server.platform import Platform, Rejected
from mock_server.store import row_to_exchange

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def authorised(platform: Platform, request: Request) -> bool:
    token = platform.config.admin_token
    if not token:
        return True
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip() \
        or request.headers.get("x-admin-token", "") or request.query_params.get("token", "")
    return hmac.compare_digest(given.encode(), token.encode())


async def json_body(platform: Platform, request: Request) -> Any:
    raw, too_large = await read_capped(request, platform.config.max_body)
    if too_large:
        raise Rejected(f"the body is larger than {platform.config.max_body:,} bytes")
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise Rejected("the body nests too deeply") from None


def guarded(platform: Platform, handler: Callable[[Platform, Request], Awaitable[Any]], status: int = 200) -> Handler:
    """Token check, JSON encoding and clear 4xx for every admin call."""
    async def endpoint(request: Request) -> Response:
        if not authorised(platform, request):
            return error(401, "admin token required (Authorization: Bearer TOKEN, X-Admin-Token or ?token=)")
        try:
            result = await handler(platform, request)
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
        return JSONResponse(result, status_code=status)
    return endpoint


def _device(request: Request) -> str | None:
    return request.query_params.get("device_id") or None


async def list_devices(p: Platform, r: Request) -> Any:
    return p.devices()


async def read_queue(p: Platform, r: Request) -> Any:
    return p.queue(r.path_params["device_id"])


async def enqueue(p: Platform, r: Request) -> Any:
    body = await json_body(p, r)
    if not isinstance(body, dict) or "task" not in body:
        raise Rejected('send {"task": {...}, "raw": false}')
    raw = body.get("raw", False)
    if not isinstance(raw, bool):
        raise Rejected("raw must be true or false")
    rid = p.enqueue(r.path_params["device_id"], body["task"], raw=raw)
    return JSONResponse({"request_id": rid, "device_id": r.path_params["device_id"]}, status_code=201)


async def results(p: Platform, r: Request) -> Any:
    return p.results(_device(r))


async def captures(p: Platform, r: Request) -> Any:
    return p.captures(_device(r))


async def capture_image(p: Platform, r: Request) -> Any:
    try:
        capture_id = int(r.path_params["capture_id"])
    except ValueError:
        raise KeyError(r.path_params["capture_id"]) from None
    data = p.capture_image(capture_id)
    if not data:
        raise KeyError(f"capture {capture_id} image")
    size = r.query_params.get("size", "")
    if not size:
        return Response(data, media_type="image/jpeg")
    try:
        edge = max(8, min(1024, int(size)))
        image = Image.open(io.BytesIO(data))
        image.thumbnail((edge, edge))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=80)
    except (ValueError, OSError, UnidentifiedImageError) as exc:
        raise Rejected(f"capture {capture_id} image cannot be decoded: {exc}") from None
    return Response(out.getvalue(), media_type="image/jpeg")


async def alarms(p: Platform, r: Request) -> Any:
    return p.alarms(_device(r))


async def gps(p: Platform, r: Request) -> Any:
    return p.gps(_device(r))


async def downloads(p: Platform, r: Request) -> Any:
    return p.downloads()


async def tasks(p: Platform, r: Request) -> Any:
    return [{k: v for k, v in t.items()} for t in p.tasks(_device(r))]


async def findings(p: Platform, r: Request) -> Any:
    return p.findings(_device(r), r.query_params.get("party") or None)


async def exchanges(p: Platform, r: Request) -> Any:
    limit = r.query_params.get("limit")
    return p.exchanges(_device(r), int(limit) if limit and limit.isdigit() else None)


async def list_faults(p: Platform, r: Request) -> Any:
    with p.cond:
        return {"active": [f.to_dict() for f in p.faults],
                "kinds": {k: {"defaults": d, "description": text} for k, (d, text) in FAULT_KINDS.items()}}


async def set_fault(p: Platform, r: Request) -> Any:
    body = await json_body(p, r)
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise Rejected('send {"kind": "outage|slow|error|malformed", "device_id": null, ...}')
    params = {k: v for k, v in body.items() if k not in ("kind", "device_id", "endpoints", "duration")}
    return JSONResponse(p.set_fault(body["kind"], body.get("device_id"), body.get("endpoints"),
                                    body.get("duration"), **params), status_code=201)


async def clear_faults(p: Platform, r: Request) -> Any:
    p.clear_faults(_device(r))
    return {"active": []}


async def list_misbehaviours(p: Platform, r: Request) -> Any:
    return [{"name": m.name, "rule": m.rule, "description": m.description, "on": p.misbehaves(m.name)}
            for m in MISBEHAVIOURS.values()]


async def set_misbehaviour(p: Platform, r: Request) -> Any:
    body = await json_body(p, r)
    on = body.get("on", True) if isinstance(body, dict) else None
    if not isinstance(on, bool):
        raise Rejected('send {"on": true} or {"on": false}')
    name = r.path_params["name"]
    if name not in MISBEHAVIOURS:
        raise KeyError(f"misbehaviour {name}")
    p.set_misbehaviour(name, on)
    return {"name": name, "on": on}


async def assets(p: Platform, r: Request) -> Any:
    return [{"name": n, "url": p.asset_url(n)} for n in p.assets.names()]


async def export_har(p: Platform, r: Request) -> Any:
    rows = p.store.rows("SELECT * FROM exchanges ORDER BY id")
    return exchanges_to_har([row_to_exchange(row) for row in rows], creator="facecert mock server")


async def overview(p: Platform, r: Request) -> Any:
    """Everything the live page shows, in one call."""
    return {"devices": p.devices(), "queues": {d["device_id"]: p.queue(d["device_id"]) for d in p.devices()},
            "exchanges": p.exchanges(limit=40), "findings": p.findings(limit=60), "captures": p.captures(limit=12),
            "downloads": p.downloads(limit=20), "misbehaving": sorted(p.misbehaving),
            "faults": [f.to_dict() for f in p.faults]}


async def openapi_document(p: Platform, r: Request) -> Any:
    from mock_server.openapi import admin_openapi

    return admin_openapi()


def admin_routes(platform: Platform) -> list[Route]:
    base = f"{platform.prefix}/_admin"
    g = lambda handler, status=200: guarded(platform, handler, status)  # noqa: E731
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
        Route(f"{base}/faults", g(list_faults), methods=["GET"]),
        Route(f"{base}/faults", g(set_fault), methods=["POST"]),
        Route(f"{base}/faults", g(clear_faults), methods=["DELETE"]),
        Route(f"{base}/misbehaviours", g(list_misbehaviours), methods=["GET"]),
        Route(f"{base}/misbehaviours/{{name}}", g(set_misbehaviour), methods=["PUT"]),
        Route(f"{base}/assets", g(assets), methods=["GET"]),
        Route(f"{base}/export.har", g(export_har), methods=["GET"]),
        Route(f"{base}/overview", g(overview), methods=["GET"]),
        Route(f"{base}/openapi.json", g(openapi_document), methods=["GET"]),
    ]
