"""``facecert fleet``: many reference devices on Locust, with a verdict per device.

This process never imports Locust or gevent (gevent patches the process it is imported in): it
starts ``python -m locust -f mock_device/locustfile.py`` as a master and K local workers (or only
a master, or only a worker, for several machines), shows their progress from the master's
``progress.json``, and reads the verdicts back from ``fleet.json`` when the master ends.

Exit codes: 0 every device as expected (clean without a knob, naming the knob's rule with one),
1 not (a device failed or was served badly; or Locust ended without verdicts),
2 the invocation could not be used (bad options, the server unreachable, the report's disk full), or the
only devices not as expected were driven late by the load generator (no verdict: :func:`exit_code`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from facecert.clicommon import TimeScaleOpt, VersionOpt, fail, sigterm_interrupts
from facecert.core.contract import get_contract
from facecert.mock_device.config import server_url
from facecert.mock_device.faults import check_faults
from facecert.mock_device.verdict import VERDICTS, check_fleet_faults

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
console = Console()
STARTUP_S = 60.0  # for Locust to start and local workers to connect
REMOTE_STARTUP_S = 900.0  # --master: for someone to start the workers on the other machines
GATHER_S = 90.0  # for the master to gather the verdicts and write its reports
WORKERS_QUIT_S = 5.0  # for the local workers to quit once the master has ended (they do within a second)
LOCAL = "127.0.0.1"
# the master's reports (fleet.json, Locust's CSV and HTML) need at least this much room: less is a full disk
FULL_BELOW = 1024 * 1024


def locust_command(*args: str) -> list[str]:
    """``python -m locust -f <the packaged locustfile> …`` with this interpreter (so, this venv)."""
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args]


def free_port(host: str = LOCAL) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def reachable(url: str, timeout: float = 3.0) -> str | None:
    """None when a TCP connection to the server opens (no request is sent); otherwise why not."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__


def master_args(
    *,
    server: str,
    devices: int,
    spawn_rate: float,
    duration: float,
    report: Path,
    bind: str,
    port: int,
    workers: int,
    time_scale: float,
    faults: list[str],
    fault_share: float,
    captures_per_minute: float,
    gps: bool,
    protocol_version: str | None,
    id_prefix: str,
    wait_workers_s: float = STARTUP_S,
) -> list[str]:
    """The master's command line: headless, expecting ``workers``, Locust's CSV and HTML into ``report``."""
    args = [
        "--headless",
        "--master",
        "--master-bind-host",
        bind,
        "--master-bind-port",
        str(port),
        "--expect-workers",
        str(workers),
        "--expect-workers-max-wait",
        str(int(wait_workers_s)),
        "--users",
        str(devices),
        "--spawn-rate",
        f"{spawn_rate:g}",
        "--run-time",
        f"{max(1, round(duration))}s",
        "--host",
        server,
        "--csv",
        str(report / "locust"),
        "--csv-full-history",
        "--html",
        str(report / "locust.html"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        "0",
        "--facecert-time-scale",
        f"{time_scale:g}",
        "--facecert-captures-per-minute",
        f"{captures_per_minute:g}",
        "--facecert-id-prefix",
        id_prefix,
        "--facecert-report",
        str(report),
    ]
    if faults:
        args += ["--facecert-fault", ",".join(faults), "--facecert-fault-share", f"{fault_share:g}"]
    if gps:
        args.append("--facecert-gps")
    if protocol_version:
        args += ["--facecert-protocol-version", protocol_version]
    return args


def worker_args(master_host: str, master_port: int) -> list[str]:
    return ["--worker", "--master-host", master_host, "--master-port", str(master_port)]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class Progress:
    """The status line, from the master's progress.json."""

    def __init__(self, devices: int, workers: int, duration: float, nominal: float) -> None:
        self.devices, self.workers, self.duration, self.nominal = devices, workers, duration, nominal
        self.last: tuple[float, float] | None = None  # (time, polls) of the previous reading
        self.rate = 0.0

    def line(self, progress: Any, since: float) -> str:
        waited = time.time() - since
        if not isinstance(progress, dict):
            return f"starting Locust: a master and {self.workers} worker(s)… {waited:4.0f} s"
        phase = progress.get("phase")
        totals = progress.get("totals") or {}
        if phase == "waiting":
            return (
                f"waiting for workers: {progress.get('workers_connected', 0)}/{self.workers} connected… {waited:4.0f} s"
            )
        if phase in ("gathering", "done"):
            return f"gathering the verdicts of {self.workers} worker(s)…"
        now, polls = float(progress.get("time", time.time())), float(totals.get("polls", 0))
        if self.last is not None and now > self.last[0]:
            self.rate = (polls - self.last[1]) / (now - self.last[0])
        self.last = (now, polls)
        elapsed = now - float(progress.get("started", now))
        share = f" ({self.rate / self.nominal:.0%} of nominal)" if self.nominal else ""
        return (
            f"[bold]{progress.get('users', 0)}[/]/{self.devices} devices  {elapsed:5.0f} s / {self.duration:g} s  "
            f"polls [cyan]{int(polls)}[/] ({self.rate:.0f}/s{share})  failures [red]{int(totals.get('failures', 0))}"
            f"[/]  devices with errors [red]{int(totals.get('devices_with_errors', 0))}[/]  late "
            f"[yellow]{int(totals.get('devices_late', 0))}[/]  lag max {totals.get('lag_max_ms', 0):.0f} ms"
        )


def stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM (Locust then writes its reports), SIGKILL after ``grace`` seconds; only our own child."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def shut_down(master: subprocess.Popen[bytes], workers: list[subprocess.Popen[bytes]], logs: list[Any]) -> bool:
    """Let the master gather the verdicts and end, then the workers (bounded waits); the logs closed. False
    when a second Ctrl-C cut that short: every process of ours is killed at once, without a traceback."""
    try:
        stop_process(master, GATHER_S)
        # A worker keeps nothing of its own: once the master has ended (having told them to quit, or dead), all
        # of them share one short wait, then are stopped; before, each waited 15 s in turn for a master that a
        # full disk had killed at its start
        until = time.monotonic() + WORKERS_QUIT_S
        for worker in workers:
            try:
                worker.wait(max(0.0, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop_process(worker, 10)
        return True
    except KeyboardInterrupt:
        console.print("[red]interrupted again: the fleet is stopped without its verdicts[/]")
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
        for process in (master, *workers):
            try:
                process.wait(10)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                pass  # killed; the system reaps it
        return False
    finally:
        for log in logs:
            log.close()


def summary_tables(report: dict[str, Any]) -> list[Table]:
    summary = report["summary"]
    verdicts = Table(title=f"verdicts of {summary['devices']} device(s)")
    verdicts.add_column("verdict")
    verdicts.add_column("devices", justify="right")
    for verdict in VERDICTS:
        verdicts.add_row(verdict, str(summary["verdicts"].get(verdict, 0)))
    knobs = Table(title="devices by fault knob")
    for column in ("knob", "its rule", "devices", "as expected"):
        knobs.add_column(column, justify="right" if column in ("devices", "as expected") else "left")
    for knob, group in summary["faults"].items():
        knobs.add_row(knob, str(group["rule"] or "—"), str(group["devices"]), str(group["as_expected"]))
    rules = Table(title="findings by rule (each device judged on its own clock)")
    for column in ("rule", "severity", "party", "devices", "findings"):
        rules.add_column(column, justify="right" if column in ("devices", "findings") else "left")
    for rule, entry in report["by_rule"].items():
        rules.add_row(
            rule,
            entry["severity"],
            ",".join(entry["parties"]) or "—",
            str(len(entry["devices"])),
            str(entry["findings"]),
        )
    tables = [verdicts, knobs]
    if report["by_rule"]:
        tables.append(rules)
    if summary["unexpected"]:
        odd = Table(title=f"not as expected ({len(summary['unexpected'])}; the first 10)")
        for column in ("device", "knob", "verdict", "device errors", "server errors", "lag max ms"):
            odd.add_column(column)
        for device_id in summary["unexpected"][:10]:
            record = report["devices"][device_id]
            odd.add_row(
                device_id,
                record["fault"] or "—",
                record["verdict"],
                ", ".join(record["errors"]) or "—",
                ", ".join(record["server_errors"]) or "—",
                str(record["lag_max_ms"]),
            )
        tables.append(odd)
    return tables


def run_fleet(
    master_cmd: list[str],
    worker_cmds: list[list[str]],
    report: Path,
    progress: Progress,
    budget_s: float,
) -> int:
    """Start the master and workers, show progress until the master ends (bounded by ``budget_s``), read
    fleet.json; the exit code."""
    for stale in ("fleet.json", "progress.json"):
        (report / stale).unlink(missing_ok=True)
    logs = [open(report / "locust-master.log", "wb")]  # closed below
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    master = subprocess.Popen(master_cmd, stdout=logs[0], stderr=subprocess.STDOUT, env=env, start_new_session=True)
    workers = []
    for number, cmd in enumerate(worker_cmds):
        logs.append(open(report / f"locust-worker-{number}.log", "wb"))
        workers.append(
            subprocess.Popen(cmd, stdout=logs[-1], stderr=subprocess.STDOUT, env=env, start_new_session=True)
        )
    started = time.time()
    deadline = time.monotonic() + budget_s
    interrupted = False
    try:
        with Live(progress.line(None, started), console=console, refresh_per_second=4, transient=True) as live:
            while master.poll() is None:
                live.update(progress.line(read_json(report / "progress.json"), started))
                if time.monotonic() > deadline:
                    console.print(f"[red]the fleet did not end within {budget_s:.0f} s: stopping it[/]")
                    break
                dead = [w for w in workers if w.poll() is not None]
                if dead and (read_json(report / "progress.json") or {}).get("phase") in (None, "waiting"):
                    console.print(f"[red]{len(dead)} worker(s) ended before the run began (see {report})[/]")
                    break
                try:  # wake when the master ends, or every half second to redraw the progress
                    master.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: gathering the verdicts so far… (Ctrl-C again to stop at once)[/]")
    finally:
        gathered = shut_down(master, workers, logs)
    if not gathered:
        return 130
    fleet = read_json(report / "fleet.json")
    if not isinstance(fleet, dict) and disk_is_full(report):
        console.print(f"[bold red]error:[/] {disk_full_message(report, before=False)}")
        return 2
    if not isinstance(fleet, dict):
        tail = (report / "locust-master.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-8:]
        console.print("[bold red]error:[/] Locust ended without verdicts; the master's last lines:")
        for line in tail:
            console.print(f"  {escape(line)}", highlight=False)
        return 1
    for table in summary_tables(fleet):
        console.print(table)
    summary = fleet["summary"]
    console.print(
        f"fleet.json, Locust's statistics (locust_stats.csv, locust_stats_history.csv, locust_failures.csv) and "
        f"its HTML report (locust.html) are in {report}"
    )
    if fleet["meta"].get("missing_workers"):
        console.print(f"[red]{len(fleet['meta']['missing_workers'])} worker(s) sent no verdicts[/]")
        return 1
    if summary["devices_late"]:
        console.print(
            f"[yellow]{summary['devices_late']} device(s) were driven late (load generator overloaded): "
            f"{_why_late(fleet['meta'].get('workers') or {})}[/]"
        )
    code = exit_code(fleet, interrupted)
    if code == 2:
        console.print(
            "[bold red]no verdict:[/] every device not as expected was driven late by the load generator, so "
            "it was not presented to the server as the protocol times it: run again with fewer devices per "
            "worker (more --workers) or on a machine nothing else loads"
        )
    return code


def exit_code(fleet: dict[str, Any], interrupted: bool) -> int:
    """0 every device as expected; 1 one is not (it broke a rule, or the server served it badly), or the run
    was cut short; 2 when the only devices not as expected are ``generator-overloaded``: the load generator
    could not drive them, which is no verdict on the device or the server (an error, not a failure)."""
    summary = fleet["summary"]
    if interrupted or not summary["devices"]:
        return 1
    unexpected = summary["unexpected"]
    if not unexpected:
        return 0
    devices = fleet["devices"]
    return 2 if all(devices[d]["verdict"] == "generator-overloaded" for d in unexpected) else 1


def disk_is_full(folder: Path) -> bool:
    """Whether the filesystem of ``folder`` has no room left for a file (less than FULL_BELOW bytes free): a
    fleet whose master wrote no verdicts and no log there is then the disk's doing, not the devices'."""
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW
    except OSError:
        return False


def disk_full_message(report: Path, before: bool) -> str:
    """What a full disk under ``report`` means for the run: none started (``before``), or no verdicts."""
    where = escape(str(report))
    if before:
        return (
            f"the disk of {where} is full (less than {FULL_BELOW // 1024} KiB free): Locust could not write the "
            "verdicts there, so no fleet was started; free the space or choose another --report"
        )
    return (
        f"no verdicts: the disk of {where} is full, so Locust could not write them (nor its log); "
        "free the space and run again"
    )


def _why_late(workers: dict[str, dict[str, Any]]) -> str:
    """Whether the workers were busy with their devices (add workers) or got no CPU (other load here)."""
    starved = [
        w for w in workers.values() if w.get("stall_max_ms", 0) and w.get("stall_cpu_ms", 0) < w["stall_max_ms"] / 4
    ]
    if starved:
        worst = max(starved, key=lambda w: w["stall_max_ms"])
        return (
            f"{len(starved)} worker(s) did not run for up to {worst['stall_max_ms']:.0f} ms while using "
            f"{worst['stall_cpu_ms']:.0f} ms of CPU: other programs took this machine's CPU"
        )
    return "the workers were busy with their devices: add workers or machines"


def register(app: typer.Typer) -> None:
    @app.command()
    def fleet(
        server: str | None = typer.Option(None, "--server", help="base URL of the platform server (http:// implied)"),
        devices: int = typer.Option(100, "--devices", min=1, max=100_000, help="devices in all (Locust users)"),
        workers: int = typer.Option(
            1, "--workers", min=1, max=64, help="local worker processes (with --master: workers to wait for)"
        ),
        time_scale: TimeScaleOpt = 1.0,
        duration: float = typer.Option(60.0, "--duration", min=1.0, max=86_400.0, help="seconds the run lasts"),
        spawn_rate: float | None = typer.Option(
            None, "--spawn-rate", min=0.01, help="devices started per second (default: all within one idle interval)"
        ),
        fault: list[str] = typer.Option([], "--fault", help="give a share of the devices this knob (repeatable)"),
        fault_share: float = typer.Option(
            0.1, "--fault-share", min=0.0, max=1.0, help="share of devices given a knob (each worker's, knobs in turn)"
        ),
        captures_per_minute: float = typer.Option(
            0.0, "--captures-per-minute", min=0.0, help="captures per simulated minute per device"
        ),
        gps: bool = typer.Option(False, "--gps", help="report GPS positions along a simulated route"),
        protocol_version: VersionOpt = None,
        id_prefix: str = typer.Option("LOC", "--id-prefix", help="device ids: prefix + worker index + number"),
        report: Path = typer.Option(
            Path("reports/fleet"), "--report", help="folder for fleet.json and Locust's reports"
        ),
        master: bool = typer.Option(False, "--master", help="run the master only: workers join from other machines"),
        worker: bool = typer.Option(False, "--worker", help="run one worker for a master elsewhere (--master-host)"),
        master_host: str = typer.Option(LOCAL, "--master-host", help="--worker: the master's address"),
        master_port: int = typer.Option(5557, "--master-port", min=1, max=65535, help="the master's port"),
        bind: str = typer.Option(
            LOCAL, "--bind", help="--master: the interface workers connect to (0.0.0.0: every interface)"
        ),
        locustfile: bool = typer.Option(False, "--locustfile", help="print the locustfile's path (locust -f) and exit"),
    ) -> None:
        """Run many reference devices on Locust (a master and local workers, or several machines) against a
        server; every device judged by the engine; fleet.json and Locust's CSV/HTML reports in --report."""
        if locustfile:
            sys.stdout.write(f"{LOCUSTFILE}\n")
            raise typer.Exit(0)
        if master and worker:
            fail(console, "--master and --worker exclude each other")
        if worker:
            with sigterm_interrupts():  # as Ctrl-C: its Locust worker is stopped, not left behind
                raise typer.Exit(_run_worker(master_host, master_port))
        if not server:
            fail(console, "--server URL is required (e.g. --server http://127.0.0.1:8080)")
        try:
            server = server_url(server)
            knobs = check_fleet_faults(sorted(check_faults(fault)), captures_per_minute, gps) if fault else []
        except ValueError as exc:
            fail(console, escape(str(exc)))
        why = reachable(server)
        if why is not None:
            fail(console, f"server {escape(server)} is not reachable ({escape(why)}): start it or check --server")
        idle = get_contract().timing["idle_interval_s"] * time_scale
        rate = spawn_rate or max(1.0, devices / idle)
        try:  # the logs and fleet.json go there: an unusable folder is the user's to fix, said plainly
            report.mkdir(parents=True, exist_ok=True)
            (report / "locust-master.log").touch()
        except OSError as exc:
            fail(console, f"--report {escape(str(report))}: {escape(exc.strerror or str(exc))}")
        if disk_is_full(report):  # said now, not after a run whose verdicts Locust could not have written
            console.print(f"[bold red]error:[/] {disk_full_message(report, before=True)}")
            raise typer.Exit(2)
        port = master_port if master else free_port()
        cmd = locust_command(
            *master_args(
                server=server,
                devices=devices,
                spawn_rate=rate,
                duration=duration,
                report=report,
                bind=bind if master else LOCAL,
                port=port,
                workers=workers,
                time_scale=time_scale,
                faults=knobs,
                fault_share=fault_share,
                captures_per_minute=captures_per_minute,
                gps=gps,
                protocol_version=protocol_version,
                id_prefix=id_prefix,
                wait_workers_s=REMOTE_STARTUP_S if master else STARTUP_S,
            )
        )
        local = [] if master else [locust_command(*worker_args(LOCAL, port)) for _ in range(workers)]
        if master:
            console.print(
                f"master on {bind}:{port}: start {workers} worker(s) with "
                f"[bold]facecert fleet --worker --master-host <this machine> --master-port {port}[/]"
            )
        nominal = devices / idle
        budget = (REMOTE_STARTUP_S if master else STARTUP_S) + devices / rate + duration + GATHER_S
        # SIGTERM as Ctrl-C: the verdicts gathered and Locust stopped (the default left its processes running)
        with sigterm_interrupts():
            raise typer.Exit(run_fleet(cmd, local, report, Progress(devices, workers, duration, nominal), budget))


def _run_worker(master_host: str, master_port: int) -> int:
    """One worker in the foreground (its log on this terminal) until the master ends the run."""
    console.print(f"worker for the master at {master_host}:{master_port} (Ctrl-C to leave)")
    process = subprocess.Popen(locust_command(*worker_args(master_host, master_port)), start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            stop_process(process, 15)
        except KeyboardInterrupt:  # a second Ctrl-C: at once
            process.kill()
        return 130
