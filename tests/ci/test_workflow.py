"""The ready CI workflow cannot rot: the `run:` steps of docs/examples/facecert.yml (GitHub Actions)
and docs/examples/ci.sh (any CI) run here as a runner would run them (bash -eo pipefail, the
workflow's environment), against our reference peers on 127.0.0.1, fast (time scale, tags); the
files the upload steps name must then exist. Only steps whose script says `ci-local: skip` (they
need GitHub itself) are left out."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "examples" / "facecert.yml"
SCRIPT = ROOT / "docs" / "examples" / "ci.sh"
BIN = Path(sys.executable).parent
TAGS = "first_contact or polling"  # one short flow of each plan
SKIP = "ci-local: skip"


@pytest.fixture(scope="module")
def staging() -> Iterator[str]:
    """Our reference platform server as the "staging" server, at time scale 0.05."""
    proc = subprocess.Popen(
        [str(BIN / "facecert"), "serve", "--port", "0", "--time-scale", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = ""
        assert proc.stdout is not None
        for _ in range(20):  # the banner is a few lines
            seen += proc.stdout.readline()
            found = re.search(r"live page (http://127\.0\.0\.1:\d+)/", seen)
            if found:
                break
        assert found, seen
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def workspace(folder: Path) -> Path:
    """A repository like the one the workflow runs in: schemas/ and triggers/ on a base branch, and a
    pull request that widens a range of a task (a change that breaks devices: they must accept more)."""
    folder.mkdir()
    shutil.copytree(ROOT / "schemas", folder / "schemas")
    shutil.copytree(ROOT / "triggers", folder / "triggers")

    def git(*args: str) -> None:
        subprocess.run(
            ["git", *args],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=60,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "ci",
                "GIT_AUTHOR_EMAIL": "ci@localhost",
                "GIT_COMMITTER_NAME": "ci",
                "GIT_COMMITTER_EMAIL": "ci@localhost",
            },
        )

    git("init", "-q", "-b", "main")
    git("add", "schemas", "triggers")
    git("commit", "-q", "-m", "base")
    git("checkout", "-q", "-b", "pr")
    path = folder / "schemas" / "server" / "tasks" / "SetFaceConfig.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["properties"]["FaceQuality"]["maximum"] = 20
    path.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")
    git("commit", "-q", "-am", "FaceQuality up to 20")
    return folder


def environment(staging_url: str, extra: dict[str, Any]) -> dict[str, str]:
    """What the runner would give the steps; `${{ … }}` values are what GitHub would fill in."""
    github = {
        "${{ vars.STAGING_URL }}": staging_url,
        "${{ vars.FACECERT_TIME_SCALE }}": "0.05",
        "origin/${{ github.base_ref }}": "main",
        "${{ github.token }}": "",
        "${{ github.event.pull_request.number }}": "1",
    }
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("GITHUB_OUTPUT", None)
    for key, value in extra.items():
        value = str(value)
        if "${{" in value:
            assert value in github, f"{key}: {value} is not filled in by this test"
            value = github[value]
        env[key] = value
    env["FACECERT_TAGS"] = TAGS
    return env


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            yield job_name, job, step


def test_workflow_is_what_the_docs_say() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow.get("on") or workflow.get(True)  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    used = [step.get("uses", "").split("@")[0] for _, _, step in steps(workflow)]
    assert {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "mikepenz/action-junit-report",
    } <= set(used)
    for _, _, step in steps(workflow):
        if "run" in step and SKIP not in step["run"]:  # no expression inside a script: settings come by env
            assert "${{" not in step["run"], step["name"]


@pytest.mark.slow  # the workflow's steps end to end
def test_workflow_steps_run_here(tmp_path: Path, staging: str) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    folder = workspace(tmp_path / "repo")
    ran = []
    for job_name, job, step in steps(workflow):
        if "run" not in step or SKIP in step["run"]:
            continue
        env = environment(staging, {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})})
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"{job_name} › {step['name']}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        ran.append(step["name"])
    assert ran == [
        "Self-test the reference peers",
        "Certify the staging server",
        "Contract diff against the base branch",
    ]
    for _, _, step in steps(workflow):  # what the upload and report steps pick up is there
        inputs = step.get("with") or {}
        for key in ("path", "report_paths"):
            if key in inputs and step.get("uses", "").startswith(("actions/upload-artifact", "mikepenz/")):
                assert glob.glob(str(folder / inputs[key]), recursive=True), f"{step['name']}: nothing at {inputs[key]}"
    check_reports(folder / "reports")
    assert "| `server/tasks/SetFaceConfig` | range" in (folder / "reports" / "contract-diff.md").read_text()


@pytest.mark.slow
def test_shell_version_runs_here(tmp_path: Path, staging: str) -> None:
    folder = workspace(tmp_path / "repo")
    env = environment(staging, {"STAGING_URL": staging, "FACECERT_TIME_SCALE": "0.05", "BASE_REF": "main"})
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all gates passed" in done.stdout
    check_reports(folder / "reports")
    diff = json.loads((folder / "reports" / "contract-diff.json").read_text(encoding="utf-8"))
    assert [(c["pointer"], c["breaks"]) for c in diff["changes"]] == [("/FaceQuality", ["device"])]


def check_reports(reports: Path) -> None:
    for run in ("self-test-device", "self-test-server", "staging"):
        summary = json.loads((reports / run / "summary.json").read_text(encoding="utf-8"))
        assert summary["verdict"] == "certified" and summary["exit_code"] == 0, (run, summary["counts"])
        for name in ("junit.xml", "session.har", "manifest.json"):
            assert (reports / run / name).is_file(), (run, name)
        assert (reports / run / "html" / "index.html").is_file(), (run, summary.get("html_error"))
    assert (reports / "staging-baseline.json").is_file()
