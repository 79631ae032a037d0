"""Trigger files: how to make the platform under test queue each task.

A platform can only be made to send a task by its own UI or API. The
trigger file (YAML) says, per task, either an HTTP call or ``manual`` (the
suite tells the operator what to do and waits with a countdown).

    assets: "{server}/assets"        # optional: where the platform serves files tasks point to
    tasks:
      addUser:
        http:
          method: POST
          url: "{server}/_admin/devices/{device_id}/tasks"
          json: {task: "{example}"}  # "{example}": the repaired example of the task
      upgrade: manual                # or {manual: "what to click"}

Placeholders: {server} (the --url), {device_id} (the harness device),
{example} (a JSON value: the task's repaired example, download URLs pointed
at `assets` when given).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from facecert.certify.plan import task_body
from facecert.core.contract import get_contract


class TriggerError(ValueError):
    """A trigger file that cannot be used, or a trigger that failed."""


@dataclass
class Trigger:
    task: str
    manual: str | None = None
    http: dict[str, Any] | None = None


class Triggers:
    def __init__(self, data: dict[str, Any], source: str = "trigger file") -> None:
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
            raise TriggerError(f"{source}: needs a `tasks:` mapping of task name -> http call or manual")
        known = get_contract().all_tasks
        self.assets: str | None = data.get("assets")
        self.items: dict[str, Trigger] = {}
        for name, spec in data["tasks"].items():
            if name not in known:
                raise TriggerError(f"{source}: {name!r} is not a task of the protocol ({', '.join(known)})")
            if spec == "manual" or (isinstance(spec, dict) and "manual" in spec):
                text = spec.get("manual") if isinstance(spec, dict) else None
                self.items[name] = Trigger(name, manual=text or f"make the platform queue {name} for the device")
            elif isinstance(spec, dict) and isinstance(spec.get("http"), dict) and spec["http"].get("url"):
                self.items[name] = Trigger(name, http=spec["http"])
            else:
                raise TriggerError(f"{source}: {name}: give `http: {{method, url, json}}` or `manual`")

    @classmethod
    def load(cls, path: Path) -> Triggers:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise TriggerError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise TriggerError(f"{path}: not YAML ({exc})") from None
        return cls(data, str(path))

    def get(self, task: str) -> Trigger:
        if task not in self.items:
            raise TriggerError(f"the trigger file says nothing about {task}: add it (http call or manual)")
        return self.items[task]

    def any_task(self) -> str:
        """For scenarios that need some task but not a particular one: one the file can
        queue over HTTP (getDevStatus when it can: it changes nothing on the device)."""
        http = [name for name, trigger in self.items.items() if trigger.http is not None]
        for choice in (["getDevStatus"] if "getDevStatus" in http else []) + http + list(self.items):
            return choice
        raise TriggerError("the trigger file names no task at all")

    def fire_http(self, trigger: Trigger, server: str, device_id: str, client: httpx.Client) -> httpx.Response:
        assert trigger.http is not None
        fill = {"server": server.rstrip("/"), "device_id": device_id}
        assets = self.assets.format(**fill) if self.assets else None
        example = task_body(trigger.task, (lambda name: f"{assets}/{name}") if assets else None)
        spec = _substitute(trigger.http, fill, example)
        try:
            response = client.request(
                spec.get("method", "POST"), spec["url"], json=spec.get("json"), headers=spec.get("headers"), timeout=30
            )
        except httpx.HTTPError as exc:
            raise TriggerError(f"trigger for {trigger.task}: {spec['url']} failed: {exc}") from None
        if response.status_code >= 400:
            raise TriggerError(
                f"trigger for {trigger.task}: {spec['url']} answered {response.status_code}: {response.text[:300]}"
            )
        return response


def _substitute(value: Any, fill: dict[str, str], example: Any) -> Any:
    if isinstance(value, str):
        if value == "{example}":
            return example
        return value.format(**fill)
    if isinstance(value, dict):
        return {k: _substitute(v, fill, example) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, fill, example) for v in value]
    return value
