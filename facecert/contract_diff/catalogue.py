"""The messages of one contract (who sends which schema, from the catalogue) and the
changes of the catalogue itself: tasks and endpoints added, removed or moved."""

from __future__ import annotations

from facecert.contract_diff.model import BOTH, LOOSENING, TIGHTENING, Change, Message, Side


def messages(side: Side) -> dict[str, Message]:
    """Every schema sent on the wire at this side's version: endpoint requests (the device),
    endpoint answers and tasks (the server), task results (the device)."""
    contract, version = side.contract, side.version
    found: dict[str, Message] = {}
    for endpoint in contract.endpoints(version).values():
        found.setdefault(endpoint.request, Message(endpoint.request, "device", f"{endpoint.name} request"))
        if endpoint.answer in contract.raw:
            found.setdefault(endpoint.answer, Message(endpoint.answer, "server", f"{endpoint.name} answer"))
    for task in contract.tasks(version).values():
        found.setdefault(task.schema, Message(task.schema, "server", f"{task.name} task"))
        if task.result:
            found.setdefault(task.result, Message(task.result, "device", f"{task.name} result"))
    return found


def catalogue_changes(old: Side, new: Side) -> list[Change]:
    """Tasks a server may send and endpoints a device may post to, added or removed."""
    changes: list[Change] = []
    tasks_old, tasks_new = old.contract.tasks(old.version), new.contract.tasks(new.version)
    for name in sorted(tasks_new.keys() - tasks_old.keys()):
        task = tasks_new[name]
        changes.append(
            Change(
                task.schema,
                "server",
                "task added",
                "/request_type",
                None,
                name,
                LOOSENING,
                f"servers may send {name}; devices must carry it out"
                + (f" and answer with {task.result}" if task.result else ""),
            )
        )
    for name in sorted(tasks_old.keys() - tasks_new.keys()):
        task = tasks_old[name]
        changes.append(
            Change(
                task.schema,
                "server",
                "task removed",
                "/request_type",
                name,
                None,
                TIGHTENING,
                f"servers may no longer send {name}",
            )
        )
    ends_old, ends_new = old.contract.endpoints(old.version), new.contract.endpoints(new.version)
    for name in sorted(ends_new.keys() - ends_old.keys()):
        endpoint = ends_new[name]
        changes.append(
            Change(
                endpoint.request,
                "device",
                "endpoint added",
                endpoint.path,
                None,
                endpoint.path,
                LOOSENING,
                f"devices may post {name} to {endpoint.path}; servers must answer it",
            )
        )
    for name in sorted(ends_old.keys() - ends_new.keys()):
        endpoint = ends_old[name]
        changes.append(
            Change(
                endpoint.request,
                "device",
                "endpoint removed",
                endpoint.path,
                endpoint.path,
                None,
                TIGHTENING,
                f"devices may no longer post {name} to {endpoint.path}",
            )
        )
    for name in sorted(ends_old.keys() & ends_new.keys()):
        before, after = ends_old[name], ends_new[name]
        if before.path != after.path:
            changes.append(
                Change(
                    after.request,
                    "device",
                    "endpoint path",
                    after.path,
                    before.path,
                    after.path,
                    BOTH,
                    f"{name} moved from {before.path} to {after.path}",
                )
            )
        for role, a, b, sender in (
            ("request", before.request, after.request, "device"),
            ("answer", before.answer, after.answer, "server"),
        ):
            if a != b:
                changes.append(
                    Change(b, sender, f"{role} schema", "/", a, b, BOTH, f"the {name} {role} is now {b} (was {a})")
                )
    for name in sorted(tasks_old.keys() & tasks_new.keys()):
        was, now = tasks_old[name], tasks_new[name]
        if was.schema != now.schema:
            changes.append(
                Change(
                    now.schema,
                    "server",
                    "task schema",
                    "/",
                    was.schema,
                    now.schema,
                    BOTH,
                    f"the {name} task is now {now.schema} (was {was.schema})",
                )
            )
        if was.result != now.result:
            changes.append(
                Change(
                    now.result or was.result or "",
                    "device",
                    "result schema",
                    "/",
                    was.result,
                    now.result,
                    BOTH,
                    f"the result of {name} is now {now.result} (was {was.result})",
                )
            )
    return changes
