"""Fixtures shared by every test area (engine, server, device, proxy, suites)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
# a `facecert proxy` a test starts keeps mitmproxy's CA in the project's cache, never in the home folder
os.environ.setdefault("MITMPROXY_CONFDIR", str(CACHE / "mitmproxy"))


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium; installs Debian's package when we
    are root and apt works, otherwise skips with the reason."""
    path = _find_chromium()
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=False,
            capture_output=True,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        path = _find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium and it could not be installed (apt-get install chromium needs root and Debian's mirror)"
        )
    return path


@pytest.fixture(scope="session")
def mitmdump() -> str:
    path = Path(sys.executable).parent / "mitmdump"
    assert path.exists(), f"mitmdump not installed in the venv ({path})"
    return str(path)


@pytest.fixture(scope="session")
def mitm_confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mitmconf")
