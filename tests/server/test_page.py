"""The live page in real headless Chromium: devices and findings appear by
themselves as traffic arrives."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from facecert.core.contract import get_contract
from facecert.core.examples import example_for
from facecert.mock_device import Device, DeviceConfig
from facecert.mock_server import MockServer
from facecert.reports.cadence_svg import cadence_windows
from tests.server.helpers import capture_body, poll_body, report_body, result_body
from tests.support import SCALE

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_live_page_shows_devices_findings_and_thumbnails(server: MockServer, chromium: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    sloppy = poll_body("PAGE-DEVICE")
    del sloppy["device_mac"]  # a finding to show
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page()
            external: list[str] = []
            page.on("request", lambda r: external.append(r.url) if not r.url.startswith(server.base) else None)
            page.goto(server.url + "/")
            page.wait_for_selector("#status:has-text('updated')", timeout=10_000)
            httpx.post(server.url + "/taskRequest", json=sloppy)  # arrives after the page loaded
            httpx.post(server.url + "/faceRecognition", json=capture_body("PAGE-DEVICE"))
            page.wait_for_selector("#devices td:has-text('PAGE-DEVICE')", timeout=10_000)
            page.wait_for_selector("#findings td:has-text('MSG-REQUIRED')", timeout=10_000)
            page.wait_for_selector("#captures img", timeout=10_000)
            assert page.locator("#exchanges tbody tr").count() >= 2
            page.screenshot(path=str(tmp_path / "page.png"))
            assert not external, external
        finally:
            browser.close()


def element_screenshot(locator: Any, path: Path, error: type[Exception], attempts: int = 3) -> None:
    """A screenshot of one element of the live page, which redraws a device's box as its polls come: a
    box redrawn between Playwright finding it and taking the picture is "not visible" for that instant
    (a fresh clone, 2026-12-03), so the picture is taken again, at most ``attempts`` times."""
    for attempt in range(attempts):
        try:
            locator.screenshot(path=str(path))
            return
        except error:
            if attempt == attempts - 1:
                raise


def test_live_page_plots_cadence_and_groups_findings(server: MockServer, chromium: str, tmp_path: Path) -> None:
    """A device breaking the idle cadence: its plot shows the gaps outside the accepted band (the
    windows the control API hands out) and the findings table counts CADENCE-IDLE in one row."""
    sync_api = pytest.importorskip("playwright.sync_api")
    windows = httpx.get(server.url + "/_admin/overview").json()["windows"]
    assert windows == cadence_windows(server.engine)
    device_id = "PAGE-LATE-POLLER"
    config = DeviceConfig(server=server.url, device_id=device_id, time_scale=SCALE, faults={"cadence-idle"})
    on_time = DeviceConfig(
        server=server.url, device_id="PAGE-ON-TIME", device_mac="02-00-00-00-00-02", time_scale=SCALE
    )
    with Device(config), Device(on_time), sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            asked: list[tuple[str, int]] = []
            page.on("response", lambda r: asked.append((r.url, r.status)))
            page.goto(server.url + "/")
            page.wait_for_selector("#server:has-text('time scale')", timeout=10_000)
            header = page.locator("#server").inner_text()
            for shown in ("strict", "V" + server.engine.version, str(SCALE), "devices"):
                assert shown in header, header
            box = page.locator(f".device[data-device='{device_id}']")
            box.locator("svg.cadence circle.gap.idle.out").nth(2).wait_for(timeout=15_000)  # three late polls
            assert box.locator("svg.cadence rect.band.idle").count() == 1
            assert box.locator("svg.cadence rect.band.task").count() == 1
            # the row whose rule is CADENCE-IDLE (a HARNESS-STALLED row's example names it too: "not judged")
            rule = page.locator("td:nth-child(2)", has_text=re.compile("^CADENCE-IDLE$"))
            row = page.locator("#findings tbody tr", has=rule)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#findings tbody tr')].some(tr => "
                "tr.cells[1].textContent === 'CADENCE-IDLE' && +tr.cells[3].textContent >= 2)",
                timeout=10_000,
            )
            assert row.count() == 1  # grouped: one row however many findings
            assert device_id in row.inner_text() and "accepted" in row.inner_text()  # the latest example
            assert box.locator(".timeline li.poll").count() >= 3
            good = page.locator(".device[data-device='PAGE-ON-TIME'] svg.cadence")
            good.locator("circle.gap.idle.ok").nth(1).wait_for(timeout=10_000)
            assert good.locator("circle.gap.out").count() == 0
            page.screenshot(path=str(tmp_path / "cadence.png"), full_page=True)
            element_screenshot(box, tmp_path / "device.png", sync_api.Error)
            element_screenshot(page.locator("#findings"), tmp_path / "findings.png", sync_api.Error)
            for shot in ("cadence.png", "device.png", "findings.png"):
                assert (tmp_path / shot).stat().st_size > 1000
            # headless Chromium asks for no icon by itself: the page's own icon link, fetched as a browser would
            icon = page.evaluate(
                "fetch(document.querySelector('link[rel=icon]').href).then(r => [r.status, "
                "r.headers.get('content-type')])"
            )
            assert icon[0] == 200 and icon[1].startswith("image/"), icon
        finally:
            browser.close()
    assert asked and all(url.startswith(server.base) and status == 200 for url, status in asked), asked


def test_live_page_timeline_shows_tasks_results_captures_alarms_and_gps(server: MockServer) -> None:
    """The timeline the page draws: each exchange with what it carried."""
    device_id = "PAGE-TIMELINE"
    rid = server.enqueue(device_id, example_for(get_contract().all_tasks["getDevStatus"].schema))
    with httpx.Client(base_url=server.url, timeout=10) as http:
        task = http.post("/taskRequest", json=poll_body(device_id)).json()
        http.post("/taskResult", json=result_body(device_id, task, code=3))
        http.post("/faceRecognition", json=capture_body(device_id))
        http.post("/deviceAlarm", json=report_body("deviceAlarm", device_id))
        http.post("/gpsReport", json=report_body("gpsReport", device_id))
        http.post("/taskRequest", json=poll_body(device_id))
        view = http.get("/_admin/overview").json()
        icon = http.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/")
    assert view["server"]["devices"] == 1 and view["server"]["time_scale"] == SCALE
    poll, result, capture, alarm, gps, idle = view["timelines"][device_id]
    assert (poll["task"], poll["request_id"]) == ("getDevStatus", rid)
    assert (result["task"], str(result["request_id"]), result["code"]) == ("getDevStatus", str(rid), 3)
    assert capture["has_image"] and capture["capture_id"] >= 1
    assert alarm["detail"] and not any("version" in k or k.startswith("device_") for k in alarm["detail"])
    assert gps["detail"] and idle["task"] == server.engine.contract.idle_task
