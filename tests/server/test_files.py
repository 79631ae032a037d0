"""Files the server writes never follow a symlink: links planted in the asset
folder (pointing at existing or not-yet-existing files outside it), a linked
session database, a linked port file — the files outside stay untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from facecert.mock_server import MockServer, ServerConfig
from facecert.mock_server.safefiles import replace_file, write_new_file
from tests.server.test_kill import _wait_for_line
from tests.support import SCALE

ROOT = Path(__file__).resolve().parents[2]


def test_links_in_the_asset_folder_are_not_written_through(tmp_path: Path) -> None:
    outside, folder = tmp_path / "outside", tmp_path / "assets"
    outside.mkdir()
    folder.mkdir()
    victim = outside / "victim.jpg"
    victim.write_bytes(b"precious")
    (folder / "face.jpg").symlink_to(victim)  # an existing file outside
    (folder / "screensaver.png").symlink_to(outside / "planted.png")  # dangling: would be created outside
    (folder / "firmware.bin").symlink_to(outside / "firmware.bin")
    firmware = tmp_path / "vendor.img"
    firmware.write_bytes(b"VENDOR" * 100)
    with MockServer(ServerConfig(time_scale=SCALE, assets=folder)) as srv:
        assert httpx.get(srv.asset_url("face.jpg")).status_code == 404  # leads out of the folder
        assert httpx.get(srv.asset_url("screensaver.png")).status_code == 404
    with MockServer(ServerConfig(time_scale=SCALE, assets=folder, firmware=firmware)) as srv:
        assert httpx.get(srv.asset_url("firmware.bin")).content == firmware.read_bytes()
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in outside.iterdir()) == ["victim.jpg"]
    assert (folder / "face.jpg").is_symlink() and (folder / "firmware.bin").is_symlink()


def test_defaults_are_created_only_where_nothing_is(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "face.jpg").write_bytes(b"mine")
    with MockServer(ServerConfig(time_scale=SCALE, assets=folder)) as srv:
        assert httpx.get(srv.asset_url("face.jpg")).content == b"mine"
        assert httpx.get(srv.asset_url("screensaver.png")).content.startswith(b"\x89PNG")


@pytest.mark.parametrize("link", ["session.db", "session.db-wal", "session.db-journal"])
def test_a_linked_session_database_is_refused(tmp_path: Path, link: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / link).symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        MockServer(ServerConfig(time_scale=SCALE, db=tmp_path / "session.db"))
    assert victim.read_text() == "precious"


def test_safe_writers_refuse_links_and_odd_names(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "new").symlink_to(victim)
    assert write_new_file(tmp_path, "new", b"x") is False
    replace_file(tmp_path / "new", b"fresh")
    assert victim.read_text() == "precious"
    assert (tmp_path / "new").read_bytes() == b"fresh" and not (tmp_path / "new").is_symlink()
    for name in ("../escape", "", ".."):
        with pytest.raises(ValueError):
            write_new_file(tmp_path, name, b"x")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_serve_port_file_does_not_follow_a_link(tmp_path: Path) -> None:
    victim, port_file = tmp_path / "victim.txt", tmp_path / "port"
    victim.write_text("precious")
    port_file.symlink_to(victim)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facecert.mock_server",
            "serve",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        _wait_for_line(proc, "listening", timeout=30)
        assert victim.read_text() == "precious"
        assert not port_file.is_symlink() and int(port_file.read_text()) > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_big_bodies_live_in_files_beside_the_database(tmp_path: Path) -> None:
    from tests.server.helpers import capture_body, jpeg_claiming, with_capture_image

    db = tmp_path / "session.db"
    image = jpeg_claiming(64, 64) + bytes(3 * 1024 * 1024)  # a JPEG with 3 MiB of trailing bytes
    body = with_capture_image(capture_body("BIG"), image)
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as srv:
        sent = httpx.post(srv.url + "/faceRecognition", json=body)
        assert sent.status_code < 500
        capture = srv.captures("BIG")[-1]
        assert capture["has_image"] and srv.platform.capture_image(capture["id"]) == image
        assert srv.exchanges("BIG")[-1]["request_bytes"] == len(sent.request.content)
        har = httpx.get(srv.url + "/_admin/export.har").json()  # exports hold no faces (issue 13)
        assert "facecert-redacted:image/jpeg" in har["log"]["entries"][-1]["request"]["postData"]["text"]
    files = sorted((tmp_path / "session.db.bodies").iterdir())  # the image is read from the body, not kept twice
    assert [f.read_bytes() for f in files] == [sent.request.content]
    assert db.stat().st_size < 1024 * 1024
    with MockServer(ServerConfig(time_scale=SCALE, db=db)) as again:  # read back after a restart
        assert again.platform.capture_image(capture["id"]) == image
    from facecert.mock_server.store import read_exchanges

    assert read_exchanges(db)[-1].request_body == sent.request.content


def test_a_linked_bodies_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "session.db.bodies").symlink_to(outside)
    with pytest.raises(ValueError, match="symbolic link"):
        MockServer(ServerConfig(time_scale=SCALE, db=tmp_path / "session.db"))
    assert list(outside.iterdir()) == []
