"""The live page (GET /): plain HTML and a little JS polling the admin JSON.
No external resources, so it works on an isolated bench."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from mock_server.http_admin import authorised
from mock_server.platform import Platform

_TEMPLATE = (Path(__file__).with_name("page.html")).read_text(encoding="utf-8")


def page_handler(platform: Platform):  # noqa: ANN201 - a Starlette endpoint
    html = _TEMPLATE.replace("__PREFIX__", json.dumps(platform.prefix))

    async def page(request: Request) -> Response:
        if not authorised(platform, request):
            return JSONResponse({"error": "admin token required (?token=...)"}, status_code=401)
        return HTMLResponse(html, headers={"cache-control": "no-store"})
    return page
