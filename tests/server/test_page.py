"""The live page in real headless Chromium: devices and findings appear by
themselves as traffic arrives."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mock_server import MockServer
from tests.server.helpers import capture_body, poll_body

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


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
