"""`facecert certify device|server --demo` end to end: both plans green
against our reference peers, every report written, the HTML opened in a
real browser, the HAR readable by `facecert validate`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from facecert.core.defaults import DEMO_TIME_SCALE_ENV
from tests.support import facecert

pytestmark = pytest.mark.slow  # both whole plans, with the HTML report: make test-fast leaves it out

FACECERT = [sys.executable, "-m", "facecert.cli"]


def certify(*args: str, report: Path) -> tuple[subprocess.CompletedProcess, dict]:
    done = facecert("certify", *args, "--demo", "--report", str(report), timeout=600)
    summary_path = report / "summary.json"
    assert summary_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(summary_path.read_text(encoding="utf-8"))


def _fixtures_used(request: pytest.FixtureRequest) -> set[str]:
    """The fixtures this session's tests of the module ask for, by name or by parameter."""
    names: set[str] = set()
    for item in request.session.items:
        if getattr(item, "module", None) is request.module:
            names.update(getattr(item, "fixturenames", ()))
            callspec = getattr(item, "callspec", None)
            names.update(v for v in (callspec.params.values() if callspec else ()) if isinstance(v, str))
    return names


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[tuple[subprocess.CompletedProcess, dict, Path]]]]:
    """Both plans certified at once (they mostly wait on protocol time), from the module's first test on;
    only the one a test asks for when the tests of one peer run alone."""
    folder = tmp_path_factory.mktemp("certify")
    wanted = [peer for peer in ("device", "server") if f"{peer}_run" in _fixtures_used(request)]

    def run(peer: str) -> tuple[subprocess.CompletedProcess, dict, Path]:
        done, summary = certify(peer, report=folder / peer)
        return done, summary, folder / peer

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="certify") as pool:
        yield {peer: pool.submit(run, peer) for peer in wanted}


@pytest.fixture(scope="module")
def device_run(runs) -> tuple[subprocess.CompletedProcess, dict, Path]:
    return runs["device"].result()


@pytest.fixture(scope="module")
def server_run(runs) -> tuple[subprocess.CompletedProcess, dict, Path]:
    return runs["server"].result()


def _failed(summary: dict, done: subprocess.CompletedProcess | None = None) -> list[str]:
    """What did not pass, and the run's last output (our peers' own logs say what went wrong in them)."""
    failed = [f"{s['name']}: {s['message'][:400]}" for s in summary["scenarios"] if s["verdict"] != "pass"]
    return failed + ([done.stdout[-3000:], done.stderr[-3000:]] if done is not None and failed else [])


def test_reference_device_is_certified(device_run) -> None:
    done, summary, report = device_run
    assert done.returncode == 0, _failed(summary, done)
    assert summary["verdict"] == "certified"
    assert summary["counts"]["pass"] >= 40 and summary["counts"]["fail"] == summary["counts"]["error"] == 0
    assert summary["root_causes"] == [] and summary["exit_code"] == 0
    assert "CERTIFIED" in done.stdout and str(report) in done.stdout


def test_reference_server_is_certified(server_run) -> None:
    done, summary, report = server_run
    assert done.returncode == 0, _failed(summary, done)
    assert summary["verdict"] == "certified" and summary["counts"]["pass"] >= 20


@pytest.mark.parametrize("run", ["device_run", "server_run"])
def test_every_report_is_written(run: str, request: pytest.FixtureRequest) -> None:
    _, summary, report = request.getfixturevalue(run)
    assert any((report / "allure-results").glob("*-result.json"))
    assert (report / "junit.xml").read_text().count("<testcase") == len(summary["scenarios"])
    assert (report / "session.har").exists() and summary["html"], summary.get("html_error")
    assert Path(summary["html"]).name == "index.html"


def test_plan_pace_is_measured_against_the_protocol_floor(device_run) -> None:
    _, summary, _ = device_run
    assert summary["protocol_floor_seconds"] > 0
    assert 1.0 <= summary["wall_to_floor_ratio"] < 3.0, summary["wall_to_floor_ratio"]


def test_session_har_is_accepted_by_validate(device_run) -> None:
    _, summary, report = device_run
    done = subprocess.run(
        [*FACECERT, "validate", str(report / "session.har"), "--json", "--time-scale", str(summary["time_scale"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    offline = json.loads(done.stdout)
    assert offline["exchanges"] > 50
    device_errors = [f for f in offline["findings"] if f["party"] == "device" and f["severity"] == "error"]
    assert device_errors == [], device_errors[:5]


def test_html_report_shows_the_scenarios_and_verdicts(device_run, chromium: str) -> None:
    from tests.suites.test_report_html import _browser

    _, summary, report = device_run
    with _browser(chromium) as (page, outside):
        page.goto(Path(summary["html"]).as_uri())
        _expand_tree(page)
        leaves = page.get_by_test_id("tree-leaf")
        page.screenshot(path=report / "report.png")
        titles = [leaves.nth(i).get_by_test_id("tree-leaf-title").inner_text() for i in range(leaves.count())]
        statuses = {
            leaves.nth(i).locator("[data-testid^='tree-leaf-status-']").get_attribute("data-testid")
            for i in range(leaves.count())
        }
    assert outside == []
    assert any("faceCmd yields a capture" in t for t in titles), titles[:10]
    assert statuses == {"tree-leaf-status-passed"}, statuses


def _expand_tree(page) -> None:
    """Allure groups scenarios by feature: open every section once (clicking twice closes it)."""
    page.get_by_test_id("tree-section").first.wait_for(timeout=20_000)
    opened: set[str] = set()
    for _ in range(40):
        ids = page.get_by_test_id("tree-section").evaluate_all("els => els.map(e => e.dataset.treeNodeId)")
        todo = [node for node in ids if node not in opened]
        if not todo:
            return
        shown = page.locator("[data-testid=tree-section], [data-testid=tree-leaf]").count()
        for node in todo:
            opened.add(node)
            page.locator(f'[data-tree-node-id="{node}"] [data-testid="tree-arrow"]').first.click()
        page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=tree-section], [data-testid=tree-leaf]').length > n",
            arg=shown,
            timeout=10_000,
        )


def test_unreachable_setup_is_a_clear_error(tmp_path: Path) -> None:
    done = facecert("certify", "server", "--url", "http://127.0.0.1:9", "--report", str(tmp_path), timeout=120)
    assert done.returncode == 2 and "does not answer" in done.stdout  # checked before anything else
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("plan", ["device", "server"])
def test_a_demo_time_scale_that_is_no_number_is_a_clear_error(plan: str, tmp_path: Path) -> None:
    """FACECERT_DEMO_TIME_SCALE sets the demo's time scale; a value out of range stops the run before it starts."""
    env = {**os.environ, DEMO_TIME_SCALE_ENV: "fast"}
    done = facecert("certify", plan, "--demo", "--no-html", "--report", str(tmp_path / "r"), env=env, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{DEMO_TIME_SCALE_ENV}='fast' is no time scale" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr and not (tmp_path / "r").exists()
