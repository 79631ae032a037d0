"""Fixtures shared by every test area (engine, server, device, proxy, suites), and how the suite is
spread over pytest-xdist's workers. The helpers they build on are in tests/support.py."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facecert.mock_server import MockServer, ServerConfig
from tests.support import SCALE, make_assets

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
# a `facecert proxy` a test starts keeps mitmproxy's CA in the project's cache, never in the home folder
os.environ.setdefault("MITMPROXY_CONFDIR", str(CACHE / "mitmproxy"))

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# marks whose modules go first: long tests started last would leave the other workers idle at the end
LONG = ("slow", "fuzz", "wheel", "browser")
# tests that use no module fixture and each take long: with --dist loadfile each row gets any free worker
SPREAD = ("tests/suites/test_matrix.py::test_knob_is_caught[",)


# ---- spreading the suite over the workers (make test: -n N --dist loadfile) ------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
    # modules with long tests first (a module's tests stay together)
    long = {_module(item) for item in items if any(item.get_closest_marker(name) for name in LONG)}
    items.sort(key=lambda item: _module(item) not in long)


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadfile (a module's tests on one worker: its module fixtures are built once), but the SPREAD
    tests each on their own. (--dist loadgroup would say it with marks, but pytest-xdist 3.8 cannot rename
    pytest 9's node ids, so its groups are silently ignored.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndSpread(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(SPREAD) else super()._split_scope(nodeid)

    return ModulesAndSpread(config, log)


# ---- system programs -------------------------------------------------------------------------------
def _find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium. `make test` installs Debian's package (`make chromium`);
    without one the test fails saying so, except where nothing could install it (not Debian, not root)."""
    path = _find_chromium()
    if path is not None:
        return path
    if not (Path("/etc/debian_version").exists() and os.geteuid() == 0):
        pytest.skip("no Chromium, and `make chromium` can install Debian's package only as root on Debian")
    pytest.fail("no Chromium on PATH: run `make chromium` (apt-get install chromium)", pytrace=False)


@pytest.fixture(scope="session")
def mitmdump() -> str:
    path = Path(sys.executable).parent / "mitmdump"
    assert path.exists(), f"mitmdump not installed in the venv ({path})"
    return str(path)


@pytest.fixture(scope="session")
def mitm_confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mitmconf")


# ---- the reference server ------------------------------------------------------------------------------
_stopping: list[threading.Thread] = []


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    """A mock server of the test's own on 127.0.0.1, at the tests' time scale: its own session database
    and download folder (the default assets and a valid simulator firmware), apart from ``tmp_path``.
    It stops in the background (uvicorn notices it should stop within 0.1 s; the next test need not wait)."""
    folder = tmp_path_factory.mktemp("server")
    srv = MockServer(ServerConfig(time_scale=SCALE, assets=make_assets(folder / "assets"), db=folder / "session.db"))
    srv.start()
    yield srv
    stop = threading.Thread(target=srv.stop, name="stop-mock-server", daemon=True)
    stop.start()
    _stopping.append(stop)


@pytest.fixture(scope="session", autouse=True)
def _servers_stopped() -> Iterator[None]:
    """Every mock server stopped before the session ends."""
    yield
    for stop in _stopping:
        stop.join(timeout=15)
