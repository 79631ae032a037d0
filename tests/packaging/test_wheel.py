"""The built wheel works where no checkout is.

The sources are copied (the package links followed, as setuptools follows them) and built into a
wheel; the wheel is installed into a fresh venv in the system's temporary folder, outside the
repository, with its dependencies from the project's uv cache; then every command runs from
another folder with the repository's venv off PATH. Above the venv and the working folder sits a
pytest.ini whose options pytest would refuse: the plan run must not read it (nor the caller's
PYTEST_ADDOPTS). `make test-fast` skips this module (marker ``wheel``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from uv import find_uv_bin

from facecert.core.defaults import DEMO_TIME_SCALE_ENV
from tests.support import SCALE

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[2]
UV_CACHE = Path(os.environ.get("UV_CACHE_DIR") or ROOT / ".cache" / "uv")  # make exports it
# what a source distribution of facecert is: the project file, its readme and the package (whose
# links to the top-level folders are followed)
SOURCES = ("pyproject.toml", "README.md", "facecert")
HOSTILE_INI = "[pytest]\naddopts = --no-such-option-of-facecert\n"


def _uv(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """uv from the project's cache without asking the index; asking it only when the cache lacks something."""
    env = {**os.environ, "UV_CACHE_DIR": str(UV_CACHE), "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    command = [find_uv_bin(), *args]
    done = subprocess.run([*command, "--offline"], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done


@dataclass
class Installed:
    wheel: Path
    venv: Path
    cwd: Path  # where the commands run: nothing of the checkout there
    env: dict[str, str]
    timings: dict[str, float]

    def facecert(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "facecert"), *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            cwd=self.cwd,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def _copy_sources(target: Path) -> None:
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, symlinks=False, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of somebody who installed the wheel: its venv first on PATH, the checkout's
    folders (its .venv, tools/allure) off it, no facecert or pytest variables, a home of their own."""
    drop = ("PYTEST", "FACECERT_", "VIRTUAL_ENV", "PYTHON", "COV_CORE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p).resolve().is_relative_to(ROOT)]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["HOME"] = str(home)
    env["PYTEST_ADDOPTS"] = "--no-such-option-of-facecert"  # a CI job's, for its own tests
    return env


@pytest.fixture(scope="module")
def wheel() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="facecert-wheel-build-"))
    try:
        started = time.monotonic()
        _copy_sources(work / "src")
        _uv("build", "--wheel", "--out-dir", str(work / "dist"), str(work / "src"), "--quiet")
        (built,) = (work / "dist").glob("facecert-*.whl")
        print(f"wheel built in {time.monotonic() - started:.1f} s")
        yield built
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Iterator[Installed]:
    work = Path(tempfile.mkdtemp(prefix="facecert-wheel-"))
    try:
        assert not work.resolve().is_relative_to(ROOT), f"{work} must be outside the repository"
        (work / "pytest.ini").write_text(HOSTILE_INI, encoding="utf-8")  # above the venv and the cwd
        venv, cwd, home = work / "venv", work / "elsewhere", work / "home"
        cwd.mkdir()
        home.mkdir()
        timings: dict[str, float] = {}
        started = time.monotonic()
        _uv("venv", "--quiet", "--python", sys.executable, str(venv))
        _uv("pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel))
        timings["venv and install"] = time.monotonic() - started
        yield Installed(wheel, venv, cwd, _clean_env(venv, home), timings)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_wheel_holds_facecert_only_with_its_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"facecert"}, sorted(tops)
    for folder in ("schemas", "features", "triggers"):
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert shipped, folder
        missing = {f"facecert/{name}" for name in shipped} - names
        assert not missing, f"not in the wheel: {sorted(missing)}"
    for name in ("schemas/catalogue.yaml", "mock_server/page.html", "certify/plan.ini", "steps/plugin.py"):
        assert f"facecert/{name}" in names
    assert not any(name.endswith(("/conftest.py", ".pyc")) for name in names)


def _capture(path: Path, request: dict[str, object]) -> Path:
    """A one-exchange facecert JSONL capture: a taskRequest answered idleTime."""

    def b64(body: dict[str, object]) -> str:
        return base64.b64encode(json.dumps(body).encode("utf-8")).decode("ascii")

    record = {
        "index": 0,
        "method": "POST",
        "path": "/taskRequest",
        "url": "http://127.0.0.1:8080/taskRequest",
        "status": 200,
        "started": 1577690264.0,
        "ended": 1577690264.01,
        "peer": "127.0.0.1",
        "request_headers": {"Content-Type": "application/json"},
        "response_headers": {"Content-Type": "application/json"},
        "request_b64": b64(request),
        "response_b64": b64({"request_type": "idleTime", "time_stamp": 1577690264}),
        "error": None,
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


def test_installed_commands_work_from_another_folder(installed: Installed) -> None:
    print(f"venv and install: {installed.timings['venv and install']:.1f} s")
    where = installed.python("import facecert.core.contract as c; print(c.schemas_dir())")
    assert where.returncode == 0, where.stderr
    schemas = Path(where.stdout.strip())
    assert schemas.is_relative_to(installed.venv) and (schemas / "catalogue.yaml").is_file(), schemas

    run = installed.facecert("--help")
    assert run.returncode == 0 and "certify" in run.stdout, run.stdout + run.stderr
    for command in ("serve", "device", "proxy"):
        run = installed.facecert(command, "--help")
        assert run.returncode == 0 and "Usage" in run.stdout, f"{command}: {run.stdout}{run.stderr}"

    request = json.loads((ROOT / "schemas" / "examples" / "taskRequest.json").read_text(encoding="utf-8"))
    good = _capture(installed.cwd / "good.jsonl", request)
    run = installed.facecert("validate", good.name)
    assert run.returncode == 0 and "PASS" in run.stdout, run.stdout + run.stderr
    bad = _capture(installed.cwd / "bad.jsonl", {k: v for k, v in request.items() if k != "device_id"})
    run = installed.facecert("validate", bad.name, "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    assert json.loads(run.stdout)["errors_by_rule"] == {"MSG-REQUIRED": 1}

    run = installed.facecert("openapi")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["openapi"].startswith("3.1") and "/taskRequest" in document["paths"]


def test_installed_renderer_is_found_or_named(installed: Installed) -> None:
    """No Allure 3 on PATH: the message says how to get one; FACECERT_ALLURE names one."""
    find = "from facecert.reports.allure_html import find_allure; print(find_allure())"
    run = installed.python(find)
    if shutil.which("allure", path=installed.env["PATH"]) is None:
        assert run.returncode != 0 and "npm install --prefix DIR allure@3" in run.stderr, run.stdout + run.stderr
    tools = ROOT / "tools" / "allure"
    if (tools / "node_modules" / "allure" / "cli.js").is_file():
        run = installed.python(find, {**installed.env, "FACECERT_ALLURE": str(tools)})
        assert run.returncode == 0 and Path(run.stdout.strip()).name == "cli.js", run.stdout + run.stderr


def test_installed_certify_device_demo(installed: Installed) -> None:
    started = time.monotonic()
    # at the tests' time scale (FACECERT_DEMO_TIME_SCALE, the one variable of ours it is given): the whole plan
    scale = {DEMO_TIME_SCALE_ENV: f"{SCALE:g}"}
    run = installed.facecert("certify", "device", "--demo", "--no-html", "--report", "report", timeout=240, env=scale)
    seconds = time.monotonic() - started
    print(f"certify device --demo: {seconds:.1f} s")
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    summary = json.loads((installed.cwd / "report" / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "certified" and summary["exit_code"] == 0, summary["counts"]
    assert summary["counts"]["pass"] > 0 and summary["html"] is None and summary["time_scale"] == SCALE
    # the report folder and the capture files of the other test: nothing else in the working folder
    assert {p.name for p in installed.cwd.iterdir()} <= {"report", "good.jsonl", "bad.jsonl"}
