"""Requests the hostile corpus found answered 500 or with a tunnel: a CONNECT to
a device endpoint (a 2xx would switch the connection to a tunnel) and an asset
name longer than the filesystem takes. Both get a 4xx and are stored."""

from __future__ import annotations

import socket

from facecert.mock_server import MockServer


def raw(server: MockServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_connect_to_a_device_endpoint_is_refused_and_stored(server: MockServer) -> None:
    answer = raw(
        server, b"CONNECT /taskRequest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    assert answer.startswith(b"HTTP/1.1 405"), answer[:200]
    stored = [e for e in server.exchanges() if e["method"] == "CONNECT"]
    assert stored and stored[-1]["status"] == 405


def test_an_asset_name_too_long_for_the_filesystem_is_not_found(server: MockServer) -> None:
    # Over NAME_MAX (255) and PATH_MAX (4096), under h11's 16 KiB limit for an incomplete request head: a
    # longer line reaches the app or not depending on how the kernel splits it (the app answers 404 if the
    # head arrives in one read; h11 answers 400 and closes, resetting an unread rest, if it does not).
    name = "n" * 8192
    answer = raw(server, f"GET /assets/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert server.platform.assets.resolve("ok.jpg" * 20000) is None
