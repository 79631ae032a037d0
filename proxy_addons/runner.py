"""``facecert proxy``: mitmdump with the addon between a device and its server.

The command prints where to point the device, echoes the live findings, and on
Ctrl-C forwards SIGINT to mitmdump, waits for the addon's final reports and
prints the summary from ``summary.json`` — the same file CI would read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape

from facecert.core.files import replace_with
from facecert.core.jsonsafe import dumps_strict, printable
from facecert.core.model import Finding, Severity
from facecert.evidence import MANIFEST, SEALS
from facecert.liveconsole import LiveConsole
from facecert.proxy_addons.process import Mitmdump, MitmdumpConfig, MitmdumpError
from facecert.proxy_addons.reports import paths_in
from facecert.reports.console import findings_table, print_verdict

_NOISE = ("client connect", "client disconnect", "server connect", "server disconnect")
_COLOURS = {"facecert ERROR": "bold red", "facecert WARNING": "yellow", "facecert INFO": "dim"}


class UsageError(ValueError):
    """An option the user gave cannot be used (exit code 2)."""


def parse_upstream(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--upstream {text!r}: give the server's base URL, e.g. http://192.168.1.10:8080")
    try:
        parts.port  # noqa: B018 - reading it raises ValueError for a port that is no number in range
    except ValueError:
        raise UsageError(f"--upstream {text!r}: the port is not a number") from None
    return text.rstrip("/")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


def device_addresses(host: str, port: int) -> list[str]:
    """What to type into the device: the proxy's address as the device can reach it."""
    if host not in ("0.0.0.0", "::", ""):
        return [f"http://{host}:{port}"]
    try:
        ips = sorted({ip for ip in socket.gethostbyname_ex(socket.gethostname())[2] if not ip.startswith("127.")})
    except OSError:
        ips = []
    return [f"http://{ip}:{port}" for ip in ips] or [f"http://<this machine's address>:{port}"]


def run_proxy(
    *,
    upstream: str,
    listen: str,
    report: Path,
    options: dict[str, object],
    console: Console,
    baseline: Path | None = None,
    write_baseline: Path | None = None,
    confdir: Path | None = None,
) -> int:
    from facecert.baseline import BaselineError, load_baseline

    try:
        upstream = parse_upstream(upstream)
        host, port = parse_listen(listen)
        previous = load_baseline(baseline) if baseline is not None else None
    except (UsageError, BaselineError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    report = report.resolve()
    # never inside the report: the folder is sealed and handed around, and this holds the CA's private key
    confdir = (confdir or Path.home() / ".mitmproxy").resolve()
    if confdir.is_relative_to(report):
        console.print(
            f"[bold red]error:[/] --confdir {confdir} is inside the report folder: the CA key would be shared"
        )
        return 2
    config = MitmdumpConfig(
        upstream=upstream,
        confdir=confdir,
        listen_host=host,
        listen_port=port,
        options={**options, "facecert_report_dir": str(report)},
    )
    _forget_earlier_reports(report)
    # echoed from a thread of its own: a stdout nobody reads must not stop the reading of mitmdump's output, whose
    # writes (and with them the proxied traffic) would block once its pipe filled
    echo = LiveConsole(console, _echo_line, "mitmdump line(s) not shown: the console fell behind").start()
    dump = Mitmdump(config, on_line=lambda line: echo(line) if _shown(line) else None)
    with _signals_counted(on_second=dump.kill_now) as signals:
        try:
            code = _run_until_stopped(dump, signals, console, upstream, report, host, port)
        finally:
            if dump.returncode is None:
                dump.kill()  # whatever went wrong here, no mitmdump is left running in its own session
    echo.stop()  # its last lines before the summary
    if code is None:
        return 2
    if signals.count > 1:
        console.print("[yellow]interrupted again while it wrote its reports: mitmdump was killed[/]")
    if code not in (0, None):
        console.print(f"[yellow]mitmdump exited with code {code}[/]")
    return print_summary(report, console, previous, str(baseline or ""), write_baseline)


def _forget_earlier_reports(report: Path) -> None:
    """An earlier run's summary, JUnit, HAR and seal in the same folder go first (this run's replace them
    anyway): should this run's not be written (a full disk), nothing earlier is read or sealed as this run's."""
    paths = paths_in(report)
    for path in (paths.summary, paths.junit, paths.har, *(report / name for name in sorted(SEALS))):
        if os.path.lexists(path):
            path.unlink()  # a link is removed, not followed


def _print_addresses(console: Console, upstream: str, report: Path, host: str, port: int) -> None:
    console.print(f"[bold]facecert proxy[/] → {escape(upstream)}   reports: {report}")
    for address in device_addresses(host, port):
        console.print(
            f"  point the device's server_url at [bold cyan]{address}[/] (keep the server's path prefix, if any)"
        )
    console.print("  [dim]Ctrl-C stops the proxy and prints the summary[/]")


class _Signals:
    """SIGINT and SIGTERM, counted: the handler only counts (and on the second one kills mitmdump), so no
    exception lands inside Popen or a thread's start, where it would orphan mitmdump or break its reader."""

    def __init__(self, on_second: Callable[[], None]) -> None:
        self.count = 0
        self._on_second = on_second

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 2:
            self._on_second()


@contextmanager
def _signals_counted(on_second: Callable[[], None]) -> Iterator[_Signals]:
    """Both signals mean "stop and report", even where the shell ignored SIGINT (a script's background job).
    (A SIGINT the shell made ignored that comes while Python itself starts, before this, is still lost:
    scripts stop a background proxy with SIGTERM, whose default stops it then.)"""
    signals = _Signals(on_second)
    previous = {sig: signal.signal(sig, signals) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_until_stopped(
    dump: Mitmdump, signals: _Signals, console: Console, upstream: str, report: Path, host: str, port: int
) -> int | None:
    """Start mitmdump, say where to point the device, and wait for a signal or mitmdump's end: its exit
    code, or None when it did not get as far as listening (an error, or interrupted while starting)."""
    try:
        with console.status("starting mitmdump…"):
            dump.start(cancelled=lambda: signals.count > 0)
    except MitmdumpError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return None
    if dump.address is None:  # interrupted before it listened: no flow passed, so there is nothing to report
        dump.kill()
        console.print("[yellow]interrupted before mitmdump was listening: no traffic passed, no report written[/]")
        return None
    _print_addresses(console, upstream, report, host, dump.address[1])
    while signals.count == 0 and dump.returncode is None:
        time.sleep(0.1)  # a signal only counts (see _Signals); this notices it
    if signals.count == 0:
        return dump.returncode
    with console.status("stopping mitmdump; the addon is writing its reports… (Ctrl-C again kills it)"):
        return dump.stop(timeout=120)


def _shown(line: str) -> bool:
    return not any(noise in line for noise in _NOISE)


def _echo_line(line: str, markup: bool) -> str:
    """mitmdump's line, coloured by the severity of the finding it carries (on a terminal); its control
    characters escaped (it may quote a device's path or name)."""
    line = printable(line)
    if not markup:
        return line
    style = next((colour for key, colour in _COLOURS.items() if key in line), "")
    return f"[{style}]{escape(line)}[/]" if style else escape(line)


def print_summary(
    report: Path, console: Console, baseline: dict | None = None, source: str = "", write_baseline: Path | None = None
) -> int:
    """The verdict from summary.json; exit code 0 pass, 1 fail, 2 no final summary or no seal. With a ``baseline``
    (an earlier summary) only what is new fails, and summary.json gets the ``baseline`` block."""
    from facecert.baseline import compare, print_comparison
    from facecert.baseline import write_baseline as save_baseline

    path = paths_in(report).summary
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(
            f"[bold red]error:[/] no usable summary at {path} ({exc.__class__.__name__}): the proxy could not "
            "write it (its lines above say why)"
        )
        return 2
    if not summary.get("final"):  # one written on request during the run: the final one could not be written
        console.print(
            f"[bold red]error:[/] the final summary could not be written ({path} is from during the run; "
            "the proxy's lines above say why)"
        )
        return 2
    if not (report / MANIFEST).exists():
        console.print("[bold red]error:[/] the reports are not sealed: not all of them could be written (see above)")
        return 2
    code = 1 if summary["verdict"] == "fail" else 0
    if baseline is not None:
        summary["baseline"] = compare(baseline, summary, source=source).to_dict()
        code = 1 if summary["baseline"]["failed"] else 0
        replace_with(path, lambda out: out.write(dumps_strict(summary, indent=2)))
    if write_baseline is not None:
        save_baseline(summary, write_baseline, command="proxy")
    shown = [
        Finding(**{**f, "severity": Severity(f["severity"])})
        for f in summary["findings"]
        if f["severity"] != Severity.INFO.value
    ]
    if shown:
        console.print(findings_table(shown, title="Findings (errors and warnings)"))
    print_verdict(console, summary)
    if summary.get("addon_errors"):
        console.print(
            f"[yellow]{summary['addon_errors']} internal error(s) of the addon were contained; "
            f"the flows passed untouched (see summary.json)[/]"
        )
    if summary.get("write_failures"):
        console.print(
            f"[bold red]{summary['write_failures']} write(s) the disk refused[/] before the summary "
            "(the record, its sync): the proxy's lines above say which"
        )
    if summary.get("unrecorded"):
        console.print(
            f"[bold red]the record is incomplete:[/] {summary['unrecorded']} flow(s) passed on unrecorded "
            f"({escape(summary.get('unrecorded_cause') or '')}); they were judged live, and a replay of the record "
            "will not see them"
        )
    if summary.get("baseline"):
        print_comparison(console, summary["baseline"])
    paths = paths_in(report)
    console.print(f"reports: {paths.summary}, {paths.junit}, {paths.allure}/, HAR {paths.har}")
    return code
