"""The live page (GET /): plain HTML and a little JS polling the admin JSON.
No external resources, so it works on an isolated bench."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib.resources import files

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from facecert.mock_server.control_guard import ControlGuard, Refusal
from facecert.mock_server.http_admin import authorised, read_capped, store_refusal
from facecert.mock_server.platform import Platform

_TEMPLATE = files("facecert.mock_server").joinpath("page.html").read_text(encoding="utf-8")


# The page is never framed by another site, and loads nothing from elsewhere.
PAGE_HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'self'; img-src 'self'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; frame-ancestors 'none'",
}


# A tiny icon (a face in a square), so a browser's /favicon.ico is answered and not a 404 on record.
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    b'fill="#2563eb"/><circle cx="8" cy="6.5" r="3" fill="#fff"/><path d="M3 15c0-3 2.2-4.5 5-4.5s5 1.5 5 4.5z" '
    b'fill="#fff"/></svg>'
)


async def favicon(request: Request) -> Response:
    """The icon: nothing about the server in it, so no token is asked (browsers send none for it)."""
    return Response(
        FAVICON,
        media_type="image/svg+xml",
        headers={"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"},
    )


def page_handler(platform: Platform, guard: ControlGuard) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of the page."""
    html = _TEMPLATE.replace("__PREFIX__", json.dumps(platform.prefix))

    async def page(request: Request) -> Response:
        refusal = guard.refusal(request)
        if refusal is None and not authorised(platform, request):
            refusal = Refusal(401, "admin token required (?token=...)")
        if refusal is not None:
            raw, _ = await read_capped(request, platform.config.max_body)
            return await run_in_threadpool(store_refusal, platform, request, raw, refusal)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    return page
