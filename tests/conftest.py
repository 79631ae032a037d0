"""Fixtures shared by every test area (engine, server, device, proxy, suites), and how the suite is
spread over pytest-xdist's workers. The helpers they build on are in tests/support.py."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facecert.heap import settle
from facecert.mock_server import MockServer
from tests.support import new_server

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
# a `facecert proxy` a test starts keeps mitmproxy's CA in the project's cache, never in the home folder
os.environ.setdefault("MITMPROXY_CONFDIR", str(CACHE / "mitmproxy"))

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# marks whose modules go first: long tests started last would leave the other workers idle at the end
LONG = ("slow", "fuzz", "wheel", "browser")
# the modules that take longest on their worker (seconds on the 2-core machine, docs/performance.md),
# longest first: they start first, one per worker, while the short ones fill the gaps
LONGEST = (
    "tests/suites/test_matrix.py",  # ~60 certifications, six at a time: 75-100 s
    "tests/fleet/test_fleet_cli.py",  # Locust fleets: 55-60 s
    "tests/suites/test_verdicts.py",  # fourteen certifications of broken peers, four at a time: 45-70 s
    "tests/proxy/test_hostile.py",  # a mitmdump per test: 50-60 s
    "tests/ci/test_workflow.py",  # the example CI workflow's steps, run as a runner would: 30-50 s
    "tests/packaging/test_wheel.py",  # build, install, certify from the wheel: 40-50 s
    "tests/suites/test_certify.py",  # both reference peers certified in full, at once: 35-47 s
)

# the modules to start once the LONGEST are under way, before the other long ones: the 300-device fleet (35 s)
# needs its Locust workers scheduled within 112 ms, which the suite's first minutes (the matrix, the fleets, the
# fuzzing job on both cores) did not give it: it ran twice in every full run of 2026-12-03 when it started there
AFTER_LONGEST = ("tests/fleet/test_fleet_300.py",)

# the modules that measure how long correct clients wait beside hostile ones: after the short modules, away
# from the fleets and the matrix, which take both cores early in a run (on a slower machine, 2026-12-02, both
# failed beside the 300-device fleet and passed alone)
QUIET = ("tests/server/test_stall.py", "tests/hostile/test_corpus_proxy.py", "tests/hostile/test_corpus.py")

# the modules that read what a job started in the background as the session began: last, so it is done
LAST = ("tests/hostile/test_schemathesis.py",)  # both Schemathesis passes (tests/hostile/fuzzing.py): 60-80 s


# ---- spreading the suite over the workers (make test: -n N --dist loadfile) ------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
    # the LONGEST modules first, then the other modules with long tests (a module's tests stay together)
    long = {_module(item) for item in items if any(item.get_closest_marker(name) for name in LONG)}

    def rank(item: pytest.Item) -> tuple[int, int]:
        module = _module(item)
        if module in LAST:
            return (4, LAST.index(module))
        if module in QUIET:
            return (3, QUIET.index(module))
        if module in AFTER_LONGEST:
            return (1, -1)
        return (0, LONGEST.index(module)) if module in LONGEST else (1 if module in long else 2, 0)

    items.sort(key=rank)


_settled_for: list[str] = [""]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before each module's first test, what the worker holds (its imports, collected items, what earlier
    modules imported and cached) out of the collector's walks (facecert/heap.py): a full collection of it
    paused the worker's in-process servers and devices 80-150 ms, past the busy cadence's slack at the
    tests' time scale (CADENCE-TASK on our own reference device in loaded runs)."""
    module = _module(item)
    if module != _settled_for[0]:
        _settled_for[0] = module
        settle()


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadfile (a module's tests on one worker: its module fixtures are built once) in the order
    above: pytest-xdist would otherwise hand out the modules with the most tests first
    (``--loadscope-reorder``, its default), which left the long ones (few tests each) to the end.
    (--dist loadgroup would say it with marks, but pytest-xdist 3.8 cannot rename pytest 9's node ids.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)


# ---- what each test costs (FACECERT_TEST_CPU=FOLDER: one JSONL file per worker) ---------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With FACECERT_TEST_CPU set, each test's wall time and CPU seconds (this process's, and its children's
    that ended: subprocesses; not the rows forked from a fork server, whose CPU that server's parent sees
    when it ends) are appended to FOLDER/cpu-WORKER.jsonl (docs/performance.md, Test suite)."""
    folder = os.environ.get("FACECERT_TEST_CPU")
    if not folder:
        return (yield)
    started, own, children = time.monotonic(), time.process_time(), _children_cpu()
    try:
        return (yield)
    finally:
        record = {
            "test": item.nodeid,
            "wall": round(time.monotonic() - started, 3),
            "cpu": round(time.process_time() - own, 3),
            "children_cpu": round(_children_cpu() - children, 3),
            "load1": os.getloadavg()[0],
        }
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(folder).mkdir(parents=True, exist_ok=True)
        with (Path(folder) / f"cpu-{worker}.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
    srv = new_server(folder)
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
