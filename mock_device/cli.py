"""``facecert device``: run the reference device (or a fleet) against a server."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from facecert.clicommon import TimeScaleOpt, VersionOpt, fail
from facecert.core.defaults import DEFAULT_DEVICE_ID, DEFAULT_LISTEN, TIME_SCALE
from facecert.heap import settle
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.faults import FAULTS, check_faults
from facecert.mock_device.fleet import Fleet
from facecert.mock_device.fleet_cli import register as register_fleet
from facecert.mock_device.judge import judge_device

console = Console()


def faults_table() -> Table:
    """Every knob; the names never wrap, the description takes what is left (and folds)."""
    table = Table(title="fault knobs (--fault NAME)", show_lines=False)
    table.add_column("knob", no_wrap=True)
    table.add_column("rule broken", no_wrap=True)
    table.add_column("what the device does (what the run needs)", overflow="fold", ratio=1)
    for fault in FAULTS:
        rule = Text(fault.rule) if fault.rule else Text(f"none: {fault.check}", style="dim")
        version = f" (declares V{fault.protocol_version})" if fault.protocol_version else ""
        table.add_row(fault.name, rule, Text(f"{fault.description}{version} (needs: {fault.scenario})"))
    return table


def status_line(fleet: Fleet, started: float, duration: float | None) -> str:
    total = fleet.counters()
    elapsed = time.time() - started
    left = f" / {duration:g} s" if duration else ""
    return (
        f"[bold]{len(fleet.devices)}[/] device(s)  {elapsed:6.1f} s{left}  polls [cyan]{total['polls']}[/]  "
        f"tasks done [green]{total['results']}[/]  captures sent [green]{total['captures_sent']}[/] "
        f"buffered [yellow]{total['captures_buffered']}[/] dropped [red]{total['captures_dropped']}[/]  "
        f"failures [red]{total['failures']}[/]"
    )


SUMMARY_KEYS = (
    "polls",
    "idle",
    "tasks",
    "results",
    "task_failures",
    "failures",
    "captures_sent",
    "captures_buffered",
    "captures_dropped",
    "alarms",
    "gps",
    "latency_p50_ms",
    "latency_p95_ms",
)


class SummaryView:
    """Counters per device and for all: a device per row when that fits the console, else a
    device per column (as many as fit side by side), so no figure is ever cut off."""

    def __init__(self, rows: list[dict], total: dict, more: int) -> None:
        self.rows, self.total, self.more = rows, total, more

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        wide = self._by_device()
        if self._fits(console, options, wide):  # every header and figure whole
            yield wide
        else:
            columns = [(str(row["device_id"]), row) for row in self.rows]
            if len(self.rows) != 1:
                columns.append(("all", self.total))
            start = 0
            while start < len(columns):
                size = len(columns) - start
                while size > 1 and not self._fits(console, options, self._by_key(columns[start : start + size])):
                    size -= 1
                yield self._by_key(columns[start : start + size])
                start += size
        if self.more:
            yield Text(f"and {self.more} more device(s) not shown")

    @staticmethod
    def _fits(console: Console, options: ConsoleOptions, table: Table) -> bool:
        """The table's natural width (nothing wrapped or cut) is within the console's."""
        natural = Measurement.get(console, options.update_width(100_000), table).maximum
        return natural <= options.max_width

    def _by_device(self) -> Table:
        table = Table(title="summary")
        table.add_column("device")
        for key in SUMMARY_KEYS:
            table.add_column(key.replace("_", " "), justify="right")
        for row in self.rows:
            table.add_row(str(row["device_id"]), *(str(row[k]) for k in SUMMARY_KEYS))
        table.add_row(Text("all", style="bold"), *(Text(str(self.total[k]), style="bold") for k in SUMMARY_KEYS))
        return table

    def _by_key(self, columns: list[tuple[str, dict]]) -> Table:
        table = Table(title="summary")
        table.add_column("", no_wrap=True)
        for name, _ in columns:
            table.add_column(name, justify="right", overflow="fold")
        for key in SUMMARY_KEYS:
            table.add_row(key.replace("_", " "), *(str(values[key]) for _, values in columns))
        return table


def summary_table(fleet: Fleet, per_device_limit: int = 20) -> SummaryView:
    rows = fleet.per_device()
    return SummaryView(rows[:per_device_limit], fleet.summary(), max(0, len(rows) - per_device_limit))


def print_judgement(fleet: Fleet) -> int:
    """Findings of every device's recording, counted by party and rule; 1 when any is an error."""
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for member in fleet.devices:
        for finding in judge_device(member).findings:
            counts[(finding.party, finding.rule, finding.severity.value)] += 1
    table = Table(title="findings (device's recording, fresh engine)")
    for column in ("party", "rule", "severity", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for (party, rule, severity), count in sorted(counts.items()):
        table.add_row(party, rule, severity, str(count))
    console.print(table if counts else "[green]no findings[/]")
    return 1 if any(severity == "error" for _, _, severity in counts) else 0


async def _run(fleet: Fleet, duration: float | None, live: Live, started: float) -> bool:
    """Run until the duration ends, the devices stop, or SIGTERM (True: it came). SIGTERM ends the run as the
    duration does (a signal handler that raised would land the interrupt inside a device's request task)."""
    stop, terminated = asyncio.Event(), asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no handler off the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated.set)
    runner = asyncio.create_task(fleet.run(stop))
    deadline = started + duration if duration else None
    try:
        while not runner.done() and not terminated.is_set():
            live.update(status_line(fleet, started, duration))
            if deadline is not None and time.time() >= deadline:
                break
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        await runner
    return terminated.is_set()


def register(app: typer.Typer) -> None:
    register_fleet(app)  # facecert fleet: the devices on Locust (mock_device/fleet_cli.py)

    @app.command()
    def device(
        server: str | None = typer.Option(
            None,
            "--server",
            help="base URL of the platform server (server_url, may carry a path prefix; http:// is implied)",
        ),
        device_id: str = typer.Option(
            DEFAULT_DEVICE_ID, "--id", help="device_id (with --count: the prefix of numbered ids)"
        ),
        count: int = typer.Option(1, "--count", min=1, max=100_000, help="run this many devices in one process"),
        time_scale: TimeScaleOpt = TIME_SCALE,
        fault: list[str] = typer.Option(
            [], "--fault", help="break one rule on purpose (repeatable; see --list-faults)"
        ),
        captures_per_minute: float = typer.Option(
            0.0, "--captures-per-minute", min=0.0, help="captures per simulated minute per device"
        ),
        protocol_version: VersionOpt = None,
        duration: float | None = typer.Option(
            None, "--duration", min=0.1, help="stop after this many seconds (default: until Ctrl-C)"
        ),
        spool_dir: Path | None = typer.Option(
            None, "--spool-dir", help="keep undelivered captures here (resume transfer); default: in memory"
        ),
        no_resume: bool = typer.Option(False, "--no-resume-transfer", help="drop captures that cannot be delivered"),
        gps: bool = typer.Option(False, "--gps", help="report GPS positions along a simulated route"),
        persona: str = typer.Option(
            "spec",
            "--persona",
            help="spec: only the document's fields; field: also the "
            "vendor extras field devices send (schemas/catalogue.yaml vendor_extras)",
        ),
        judge: bool = typer.Option(
            False,
            "--judge",
            help="at the end, judge each device's own recording with the "
            "engine (the server's answers too); exit 1 when there are errors",
        ),
        list_faults: bool = typer.Option(False, "--list-faults", help="list the fault knobs and exit"),
    ) -> None:
        """Run the reference device (or --count N of them) against a server, with a live status line."""
        if list_faults:
            console.print(faults_table())
            raise typer.Exit(0)
        if not server:
            fail(console, f"--server URL is required (e.g. --server http://{DEFAULT_LISTEN})")
        try:
            template = DeviceConfig(
                server=server,
                device_id=device_id,
                time_scale=time_scale,
                faults=check_faults(fault),
                protocol_version=protocol_version,
                captures_per_minute=captures_per_minute,
                spool_dir=spool_dir,
                resume_transfer=not no_resume,
                record=judge,
                persona=persona,
            )
            fleet = Fleet(template, count, id_prefix=device_id)
        except ValueError as exc:
            fail(console, escape(str(exc)))
        if gps:
            for member in fleet.devices:
                member.gps_start()
        settle()  # the heap of imports and set-up, out of the collector's walks (facecert/heap.py)
        started = time.time()
        try:
            with Live(status_line(fleet, started, duration), console=console, refresh_per_second=4) as live:
                if asyncio.run(_run(fleet, duration, live, started)):
                    console.print("[yellow]stopped (SIGTERM)[/]")
        except KeyboardInterrupt:
            console.print("[yellow]stopped[/]")
        if not console.is_terminal:
            console.line()  # rich leaves the last status line unterminated in a log or a pipe
        console.print(summary_table(fleet))
        if judge:
            raise typer.Exit(print_judgement(fleet))
