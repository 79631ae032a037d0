"""The HTML report: real allure-results from a real pytest-bdd run, rendered by
the real Allure 3 CLI, opened from file:// in headless Chromium with every
request watched, so "offline" is measured, not assumed."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from facecert.reports import allure_html
from facecert.reports.allure_html import AllureError, outside_references, render_report, strip_outside_references

pytestmark = pytest.mark.slow  # Allure renders reports (Node): make test-fast leaves it out

PASSING = "Device polls on time"
FAILING = "Device sends an alarm without deviceId"
FAILURE_MESSAGE = "alarm body has no deviceId"
IMAGE_NAME = "capture image"

FEATURE = f"""\
Feature: Report pipeline
  Scenario: {PASSING}
    Given a device
    Then the check passes

  Scenario: {FAILING}
    Given a device
    Then the check fails
"""

STEPS = f'''\
import io

import allure
from PIL import Image
from pytest_bdd import given, scenarios, then

scenarios("report.feature")


def capture_jpeg():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


@given("a device")
def device():
    return "dev-1"


@then("the check passes")
def passes():
    assert True


@then("the check fails")
def fails():
    allure.attach(capture_jpeg(), name="{IMAGE_NAME}", attachment_type=allure.attachment_type.JPG)
    allure.attach('{{"deviceId": null}}', name="alarm body", attachment_type=allure.attachment_type.JSON)
    assert False, "{FAILURE_MESSAGE}"
'''

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # belt and braces: even a request the route missed cannot resolve a host
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


@pytest.fixture(scope="module", autouse=True)
def _node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("the HTML report needs Node.js and npm (apt-get install nodejs npm)")


@pytest.fixture(scope="module")
def allure_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """allure-results written by allure-pytest-bdd for one passing and one failing scenario."""
    work = tmp_path_factory.mktemp("bdd")
    (work / "report.feature").write_text(FEATURE, encoding="utf-8")
    (work / "test_report_feature.py").write_text(STEPS, encoding="utf-8")
    results = work / "allure-results"
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_ADDOPTS"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(work / "test_report_feature.py"),
            "--alluredir",
            str(results),
            "-p",
            "no:cacheprovider",
            "-c",
            os.devnull,
            "--rootdir",
            str(work),
            "--basetemp",
            str(work / "tmp"),
            "-q",
        ],
        cwd=work,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stdout + run.stderr  # exactly the failing scenario failed
    assert len(list(results.glob("*-result.json"))) == 2, run.stdout
    return results


@pytest.fixture(scope="module")
def report(allure_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_report(allure_results, tmp_path_factory.mktemp("html"), title="facecert report test")


@pytest.fixture(scope="module")
def raw_report(allure_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Allure's page exactly as the CLI writes it, before we make it offline."""
    cli = allure_html.ensure_allure(allure_html.ROOT)
    out = tmp_path_factory.mktemp("raw")
    subprocess.run(
        ["node", str(cli), "awesome", "--single-file", "-o", str(out), str(allure_results)],
        cwd=out,
        capture_output=True,
        timeout=120,
        check=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return out / "index.html"


# ---- the file ------------------------------------------------------------------------------


def test_render_writes_one_offline_file(report: Path) -> None:
    assert report.name == "index.html" and report.is_file()
    assert not [p for p in report.parent.iterdir() if p.suffix in (".js", ".css") or p.is_dir()]
    html = report.read_text(encoding="utf-8")
    assert outside_references(html) == []
    assert "googletagmanager" not in html and "gtag(" not in html
    assert "facecert report test" in html
    assert _statistic(html) == {"total": 2, "passed": 1, "failed": 1}


def test_results_folder_with_glob_characters_renders(allure_results: Path, tmp_path: Path) -> None:
    """Allure reads its argument as a glob; a report folder named like one must still work."""
    odd = tmp_path / "run [1] {a,b} *" / "allure-results"
    shutil.copytree(allure_results, odd)
    index = render_report(odd, odd.parent / "html", title="odd")
    assert _statistic(index.read_text(encoding="utf-8")) == {"total": 2, "passed": 1, "failed": 1}


def test_results_allure_cannot_read_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "0-result.json").write_text("not json", encoding="utf-8")
    with pytest.raises(AllureError, match="read none of the 1 results"):
        render_report(tmp_path, tmp_path / "html", title="x")
    assert not (tmp_path / "html" / "index.html").exists()


def _statistic(html: str) -> dict[str, int]:
    """The counts Allure embedded in the page (widgets/statistic.json, base64 JSON)."""
    found = re.search(r'd\("widgets/statistic\.json","([A-Za-z0-9+/=]+)"\)', html)
    assert found, "no statistic widget in the page"
    return json.loads(base64.b64decode(found[1]))


def test_render_writes_only_index_html_into_a_report_folder(allure_results: Path, tmp_path: Path) -> None:
    """Allure's own summary.json must not overwrite facecert's, whatever folder the caller passes."""
    (tmp_path / "summary.json").write_text('{"verdict": "pass"}', encoding="utf-8")
    index = render_report(allure_results, tmp_path, title="again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "summary.json"]
    assert (tmp_path / "summary.json").read_text(encoding="utf-8") == '{"verdict": "pass"}'
    assert render_report(allure_results, tmp_path, title="again") == index


def test_raw_allure_output_calls_out_and_the_check_sees_it(raw_report: Path) -> None:
    """Why the strip exists: Allure's own page loads Google Analytics."""
    raw = raw_report.read_text(encoding="utf-8")
    found = outside_references(raw)
    assert any("googletagmanager.com" in item for item in found), found
    assert outside_references(strip_outside_references(raw)) == []


def test_ensure_allure_is_quick_and_idempotent() -> None:
    first = allure_html.ensure_allure(allure_html.ROOT)
    assert first == allure_html.ensure_allure(allure_html.ROOT)
    assert first.is_file() and first.name == "cli.js"


# ---- in the browser ------------------------------------------------------------------------


def test_report_opens_from_file_and_shows_verdicts(report: Path, chromium: str) -> None:
    with _browser(chromium) as (page, outside):
        page.goto(report.as_uri())
        assert _tree_verdicts(page) == {PASSING: "passed", FAILING: "failed"}
        page.screenshot(path=report.parent / "overview.png")

        page.get_by_test_id("tree-leaf").filter(has_text=FAILING).click()
        page.get_by_test_id("test-result-status-failed").wait_for(timeout=10_000)
        page.get_by_text(FAILURE_MESSAGE).first.wait_for(timeout=10_000)
        page.screenshot(path=report.parent / "failed.png")

        # a face capture attached by a step is embedded and viewable offline
        page.get_by_test_id("test-result-tab-attachments").click()
        page.get_by_text(IMAGE_NAME).first.click()
        image = page.locator("img[src^='blob:'], img[src^='data:']").first
        image.wait_for(timeout=10_000)
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=10_000
        )
        assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 48]
    assert outside == []


def test_browser_watch_catches_allures_own_call_out(raw_report: Path, chromium: str) -> None:
    """The request watch is real: the unstripped page is caught calling Google."""
    with _browser(chromium) as (page, outside):
        page.goto(raw_report.as_uri())
        # wait for the evidence itself, not for the page to finish rendering
        # (an aborted script can hold the unstripped page back on a busy machine)
        for _ in range(150):
            if any("googletagmanager.com" in url for url in outside):
                break
            page.wait_for_timeout(100)
    assert any("googletagmanager.com" in url for url in outside), outside


@contextmanager
def _browser(chromium: str) -> Iterator[tuple[Any, list[str]]]:
    """A headless page whose every non-local request is recorded and aborted."""
    from playwright.sync_api import Route, sync_playwright

    outside: list[str] = []

    def guard(route: Route) -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.route("**/*", guard)
            page = context.new_page()
            page.on(
                "request",
                lambda request: None if request.url.startswith(LOCAL_SCHEMES) else outside.append(request.url),
            )
            yield page, outside
        finally:
            browser.close()


def _tree_verdicts(page: Any) -> dict[str, str]:
    """Scenario name -> status, read from the result tree Allure renders."""
    leaves = page.get_by_test_id("tree-leaf")
    leaves.filter(has_text=FAILING).wait_for(timeout=15_000)
    verdicts = {}
    for index in range(leaves.count()):
        leaf = leaves.nth(index)
        status = leaf.locator("[data-testid^='tree-leaf-status-']").get_attribute("data-testid") or ""
        verdicts[leaf.get_by_test_id("tree-leaf-title").inner_text().strip()] = status.rsplit("-", 1)[-1]
    return verdicts


# ---- the offline check itself --------------------------------------------------------------

ANALYTICS_PAGE = """<html><head>
<link rel="stylesheet" href="https://cdn.example.com/a.css">
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E">
<style>body { background: url("https://cdn.example.com/bg.png") }</style>
</head><body>
<svg xmlns="http://www.w3.org/2000/svg"></svg>
<p>See https://allurereport.org for Allure.</p>
<a href="https://example.org/docs">docs</a>
<img src="//cdn.example.com/x.png">
<script src="data:text/javascript;base64,dmFyIGE9MTs="></script>
<script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>
<script>window.dataLayer = window.dataLayer || []; gtag('config', 'G-X');</script>
<script>window.allure = {};</script>
</body></html>"""


def test_outside_references_fire_on_remote_loads() -> None:
    found = outside_references(ANALYTICS_PAGE)
    assert any("cdn.example.com/a.css" in f for f in found)
    assert any("bg.png" in f for f in found)
    assert any("//cdn.example.com/x.png" in f for f in found)
    assert any("googletagmanager.com/gtag" in f for f in found)
    assert any("analytics snippet" in f for f in found)


def test_strip_leaves_local_content_and_nothing_remote() -> None:
    stripped = strip_outside_references(ANALYTICS_PAGE)
    assert outside_references(stripped) == []
    for kept in (
        "data:image/svg+xml",
        "data:text/javascript",
        "window.allure = {}",
        "https://allurereport.org",
        'href="https://example.org/docs"',
        'xmlns="http://www.w3.org/2000/svg"',
    ):
        assert kept in stripped
    assert "gtag" not in stripped and "cdn.example.com/a.css" not in stripped and "x.png" not in stripped


def test_a_clean_page_passes() -> None:
    page = (
        '<html><body><svg xmlns="http://www.w3.org/2000/svg"></svg><img src="data:image/png;base64,AA=="></body></html>'
    )
    assert outside_references(page) == [] and strip_outside_references(page) == page


# ---- failures are clear, never a traceback or a hang -------------------------------------


def test_missing_results_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AllureError, match="no allure-results folder"):
        render_report(tmp_path / "nope", tmp_path / "html", title="x")


def test_unwritable_report_folder_is_a_clear_error(allure_results: Path, tmp_path: Path) -> None:
    (tmp_path / "html").write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(AllureError, match="could not make the HTML report"):
        render_report(allure_results, tmp_path / "html", title="x")


def test_render_timeout_stops_allure(allure_results: Path, tmp_path: Path) -> None:
    with pytest.raises(AllureError, match="did not finish"):
        render_report(allure_results, tmp_path / "html", title="x", timeout=0.001)


def test_no_tools_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AllureError, match="package.json is missing"):
        allure_html.ensure_allure(tmp_path)


def test_no_node_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "tools" / "allure"
    tools.mkdir(parents=True)
    (tools / "package.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(allure_html.shutil, "which", lambda name: None)
    with pytest.raises(AllureError, match="needs Node.js"):
        allure_html.ensure_allure(tmp_path)


@pytest.fixture(autouse=True)
def _no_stray_output(tmp_path: Path) -> Iterator[None]:
    """Rendering must write only into the folder it is given (cwd stays clean)."""
    before = set(Path.cwd().iterdir())
    yield
    assert set(Path.cwd().iterdir()) - before == set()
