"""Assets: served, every download logged and fed to the engine, paths
confined to the folder, aborted downloads recognised."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from PIL import Image

from facecert.core.examples import example_for
from facecert.mock_server import MockServer, ServerConfig
from tests.server.helpers import errors, local_downloads, poll_body, result_body
from tests.support import SCALE


def raw_get(srv: MockServer, target: str) -> int:
    """Send the request line exactly as written (httpx would normalise ../)."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1])


def test_default_assets_are_real_files(server: MockServer, client: httpx.Client, tmp_path: Path) -> None:
    face = client.get("/assets/face.jpg")
    assert face.headers["content-type"] == "image/jpeg"
    (tmp_path / "f.jpg").write_bytes(face.content)
    assert Image.open(tmp_path / "f.jpg").format == "JPEG"
    png = client.get("/assets/screensaver.png")
    assert png.content.startswith(b"\x89PNG") and png.headers["content-type"] == "image/png"
    firmware = client.get("/assets/firmware.bin")
    assert b"NOT A FIRMWARE" in firmware.content[:200]


def test_download_log_says_who_what_when_bytes(server: MockServer, client: httpx.Client) -> None:
    client.post("/taskRequest", json=poll_body("DL"))
    size = len(client.get("/assets/face.jpg").content)
    log = server.downloads()
    assert len(log) == 1
    entry = log[0]
    assert entry["device_id"] == "DL" and entry["peer"].startswith("127.0.0.1:")
    assert (entry["name"], entry["bytes"], entry["size"], entry["completed"], entry["state"]) == (
        "face.jpg",
        size,
        size,
        1,
        "completed",
    )
    assert entry["started"] <= entry["ended"]
    assert server.engine.fetched and server.engine.fetched[-1][1].endswith("/assets/face.jpg")


@pytest.mark.parametrize(
    "target",
    [
        "/assets/../store.py",
        "/assets/..%2Fstore.py",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/assets//etc/passwd",
        "/assets/%2Fetc%2Fpasswd",
        "/assets/sub/../../x",
        "/assets/nothing.jpg",
        "/assets/",
    ],
)
def test_paths_are_confined(server: MockServer, target: str) -> None:
    assert raw_get(server, target) == 404
    assert server.downloads()[-1]["state"] == "refused"
    assert raw_get(server, "/assets/face.jpg") == 200


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")
    with MockServer(ServerConfig(time_scale=SCALE, assets=folder)) as srv:
        assert raw_get(srv, "/assets/link.txt") == 404


def test_user_assets_and_firmware(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "mine.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (folder / "empty.bin").write_bytes(b"")
    firmware = tmp_path / "fw.img"
    firmware.write_bytes(b"VENDOR-IMAGE" * 10)
    with MockServer(ServerConfig(time_scale=SCALE, assets=folder, firmware=firmware)) as srv:
        assert httpx.get(srv.asset_url("mine.png")).content.startswith(b"\x89PNG")
        assert httpx.get(srv.asset_url("firmware.bin")).content == firmware.read_bytes()
        assert httpx.get(srv.asset_url("empty.bin")).content == b""
        assert [d["state"] for d in srv.downloads()] == ["completed"] * 3


def test_aborted_download_is_logged_as_aborted(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "big.bin").write_bytes(bytes(64 * 1024 * 1024))
    with MockServer(ServerConfig(time_scale=SCALE, assets=folder)) as srv:
        with httpx.stream("GET", srv.asset_url("big.bin")) as response:
            next(response.iter_bytes(65536))
        entry = srv.platform.wait_for(
            lambda: [d for d in srv.downloads() if d["state"] != "started"], 10, "the end of the download"
        )[0]
        assert entry["state"] == "aborted" and entry["completed"] == 0 and entry["bytes"] < entry["size"]
        assert not srv.engine.fetched  # an aborted download does not count as fetched


def test_success_without_download_is_a_finding(server: MockServer, client: httpx.Client) -> None:
    task = example_for("server/tasks/upgrade")
    local_downloads(task, server.asset_url)
    server.enqueue("LAZY", task)
    sent = client.post("/taskRequest", json=poll_body("LAZY")).json()
    client.post("/taskResult", json=result_body("LAZY", sent))
    assert errors(server.findings("LAZY")) == {"DOWNLOAD-FETCHED"}
