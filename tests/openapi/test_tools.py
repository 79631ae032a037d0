"""The OpenAPI documents in the tools people use (tools/openapi, installed by
``make venv``): Prism's validation proxy in front of a real ``facecert serve``
while the reference device runs every task, Redocly lint, and
openapi-spec-validator. Everything on 127.0.0.1, ephemeral ports. Each check
is also shown catching a real fault, so "0 violations" is a finding and not
an unread log."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from facecert.core.contract import get_contract
from facecert.core.examples import example_for, load_examples
from facecert.mock_device import Device, DeviceConfig
from facecert.mock_device.messages import CAPTURE_KINDS
from tests.hostile.conftest import FACECERT, ROOT, ServeProcess
from tests.server.helpers import local_downloads, poll_body
from tests.support import SCALE

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # Prism and Redocly (Node): not in make test-fast

TOOLS = ROOT / "tools" / "openapi"
BIN = TOOLS / "node_modules" / ".bin"
FLAGS = {"device": (), "closed": ("--closed",), "admin": ("--admin",)}
ENV = {
    **os.environ,
    "REDOCLY_TELEMETRY": "off",
    "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    "NO_UPDATE_NOTIFIER": "1",
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
    "npm_config_cache": str(ROOT / ".cache" / "npm"),
}
MARK = "/facecert-log-mark-"  # an undocumented path: where Prism's log is read up to
LISTENING = re.compile(r"Prism is listening on (http://127\.0\.0\.1:\d+)")
CONTRACT = get_contract()


@pytest.fixture(scope="session")
def tools() -> Path:
    """tools/openapi's binaries: ``make venv`` installs them; a bare pytest run installs them the same way."""
    if not ((BIN / "prism").exists() and (BIN / "redocly").exists()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("tools/openapi needs Node.js and npm (apt-get install nodejs npm)")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=TOOLS,
            env=ENV,
            check=True,
            timeout=600,
            capture_output=True,
        )
    return BIN


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three documents as a user gets them: from the CLI."""
    folder = tmp_path_factory.mktemp("openapi")
    paths = {}
    for name, flags in FLAGS.items():
        paths[name] = folder / f"{name}.json"
        subprocess.run(
            [str(FACECERT), "openapi", *flags, "-o", str(paths[name])], check=True, capture_output=True, timeout=120
        )
    return paths


# ---- openapi-spec-validator and Redocly -------------------------------------------------------
@pytest.mark.parametrize("name", list(FLAGS))
def test_openapi_spec_validator_accepts_every_document(documents: dict[str, Path], name: str) -> None:
    validate(json.loads(documents[name].read_text(encoding="utf-8")))


def redocly(tools: Path, document: Path) -> dict[str, Any]:
    """Redocly's JSON report of one document (the recommended rules; tools/openapi/redocly.yaml)."""
    result = subprocess.run(
        [str(tools / "redocly"), "lint", "--config", str(TOOLS / "redocly.yaml"), "--format=json", str(document)],
        capture_output=True,
        text=True,
        timeout=180,
        env=ENV,
        cwd=TOOLS,
    )
    try:
        return json.loads(result.stdout)
    except ValueError:
        pytest.fail(
            f"redocly printed no report (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )


@pytest.mark.parametrize("name", list(FLAGS))
def test_redocly_lint_finds_nothing(tools: Path, documents: dict[str, Path], name: str) -> None:
    report = redocly(tools, documents[name])
    problems = [(p["ruleId"], p["severity"], p["message"]) for p in report["problems"]]
    assert report["totals"]["errors"] == 0 and report["totals"]["warnings"] == 0, problems


def test_redocly_lint_catches_what_the_issue_found(tools: Path, documents: dict[str, Path], tmp_path: Path) -> None:
    """The control: without operation security and licence, the errors and warnings of the issue."""
    document = json.loads(documents["device"].read_text(encoding="utf-8"))
    del document["info"]["license"]
    for operations in document["paths"].values():
        del operations["post"]["security"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document), encoding="utf-8")
    report = redocly(tools, broken)
    rules = [p["ruleId"] for p in report["problems"]]
    assert rules.count("security-defined") == len(CONTRACT.all_endpoints) and "info-license" in rules
    assert report["totals"]["errors"] == len(CONTRACT.all_endpoints)


# ---- Prism's validation proxy ------------------------------------------------------------------
class Prism:
    """``prism proxy`` in front of a server, on 127.0.0.1 and a port it picks (-p 0), its log in a file."""

    def __init__(self, tools: Path, document: Path, upstream: str, log: Path) -> None:
        self.argv = [str(tools / "prism"), "proxy", str(document), upstream, "-h", "127.0.0.1", "-p", "0"]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._syncs = 0

    def start(self, timeout: float = 90.0) -> Prism:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=ENV, cwd=TOOLS
            )
        found = wait_for(lambda: LISTENING.search(self.text()), timeout, "Prism listening", self.proc)
        self.url = found.group(1)
        return self

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def lines(self) -> list[str]:
        """The log up to now: a request of its own, logged after everything before it, marks the end.
        The lines of earlier marks are left out (Prism warns that their route is not documented)."""
        self._syncs += 1
        mark = f"{MARK}{self._syncs}"
        httpx.get(self.url + mark, timeout=10)
        wait_for(lambda: mark in self.text(), 30, "Prism's log", self.proc)
        kept, in_mark = [], False
        for line in self.text().split(mark, 1)[0].splitlines():
            if "[HTTP SERVER]" in line:
                in_mark = MARK in line
            if not in_mark:
                kept.append(line)
        return kept

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def violations(lines: list[str]) -> list[str]:
    """Prism's validation findings (``[VALIDATOR] ✖ error Violation: ...``, warnings too)."""
    return [line for line in lines if "[VALIDATOR]" in line or "Violation:" in line]


def posted(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines if (m := re.search(r"\[HTTP SERVER\] post (/\S+)", line))}


def wait_for(probe: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> Any:
    """The first true value of ``probe`` within ``timeout`` seconds (a process log or a server's state:
    nothing to block on across processes, so it is polled every 50 ms)."""
    deadline, pause = time.monotonic() + timeout, threading.Event()
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended with {proc.returncode}")
        pause.wait(0.05)
    pytest.fail(f"{what}: nothing within {timeout} s")


@pytest.fixture(scope="module")
def stack(
    tools: Path, documents: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """``facecert serve`` with a Prism proxy per document (open and closed) in front of it."""
    folder = tmp_path_factory.mktemp("prism")
    server = ServeProcess(folder / "serve", "--time-scale", str(SCALE)).start()
    proxies: dict[str, Prism] = {}
    try:
        for name in ("device", "closed"):
            proxies[name] = Prism(tools, documents[name], server.url, folder / f"prism-{name}.log").start()
        yield {"server": server, **proxies}
    finally:
        for proxy in proxies.values():
            proxy.stop()
        server.stop()


def queue_every_task(server: ServeProcess, device_id: str, prism: Prism) -> list[str]:
    """Every task a platform can send, from its repaired example: downloads from the server's assets,
    setPlatformServer naming the proxy itself (the device moves to where it already is)."""
    names = []
    here = prism.url.removeprefix("http://")
    for task in CONTRACT.tasks().values():
        if task.name == CONTRACT.idle_task:
            continue
        body = example_for(task.schema)
        local_downloads(body, lambda name: f"{server.url}/assets/{name}")
        if task.name == "setPlatformServer":
            body.update(serverAddr=here, wsServerAddr=here)
        made = httpx.post(f"{server.url}/_admin/devices/{device_id}/tasks", json={"task": body}, timeout=10)
        assert made.status_code == 201, made.text
        names.append(task.name)
    return names


def test_prism_sees_no_violation_while_the_reference_device_runs_every_task(stack: dict[str, Any]) -> None:
    server, prism = stack["server"], stack["device"]
    device_id = "PRISM00000000001"
    queued = queue_every_task(server, device_id, prism)
    alarm_types = [e.body["alarm_type"] for e in load_examples() if e.schema == "device/deviceAlarm"]
    config = DeviceConfig(server=prism.url, device_id=device_id, time_scale=SCALE, persona="field")
    with Device(config) as device:
        device.gps_start()
        for kind in CAPTURE_KINDS:
            device.capture_now(kind)
        for alarm_type in alarm_types:
            device.alarm(alarm_type)

        def finished() -> list[dict[str, Any]] | None:
            tasks = httpx.get(f"{server.url}/_admin/tasks", params={"device_id": device_id}, timeout=10).json()
            return tasks if tasks and all(t["state"] not in ("queued", "sent") for t in tasks) else None

        tasks = wait_for(finished, 120, "every task's result")
        wait_for(
            lambda: httpx.get(f"{server.url}/_admin/gps", params={"device_id": device_id}, timeout=10).json(),
            30,
            "a gpsReport",
        )
    assert sorted(t["request_type"] for t in tasks) == sorted(queued)
    assert [(t["request_type"], t["state"]) for t in tasks if t["state"] != "done"] == []
    lines = prism.lines()
    assert violations(lines) == [], "\n".join(violations(lines)[:40])
    assert posted(lines) == {e.path for e in CONTRACT.all_endpoints.values()}, "every endpoint through Prism"
    results = httpx.get(f"{server.url}/_admin/results", params={"device_id": device_id}, timeout=10).json()
    assert len(results) == len(queued)


def test_prism_reports_a_broken_task_by_its_own_schema(stack: dict[str, Any]) -> None:
    """The control for answers: a broken idleTime is told in a line or two (no oneOf noise)."""
    server, prism = stack["server"], stack["device"]
    before = len(violations(prism.lines()))
    switch = f"{server.url}/_admin/misbehaviours/idle-without-time-stamp"
    assert httpx.put(switch, json={"on": True}, timeout=10).status_code == 200
    try:
        assert httpx.post(prism.url + "/taskRequest", json=poll_body("PRISMCONTROL0001"), timeout=10).status_code == 200
    finally:
        httpx.put(switch, json={"on": False}, timeout=10)
    answer = violations(prism.lines())[before:]
    assert answer and all("response.body" in line for line in answer) and len(answer) <= 3, answer
    assert any("time_stamp" in line for line in answer)


@pytest.mark.parametrize("endpoint", list(CONTRACT.all_endpoints))
def test_prism_checks_every_request(stack: dict[str, Any], endpoint: str) -> None:
    """The control for requests, per endpoint: Prism stops validating a request whose schema it cannot
    compile, without a word (it did for /taskRequest and /taskResult while VendorValue referred to itself)."""
    prism = stack["device"]
    before = len(violations(prism.lines()))
    broken = example_for(CONTRACT.all_endpoints[endpoint].request)
    broken["device_id"] = 5
    httpx.post(prism.url + CONTRACT.all_endpoints[endpoint].path, json=broken, timeout=10)
    found = violations(prism.lines())[before:]
    assert any("request.body.device_id" in line for line in found), found


def test_closed_document_rejects_vendor_fields_the_open_one_accepts(stack: dict[str, Any]) -> None:
    extras = CONTRACT.vendor_extras["taskRequest"]
    body = {**poll_body("PRISMVENDOR00001"), **{name: "vendor" for name in extras}}
    found = {}
    for name in ("device", "closed"):
        before = len(violations(stack[name].lines()))
        assert httpx.post(stack[name].url + "/taskRequest", json=copy.deepcopy(body), timeout=10).status_code == 200
        found[name] = violations(stack[name].lines())[before:]
    assert found["device"] == []
    assert all(any(field in line for line in found["closed"]) for field in extras), found["closed"]
