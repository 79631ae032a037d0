"""What a certification plan's pytest reads: its own arguments and the packaged plan.ini, nothing
of the caller's environment (facecert/certify/runner.py); and where the HTML renderer is found
(facecert/reports/allure_html.find_allure). Fast: no peer runs, no wheel is built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facecert.reports import allure_html
from facecert.reports.allure_html import AllureError, find_allure

# a plan whose -m deselects every scenario: pytest collects it (markers, steps, features) and runs nothing
_COLLECT_ONLY = """
import os, sys
from pathlib import Path
from facecert.certify.runner import run_plan
outcome = run_plan(None, sys.argv[1], Path(sys.argv[2]), tags="not " + sys.argv[1])
print(outcome.pytest_code, os.environ.get("PYTEST_ADDOPTS"), os.environ.get("PYTEST_PLUGINS"))
"""


@pytest.mark.parametrize("plan", ["device", "server"])
def test_plan_ignores_the_callers_pytest_environment(plan: str, tmp_path: Path) -> None:
    """A CI job's PYTEST_ADDOPTS / PYTEST_PLUGINS are for its own tests: the plan still collects (exit 5,
    nothing selected; an unknown option would be exit 4), and the variables are back afterwards. The
    features' tags need no marker list in a configuration file: --strict-markers holds with plan.ini."""
    env = {**os.environ, "PYTEST_ADDOPTS": "--no-such-option", "PYTEST_PLUGINS": "no_such_plugin_module"}
    run = subprocess.run(
        [sys.executable, "-c", _COLLECT_ONLY, plan, str(tmp_path / "report")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["5", "--no-such-option", "no_such_plugin_module"], run.stdout + run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # nothing else lands in the working directory


def test_a_tag_of_no_feature_of_the_plan_is_refused(tmp_path: Path) -> None:
    """--tags names feature tags (either plan's: CI passes one --tags to both); a typo is pytest's usage error
    (exit 4: the CLI says to check --tags), not an empty run that looks like a pass."""
    script = _COLLECT_ONLY.replace('tags="not " + sys.argv[1]', 'tags="cadense"')
    run = subprocess.run(
        [sys.executable, "-c", script, "device", str(tmp_path / "report")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stdout.split()[:1] == ["4"], run.stdout + run.stderr
    assert "cadense" in run.stderr


# ---- the Allure 3 CLI ----------------------------------------------------------------------


def _fake_allure(prefix: Path, version: str) -> Path:
    """What `npm install --prefix PREFIX allure@VERSION` leaves (the parts find_allure looks at)."""
    package = prefix / "node_modules" / "allure"
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "allure", "version": version}), encoding="utf-8")
    cli = package / "cli.js"
    cli.write_text("#!/usr/bin/env node\n", encoding="utf-8")
    cli.chmod(0o755)
    bin_dir = prefix / "node_modules" / ".bin"
    bin_dir.mkdir()
    (bin_dir / "allure").symlink_to("../allure/cli.js")
    return cli


@pytest.fixture
def no_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As an installed facecert sees it: no tools/allure beside the package, no FACECERT_ALLURE, an empty PATH."""
    monkeypatch.delenv(allure_html.ALLURE_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    root = tmp_path / "site-packages"
    root.mkdir()
    return root


def test_facecert_allure_names_the_npm_folder_the_package_or_its_command(
    no_checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = _fake_allure(tmp_path / "allure3", "3.18.1")
    for given in (tmp_path / "allure3", cli.parent, cli, tmp_path / "allure3" / "node_modules" / ".bin" / "allure"):
        monkeypatch.setenv(allure_html.ALLURE_ENV, str(given))
        assert find_allure(no_checkout) == cli.resolve()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(allure_html.ALLURE_ENV, "allure3")  # relative to where facecert was started
    assert find_allure(no_checkout) == cli.resolve() and cli.is_absolute()


def test_facecert_allure_that_is_not_allure_3_is_a_clear_error(
    no_checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_allure(tmp_path / "allure2", "2.32.0")
    for given in (tmp_path / "allure2", tmp_path / "nowhere"):
        monkeypatch.setenv(allure_html.ALLURE_ENV, str(given))
        with pytest.raises(AllureError, match=f"FACECERT_ALLURE={given} is not the Allure 3 CLI"):
            find_allure(no_checkout)


def test_allure_3_on_path_is_used_and_allure_2_is_not(
    no_checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = _fake_allure(tmp_path / "allure3", "3.18.1")
    monkeypatch.setenv("PATH", str(tmp_path / "allure3" / "node_modules" / ".bin"))
    assert find_allure(no_checkout) == cli.resolve()
    java = tmp_path / "allure2-bin"
    java.mkdir()
    (java / "allure").write_text("#!/bin/sh\necho 2.32.0\n", encoding="utf-8")
    (java / "allure").chmod(0o755)
    monkeypatch.setenv("PATH", str(java))
    with pytest.raises(AllureError, match=r"npm install --prefix DIR allure@3.*is not Allure 3"):
        find_allure(no_checkout)


def test_no_renderer_says_how_to_get_one(no_checkout: Path) -> None:
    with pytest.raises(AllureError) as error:
        find_allure(no_checkout)
    message = str(error.value)
    assert "npm install --prefix DIR allure@3" in message and "FACECERT_ALLURE=DIR" in message
    assert "--no-html" in message


def test_the_checkout_renders_with_its_own_tools_allure(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the source checkout (facecert's parent folder has tools/allure) nothing needs to be set."""
    monkeypatch.delenv(allure_html.ALLURE_ENV, raising=False)
    if not (allure_html.ROOT / "tools" / "allure" / "package.json").is_file():
        pytest.skip("not running from a source checkout")
    assert find_allure() == allure_html.ensure_allure(allure_html.ROOT)
