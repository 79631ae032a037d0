"""What the live page shows beyond the raw tables: the server's settings (so a
device at another time scale is explained, not just flagged), the cadence
windows the engine accepts, a compact timeline of each device's exchanges, and
the findings grouped by rule.

Everything is read from the platform (config, engine, store): the page draws,
it never re-computes a window or a count.
"""

from __future__ import annotations

from typing import Any

from facecert.core.jsonsafe import loads_strict
from facecert.mock_server.platform import Platform
from facecert.mock_server.store import decode_json_columns
from facecert.reports.cadence_svg import cadence_windows

TIMELINE_DEVICES = 20  # devices with a timeline: the most recently seen
TIMELINE_LENGTH = 80  # exchanges per device timeline
DETAIL_FIELDS, DETAIL_CHARS = 6, 60  # of an alarm or GPS body, on the timeline


def server_info(p: Platform) -> dict[str, Any]:
    cfg = p.engine_config
    return {
        "profile": cfg.profile,
        "protocol_version": p.version,
        "time_scale": cfg.time_scale,
        "tolerance": cfg.tolerance,
        "allowance_s": cfg.allowance_s,
        "devices": len(p.devices_seen),
        "result_timeout_s": p.result_timeout(),
    }


def _json(column: str, path: str) -> str:
    """A value inside a stored JSON column, NULL when the column holds no JSON object."""
    return (
        f"CASE WHEN json_valid({column}) AND json_type({column}) = 'object' THEN json_extract({column}, '{path}') END"
    )


def timeline(p: Platform, device_id: str, limit: int = TIMELINE_LENGTH) -> list[dict[str, Any]]:
    """The device's latest exchanges, each with what it carried: the task a poll brought, a result's
    code, a capture (and whether it has an image), an alarm's or a GPS report's own fields."""
    rows = p.store.rows(
        f"SELECT e.id, e.endpoint, e.started, e.ended, e.status, e.error, "
        f"{_json('e.response_json', '$.request_type')} AS task, {_json('e.response_json', '$.request_id')} AS rid, "
        f"r.request_type AS result_task, r.request_id AS result_rid, r.code AS code, "
        f"c.id AS capture_id, (c.image IS NOT NULL OR c.image_in_request = 1) AS has_image, "
        f"COALESCE(a.body, g.body) AS body "
        f"FROM exchanges e LEFT JOIN results r ON r.exchange_id = e.id LEFT JOIN captures c ON c.exchange_id = e.id "
        f"LEFT JOIN alarms a ON a.exchange_id = e.id LEFT JOIN gps g ON g.exchange_id = e.id "
        f"WHERE e.device_id = ? ORDER BY e.id DESC LIMIT ?",
        (device_id, int(limit)),
    )
    return [_entry(row) for row in rows[::-1]]


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    entry = {k: row[k] for k in ("id", "endpoint", "started", "ended", "status", "error")}
    if row["endpoint"] == "taskRequest":
        entry.update(task=row["task"], request_id=row["rid"])
    elif row["result_rid"] is not None or row["code"] is not None:
        entry.update(task=row["result_task"], request_id=row["result_rid"], code=row["code"])
    if row["capture_id"] is not None:
        entry.update(capture_id=row["capture_id"], has_image=bool(row["has_image"]))
    if row["body"]:
        entry["detail"] = _detail(row["body"])
    return entry


def _detail(text: str) -> dict[str, Any]:
    """A report's own short fields (not the device's identity or versions, not an image): what the
    timeline shows of an alarm or a GPS report, whatever fields its release names."""
    try:
        body = loads_strict(text)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(body, dict):
        return {}
    short = {
        k: v
        for k, v in body.items()
        if isinstance(v, (str, int, float, bool))
        and not k.startswith("device_")
        and "version" not in k
        and len(str(v)) <= DETAIL_CHARS
    }  # versions: in the device's row
    return dict(list(short.items())[:DETAIL_FIELDS])


def finding_groups(p: Platform) -> list[dict[str, Any]]:
    """Findings by rule (and severity, party): how many, on which devices, and the latest one."""
    groups = p.store.rows(
        "SELECT rule, severity, party, COUNT(*) AS count, MAX(id) AS last_id, "
        "COUNT(DISTINCT device_id) AS devices FROM findings GROUP BY rule, severity, party "
        "ORDER BY CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, count DESC"
    )
    latest = _findings_by_id(p, [g["last_id"] for g in groups])
    for group in groups:
        example = latest.get(group.pop("last_id"), {})
        group["latest"] = {
            k: example.get(k) for k in ("message", "device_id", "exchange_id", "created", "time") if k in example
        }
    return groups


def _findings_by_id(p: Platform, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = p.store.rows(
        f"SELECT id, exchange_id, created, data FROM findings WHERE id IN ({','.join('?' * len(ids))})", ids
    )
    return {
        r["id"]: {**r["data"], "exchange_id": r["exchange_id"], "created": r["created"]}
        for r in map(decode_json_columns, rows)
        if isinstance(r["data"], dict)
    }


def live_view(p: Platform) -> dict[str, Any]:
    devices = sorted(p.devices(), key=lambda d: d.get("last_seen") or 0, reverse=True)[:TIMELINE_DEVICES]
    return {
        "server": server_info(p),
        "windows": cadence_windows(p.engine),
        "idle_task": p.contract.idle_task,
        "timelines": {d["device_id"]: timeline(p, d["device_id"]) for d in devices},
        "finding_groups": finding_groups(p),
    }
