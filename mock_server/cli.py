"""``facecert serve`` (run the mock server) and ``facecert export`` (a session
database as HAR)."""

from __future__ import annotations

import secrets
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from facecert.clicommon import ProfileOpt, TimeScaleOpt, VersionOpt, fail
from facecert.core.defaults import DEFAULT_HOST, DEFAULT_PORT, MAX_BODY_MIN, TIME_SCALE
from facecert.core.model import Exchange
from facecert.heap import settle
from facecert.mock_server.console_feed import ConsoleFeed
from facecert.recording import RecordingState

console = Console(highlight=False)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
SWITCH_INTERVAL_S = 0.001  # benchmarks/stall.py: other devices' p99 while hostile 20 MB messages arrive


def admin_token_for(host: str, token: str | None) -> tuple[str | None, bool]:
    """The control API's token: as given; generated when binding beyond
    localhost without one (second value: it was generated)."""
    if token or host in LOCAL_HOSTS:
        return token or None, False
    return secrets.token_urlsafe(18), True


def serve(
    host: str = typer.Option(DEFAULT_HOST, help="address to bind (beyond 127.0.0.1 the control API needs a token)"),
    port: int = typer.Option(DEFAULT_PORT, min=0, max=65535, help="port (0: any free port)"),
    prefix: str = typer.Option("", help="path prefix of server_url, e.g. /test"),
    db: Path | None = typer.Option(
        None, help="SQLite file for the session (default: in memory, which grows with every exchange)"
    ),
    assets: Path | None = typer.Option(None, help="folder of downloadable files (default: generated)"),
    firmware: Path | None = typer.Option(None, help="serve this file as firmware.bin"),
    profile: ProfileOpt = "strict",
    protocol_version: VersionOpt = None,
    time_scale: TimeScaleOpt = TIME_SCALE,
    max_body: int | None = typer.Option(
        None, min=MAX_BODY_MIN, help="largest accepted body in bytes (default: the contract's limits.max_body_bytes)"
    ),
    admin_token: str | None = typer.Option(None, help="token for /_admin (generated when binding beyond localhost)"),
    port_file: Path | None = typer.Option(None, help="write the bound port here once listening"),
    public_name: list[str] | None = typer.Option(
        None,
        help="another name the control API answers to "
        "(NAME or NAME:PORT; repeatable), e.g. behind a "
        "reverse proxy; other Host names are refused",
    ),
    quiet: bool = typer.Option(False, help="do not print each exchange"),
) -> None:
    """Run the mock platform server a device can be pointed at."""
    # A thread waiting for the interpreter gets it after 1 ms, not 5: while one device's 20 MB message is
    # judged, the others' exchanges (which give it up at every SQLite call) are not held up behind it.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    from facecert.core.defaults import max_body_bytes
    from facecert.mock_server.config import ServerConfig
    from facecert.mock_server.safefiles import replace_file
    from facecert.mock_server.server import MockServer

    if firmware is not None and not firmware.is_file():
        fail(console, f"--firmware {firmware}: no such file")
    if assets is not None and assets.exists() and not assets.is_dir():
        fail(console, f"--assets {assets}: not a folder")
    admin_token, generated = admin_token_for(host, admin_token)
    if generated:
        console.print(f"[bold]admin token (generated):[/] {admin_token}")
    config = ServerConfig(
        host=host,
        port=port,
        prefix=prefix,
        db=db,
        assets=assets,
        profile=profile,
        protocol_version=protocol_version,
        time_scale=time_scale,
        max_body=max_body or max_body_bytes(),
        admin_token=admin_token,
        firmware=firmware,
        public_names=tuple(public_name or ()),
    )
    feed: ConsoleFeed | None = None
    try:
        server = MockServer(config)
        if not quiet:  # printed by a thread of its own: the console never holds up an answer
            feed = ConsoleFeed(console).start()
            server.platform.listeners.append(feed)
        settle()  # the heap of imports and set-up, out of the collector's walks (facecert/heap.py)
        server.start()
    except (OSError, RuntimeError, ValueError, sqlite3.Error) as exc:
        fail(console, f"cannot start the server: {exc}")
    if port_file is not None:
        try:
            replace_file(port_file, str(server.port).encode())  # never through a planted symlink
        except OSError as exc:
            server.stop()
            fail(console, f"cannot write --port-file {port_file}: {exc}")
    console.print(
        f"[bold green]facecert mock server[/] listening; configure the device with server_url "
        f"[bold]{escape(server.url.removeprefix('http://'))}[/]"
    )
    if db is None:
        # the whole record, captures included, lives in this process: a day of a fleet is gigabytes of RAM
        console.print(
            "[yellow]the session is kept in memory and grows with every exchange; for a long run give "
            "--db FILE (it is kept on disk instead, and a restart on it resumes the queues)[/]"
        )
    console.print(
        f"live page {escape(server.url)}/  control API {escape(server.url)}/_admin/  "
        f"db {db or 'in memory'}  (Ctrl-C stops)"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if feed is not None:
            feed.stop()
        _say_unrecorded(console, server.platform.recording.state())
        console.print("stopped")


def _say_unrecorded(console: Console, state: RecordingState) -> None:
    """The last word on a session whose store could not keep everything (a full disk): its record is not
    the whole conversation, and whoever reads it later must know."""
    if not state.complete:
        console.print(
            f"[bold red]the record is incomplete:[/] {state.refused} device request(s) were answered 503 "
            f"because they could not be recorded ({escape(state.cause)})"
        )


def export(
    har: bool = typer.Option(True, "--har", help="write HAR 1.2 (the only format for now)"),
    db: Path = typer.Option(..., "--db", help="session database written by facecert serve --db"),
    output: Path = typer.Option(..., "-o", "--output", help="HAR file to write"),
) -> None:
    """Write a mock-server session database as HAR (facecert validate reads it)."""
    from facecert.core.captures import write_har
    from facecert.mock_server.store import iter_exchanges

    written = 0

    def counted(exchanges: Iterator[Exchange]) -> Iterator[Exchange]:
        nonlocal written
        for exchange in exchanges:
            written += 1
            yield exchange

    try:
        write_har(counted(iter_exchanges(db)), output, creator="facecert mock server")  # a page at a time
    except (FileNotFoundError, ValueError) as exc:
        fail(console, str(exc))
    console.print(f"{written} exchange(s) written to {output}")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(export)
