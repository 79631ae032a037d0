"""Task bodies for the plans: the repaired examples of the document, with
fresh user ids and their download URLs pointed at the assets a server
actually serves. The contract's annotations say which fields are downloads."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.core.rules.message import resolve_pointer

_ids = itertools.count(1)


def unique_user_id(prefix: str = "fc") -> str:
    return f"{prefix}{next(_ids):06d}"


def task_body(name: str, asset_url: Callable[[str], str] | None, fresh_users: bool = True) -> dict[str, Any]:
    """The example task ``name``, ready to queue (request_id is the server's business).

    ``asset_url(file name) -> URL`` says where the server serves the files
    the task points to; None keeps the document's URLs (abc.com), for a
    platform that fills in its own."""
    contract = get_contract()
    task = contract.all_tasks[name]
    body = example_for(task.schema)  # keeps its request_id until the annotations are read: they need a valid body
    if isinstance(body.get("user_list"), list):
        # the document's second example user is a face user (user_type 0) without a face: a device
        # rightly refuses it, so the plans send only users a conforming device can accept
        body["user_list"] = [u for u in body["user_list"] if u.get("image_content") or u.get("user_type") == 1]
    if fresh_users and isinstance(body.get("user_list"), list):
        for user in body["user_list"]:
            user["user_id"] = unique_user_id()
    if asset_url is not None:
        point_downloads_at(body, task.schema, asset_url)
        left = [u for u in download_urls(body, task.schema) if not u.startswith(asset_url(""))]
        if left:  # the examples name abc.com: never let a test device fetch from the outside world
            raise RuntimeError(f"{name}: download URLs not pointed at the served assets: {left}")
    body.pop("request_id", None)
    return body


def point_downloads_at(body: dict[str, Any], schema: str, asset_url: Callable[[str], str]) -> list[str]:
    """Replace every non-empty download URL (x-download) with the served asset of that kind."""
    from facecert.mock_server.assets import DEFAULT_FOR_KIND

    contract = get_contract()
    replaced = []
    for pointer, notes in list(contract.annotations(schema, body)):
        kind = notes.get("x-download")
        value = resolve_pointer(body, pointer)
        if kind and isinstance(value, str) and value:
            url = asset_url(DEFAULT_FOR_KIND[kind])
            _set(body, pointer, url)
            replaced.append(url)
    return replaced


def download_urls(body: dict[str, Any], schema: str) -> list[str]:
    """The URLs a task makes the device fetch (read from the schema's x-download annotations)."""
    contract = get_contract()
    probe = {"request_id": 0, **body}  # annotations come only from a valid body
    return [
        resolve_pointer(probe, p)
        for p, notes in contract.annotations(schema, probe)
        if notes.get("x-download") and resolve_pointer(probe, p)
    ]


def _set(doc: Any, pointer: str, value: Any) -> None:
    parts = [p for p in pointer.split("/") if p]
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
