"""Steps of features/device/13_security.feature: names the server sends that a
device must not follow as paths (errata #28). The harness queues them raw (the
contract refuses them: a server sending one breaks MSG-FORMAT) and judges the
refusal; the queueing and waiting helpers are those of device_steps."""

from __future__ import annotations

from typing import Any

from pytest_bdd import parsers, then, when

from facecert.steps.common import attach_json, checks, fail
from facecert.steps.device_steps import _queue, _raw_task, _result


@when(parsers.parse('the server asks for the log file "{name}"'))
def asks_for_log_path(cert: Any, scn: dict[str, Any], name: str) -> None:
    scn["log_name"] = name
    _queue(cert, scn, _raw_task(cert, "getLogFile", log_name=name), raw=True)


@then("the device refuses it with no file content in log_info")
def refuses_without_content(cert: Any, scn: dict[str, Any]) -> None:
    checks(scn, "TASK-NOT-REFUSED")
    row = _result(cert, scn)
    body = row.get("body") or {}
    content = body.get("log_info")
    attach_json("getLogFile result", body)
    name = scn["log_name"]
    if row["code"] in (0, None):
        fail(
            "TASK-NOT-REFUSED",
            f"log_name {name!r} is a path, not a file name: a conforming device refuses it "
            f"(a non-zero code); the device reported code {row['code']} with {len(str(content or ''))} characters "
            "of log_info",
        )
    if content not in (None, ""):
        fail(
            "TASK-NOT-REFUSED",
            f"the device refused log_name {name!r} (code {row['code']}) but its log_info "
            f"carries {len(str(content))} characters (starts {str(content)[:40]!r}): a refusal returns no file "
            "content",
        )
