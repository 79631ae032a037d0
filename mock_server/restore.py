"""A restart on the same ``--db`` carries on where the server stopped.

The tasks table is the record of every task: what is still queued goes
back in its device's queue (in order), what was sent and not yet answered
is awaited again (with its deadline), what was answered stays answered (a
second result is a duplicate, not a stranger). The engine is told the same,
so a result for a task sent before the restart is judged against that
task's result schema and accepted. Devices seen before come back with their
first-seen time, peer and versions, their poll counts and last-seen times
counted from the exchanges; downloads completed before count as fetched.
"""

from __future__ import annotations

import json
from typing import Any

from facecert.core.engine import Engine
from facecert.core.rules.conversation import DeviceState, IssuedTask, rid_key
from facecert.core.rules.message import content_issues
from facecert.mock_server.state import (
    ANSWERED_STATES,
    CLIENT_GONE,
    POLL_STARTS_KEPT,
    SENT_STATES,
    DeviceInfo,
    Pending,
    Queued,
    ServerState,
    TaskState,
)
from facecert.mock_server.store import Store


def _body(row: dict[str, Any]) -> Any:
    """The task as it will be sent again: a dict, or the raw bytes."""
    raw = row["body"]
    if row["raw"]:
        return raw if isinstance(raw, bytes) else str(raw or "").encode("utf-8")
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _request_id(row: dict[str, Any], body: Any) -> Any:
    if row["request_id"] is not None and not row["raw"]:
        return row["request_id"]
    try:
        parsed = body if isinstance(body, dict) else json.loads(body)
    except (TypeError, ValueError):
        return None
    return parsed.get("request_id") if isinstance(parsed, dict) else None


def restore(store: Store, state: ServerState, engine: Engine) -> None:
    """Rebuild queues, awaited tasks, devices and the engine's view from the database."""
    for row in store.rows("SELECT * FROM devices ORDER BY device_id"):
        info = DeviceInfo(
            row["device_id"],
            first_seen=row["first_seen"] or 0.0,
            last_seen=row["last_seen"] or 0.0,
            peer=row["peer"] or "",
            polls=row["polls"] or 0,
        )
        try:
            info.versions = dict(json.loads(row["data"] or "{}").get("versions") or {})
        except (ValueError, AttributeError):
            pass
        state.devices[info.device_id] = info
    _restore_polls(store, state)
    for row in store.rows("SELECT * FROM tasks ORDER BY id"):
        body = _body(row)
        rid = _request_id(row, body)
        if row["state"] == TaskState.QUEUED:
            state.queues.push(row["device_id"], Queued(row["id"], rid, row["request_type"], body, bool(row["raw"])))
        elif row["state"] in SENT_STATES and rid_key(rid) is not None:
            _restore_sent(state, engine, row, rid, body)
    for row in store.rows("SELECT started, path FROM downloads WHERE completed = 1 ORDER BY id"):
        engine.fetched.append((row["started"], row["path"]))
    last = store.scalar("SELECT MAX(request_id) FROM tasks WHERE raw = 0 AND typeof(request_id) = 'integer'")
    state.next_rid = int(last or 0) + 1  # generated ids only: a raw task may carry any request_id


def _restore_polls(store: Store, state: ServerState) -> None:
    """Poll counts, last-seen times and the recent poll times (cadence) from the exchanges, the
    authoritative record (a device's row is written when what only it holds changes, not with every poll:
    Platform._device_row): the counts and latest messages in one pass, and each device's latest
    POLL_STARTS_KEPT polls, as SQLite gives them (reading every poll of a long session into one list took
    469 MB to start again on a million polls)."""
    polled = "endpoint = 'taskRequest' AND (error IS NULL OR error != ?)"
    for row in store.rows(
        f"SELECT device_id, SUM(CASE WHEN {polled} THEN 1 ELSE 0 END) AS polls, "
        "MAX(CASE WHEN endpoint IS NOT NULL THEN started END) AS latest FROM exchanges GROUP BY device_id",
        (CLIENT_GONE,),
    ):
        info = state.devices.get(row["device_id"])
        if info is not None:
            info.polls = row["polls"] or 0
            info.last_seen = max(info.last_seen, row["latest"] or 0.0)
    recent = store.rows(
        "SELECT device_id, started FROM (SELECT device_id, started, id, ROW_NUMBER() OVER "
        f"(PARTITION BY device_id ORDER BY id DESC) AS latest FROM exchanges WHERE {polled}) "
        "WHERE latest <= ? ORDER BY id",
        (CLIENT_GONE, POLL_STARTS_KEPT),
    )
    for row in recent:
        info = state.devices.get(row["device_id"])
        if info is not None:
            info.poll_starts.append(row["started"])
            info.last_poll = row["started"]


def _restore_sent(state: ServerState, engine: Engine, row: dict[str, Any], rid: Any, body: Any) -> None:
    key = rid_key(rid)
    assert key is not None
    done = row["state"] in ANSWERED_STATES
    pending = Pending(
        row["id"],
        rid,
        row["request_type"],
        row["device_id"],
        row["sent_at"] or 0.0,
        row["deadline"] or 0.0,
        expired=row["state"] in (TaskState.EXPIRED, TaskState.LATE),
        done=done,
    )
    state.queues.sent(key, pending)
    if not isinstance(body, dict):
        return  # a raw task that is not an object: the engine never knew it as a task either
    schema = (
        engine.contract.all_tasks[row["request_type"]].schema
        if row["request_type"] in engine.contract.all_tasks
        else None
    )
    downloads = content_issues(engine.contract, schema, body, engine.version, "task")[1] if schema else []
    task = IssuedTask(
        task=row["request_type"],
        rid=rid,
        device_id=row["device_id"],
        exchange=-1,
        issued_at=pending.sent_at,
        payload=body,
        downloads=downloads,
        missing_reported=pending.expired,
        result_code=row["result_code"],
    )
    if done:
        task.settle()  # answered before the restart: as the engine keeps an answered task (no body)
    engine.issued[key] = task
    device = engine.devices.setdefault(row["device_id"], DeviceState(row["device_id"]))
    (device.finished if done else device.outstanding)[key] = task
