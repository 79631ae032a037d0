"""``facecert device``: run the reference device (or a fleet) against a server."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from facecert.clicommon import TimeScaleOpt, VersionOpt, fail

from mock_device.config import DeviceConfig
from mock_device.faults import FAULTS, check_faults
from mock_device.fleet import Fleet
from mock_device.judge import judge_device

console = Console()


def faults_table() -> Table:
    table = Table(title="fault knobs (--fault NAME)", show_lines=False)
    for column in ("knob", "rule broken", "what the device does", "needs"):
        table.add_column(column)
    for fault in FAULTS:
        rule = fault.rule or f"[dim]none: {fault.check}[/]"
        version = f" (declares V{fault.protocol_version})" if fault.protocol_version else ""
        table.add_row(fault.name, rule, fault.description + version, fault.scenario)
    return table


def status_line(fleet: Fleet, started: float, duration: float | None) -> str:
    total = fleet.counters()
    elapsed = time.time() - started
    left = f" / {duration:g} s" if duration else ""
    return (f"[bold]{len(fleet.devices)}[/] device(s)  {elapsed:6.1f} s{left}  polls [cyan]{total['polls']}[/]  "
            f"tasks done [green]{total['results']}[/]  captures sent [green]{total['captures_sent']}[/] "
            f"buffered [yellow]{total['captures_buffered']}[/] dropped [red]{total['captures_dropped']}[/]  "
            f"failures [red]{total['failures']}[/]")


def summary_table(fleet: Fleet, per_device_limit: int = 20) -> Table:
    table = Table(title="summary")
    keys = ("polls", "idle", "tasks", "results", "task_failures", "failures", "captures_sent", "captures_buffered",
            "captures_dropped", "alarms", "gps", "latency_p50_ms", "latency_p95_ms")
    table.add_column("device")
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    rows = fleet.per_device()
    for row in rows[:per_device_limit]:
        table.add_row(row["device_id"], *(str(row[k]) for k in keys))
    if len(rows) > per_device_limit:
        table.add_row(f"… {len(rows) - per_device_limit} more", *("" for _ in keys))
    total = fleet.summary()
    table.add_row("[bold]all[/]", *(f"[bold]{total[k]}[/]" for k in keys))
    return table


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


async def _run(fleet: Fleet, duration: float | None, live: Live, started: float) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(fleet.run(stop))
    deadline = started + duration if duration else None
    try:
        while not runner.done():
            live.update(status_line(fleet, started, duration))
            if deadline is not None and time.time() >= deadline:
                break
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        await runner


def register(app: typer.Typer) -> None:
    @app.command()
    def device(
        server: Optional[str] = typer.Option(None, "--server", help="base URL of the platform server "
                                             "(server_url, may carry a path prefix; http:// is implied)"),
        device_id: str = typer.Option("ID00000000000001", "--id",
                                      help="device_id (with --count: the prefix of numbered ids)"),
        count: int = typer.Option(1, "--count", min=1, max=100_000, help="run this many devices in one process"),
        time_scale: TimeScaleOpt = 1.0,
        fault: list[str] = typer.Option([], "--fault", help="break one rule on purpose (repeatable; see "
                                        "--list-faults)"),
        captures_per_minute: float = typer.Option(0.0, "--captures-per-minute", min=0.0,
                                                  help="captures per simulated minute per device"),
        protocol_version: VersionOpt = None,
        duration: Optional[float] = typer.Option(None, "--duration", min=0.1, help="stop after this many seconds "
                                                 "(default: until Ctrl-C)"),
        spool_dir: Optional[Path] = typer.Option(None, "--spool-dir", help="keep undelivered captures here "
                                                 "(resume transfer); default: in memory"),
        no_resume: bool = typer.Option(False, "--no-resume-transfer", help="drop captures that cannot be delivered"),
        gps: bool = typer.Option(False, "--gps", help="report GPS positions along a simulated route"),
        persona: str = typer.Option("spec", "--persona", help="spec: only the document's fields; field: also the "
                                    "vendor extras field devices send (schemas/catalogue.yaml vendor_extras)"),
        judge: bool = typer.Option(False, "--judge", help="at the end, judge each device's own recording with the "
                                   "engine (the server's answers too); exit 1 when there are errors"),
        list_faults: bool = typer.Option(False, "--list-faults", help="list the fault knobs and exit"),
    ) -> None:
        """Run the reference device (or --count N of them) against a server, with a live status line."""
        if list_faults:
            console.print(faults_table())
            raise typer.Exit(0)
        if not server:
            fail(console, "--server URL is required (e.g. --server http://127.0.0.1:8080)")
        try:
            template = DeviceConfig(server=server, device_id=device_id, time_scale=time_scale,
                                    faults=check_faults(fault), protocol_version=protocol_version,
                                    captures_per_minute=captures_per_minute, spool_dir=spool_dir,
                                    resume_transfer=not no_resume, record=judge, persona=persona)
            fleet = Fleet(template, count, id_prefix=device_id)
        except ValueError as exc:
            fail(console, escape(str(exc)))
        if gps:
            for member in fleet.devices:
                member.gps_start()
        started = time.time()
        try:
            with Live(status_line(fleet, started, duration), console=console, refresh_per_second=4) as live:
                asyncio.run(_run(fleet, duration, live, started))
        except KeyboardInterrupt:
            console.print("[yellow]stopped[/]")
        console.print(summary_table(fleet))
        if judge:
            raise typer.Exit(print_judgement(fleet))
