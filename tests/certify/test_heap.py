"""The long-running commands and the proxy's mitmdump take their start-up heap out of the
collector's walks before the protocol's clock starts (facecert/heap.py): a full collection of
~150,000 imported objects paused every thread 50-150 ms, the busy cadence's whole slack at time
scale 0.05."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import start_proxy

BIN = Path(sys.executable).parent
# loaded by every Python the test starts: at exit, how many objects the process had frozen
SITE = textwrap.dedent(
    """
    import atexit, gc, json, os
    def _tell():
        with open(os.environ["FREEZE_OUT"], "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "frozen": gc.get_freeze_count()}) + "\\n")
    atexit.register(_tell)
    """
)


def _frozen(out: Path) -> list[int]:
    return [json.loads(line)["frozen"] for line in out.read_text().splitlines()] if out.exists() else []


def _env(tmp_path: Path, name: str) -> tuple[dict[str, str], Path]:
    (tmp_path / "site").mkdir(exist_ok=True)
    (tmp_path / "site" / "sitecustomize.py").write_text(SITE)
    out = tmp_path / f"{name}.jsonl"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "FREEZE_OUT": str(out)}
    return env, out


def test_settle_freezes_what_the_harness_imported() -> None:
    code = (
        "import gc, facecert.certify.runner, facecert.mock_server, facecert.mock_device\n"
        "from facecert.heap import settle\n"
        "before = len(gc.get_objects()); frozen = settle(); after = len(gc.get_objects())\n"
        "print(before, frozen, after)"
    )
    before, frozen, after = map(int, subprocess.check_output([sys.executable, "-c", code], text=True).split())
    assert before > 50_000 and frozen >= 0.9 * before, (before, frozen)
    assert after < 0.05 * before, (before, after)  # what a full collection still walks


def test_settle_once_collects_only_the_first_time() -> None:
    """The proxy's addon settles in mitmproxy's ``running`` hook, which fires again when mitmproxy reloads a
    changed script: the second time must not collect (a pause mid-traffic) nor freeze live flows."""
    code = (
        "import gc\n"
        "from facecert.heap import settle_once\n"
        "first = settle_once(); collections = []\n"
        "gc.callbacks.append(lambda phase, info: collections.append(phase))\n"
        "[object() for _ in range(10)]; second = settle_once()\n"
        "print(first, second, len(collections))"
    )
    first, second, collections = map(int, subprocess.check_output([sys.executable, "-c", code], text=True).split())
    assert first > 1_000 and second == first and collections == 0, (first, second, collections)


def test_certify_settles_before_its_peers_start(tmp_path: Path) -> None:
    env, out = _env(tmp_path, "certify")
    done = subprocess.run(
        [str(BIN / "facecert"), "certify", "device", "--demo", "--tags", "first_contact", "--no-html"]
        + ["--report", str(tmp_path / "report")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert max(_frozen(out), default=0) > 50_000, _frozen(out)


def test_serve_and_device_settle_before_they_talk(tmp_path: Path) -> None:
    env, out = _env(tmp_path, "peers")
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [str(BIN / "facecert"), "serve", "--port", "0", "--port-file", str(port_file), "--quiet"]
        + ["--time-scale", "0.05"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert "listening" in banner, banner + server.stdout.read()
        url = f"http://127.0.0.1:{port_file.read_text()}"
        device = subprocess.run(
            [str(BIN / "facecert"), "device", "--server", url, "--duration", "1", "--time-scale", "0.05"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert device.returncode == 0, device.stdout[-2000:] + device.stderr[-2000:]
    finally:
        server.terminate()  # SIGTERM: serve stops cleanly, so its exit hook runs
        server.wait(timeout=30)
    frozen = _frozen(out)
    assert len(frozen) == 2 and min(frozen) > 20_000, frozen


def test_the_proxys_mitmdump_settles_once_it_runs(tmp_path: Path) -> None:
    """The proxy judges cadence live in mitmdump, whose imports (mitmproxy's and ours, ~90,000 objects)
    took 40-50 ms a full collection: the addon settles them when mitmproxy is running."""
    env, out = _env(tmp_path, "proxy")
    env["MITMPROXY_CONFDIR"] = str(tmp_path / "conf")
    proxy = start_proxy("http://127.0.0.1:9", tmp_path / "report", env=env)
    try:
        assert proxy.stdout is not None
        seen = ""
        while "server_url at http://127.0.0.1:" not in seen:
            line = proxy.stdout.readline()
            assert line, seen
            seen += line
    finally:
        proxy.send_signal(signal.SIGINT)  # mitmdump stops cleanly, so its exit hook runs
        proxy.communicate(timeout=60)
    assert max(_frozen(out), default=0) > 50_000, _frozen(out)
