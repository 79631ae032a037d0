"""``facecert proxy``, registered on the main typer app by facecert/cli.py."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from facecert.clicommon import BaselineOpt, ProfileOpt, TimeScaleOpt, ToleranceOpt, VersionOpt, WriteBaselineOpt
from facecert.core.defaults import CADENCE_TOLERANCE, DEFAULT_LISTEN, DEFAULT_PORT, MAX_BODY_MIN, TIME_SCALE


def register(app: typer.Typer) -> None:
    @app.command()
    def proxy(
        upstream: str = typer.Option(..., "--upstream", help="the real server's base URL, e.g. http://10.0.0.5:8080"),
        listen: str = typer.Option(
            DEFAULT_LISTEN,
            "--listen",
            help=f"HOST:PORT the device connects to (0.0.0.0:{DEFAULT_PORT} for a device on the network)",
        ),
        report: Path = typer.Option(
            Path("reports/proxy"),
            "--report",
            help="folder for summary.json, junit.xml, allure-results/ and session.har",
        ),
        profile: ProfileOpt = "strict",
        protocol_version: VersionOpt = None,
        tolerance: ToleranceOpt = CADENCE_TOLERANCE,
        time_scale: TimeScaleOpt = TIME_SCALE,
        check_downloads: bool = typer.Option(
            False,
            "--check-downloads",
            help="the device's downloads pass through this proxy: a task done without fetching its URL is an error",
        ),
        max_body: int | None = typer.Option(
            None,
            "--max-body",
            min=MAX_BODY_MIN,
            help="judge bodies from at most this many "
            "bytes (decoded); larger ones are MSG-TOO-LARGE and still pass whole "
            "[default: the contract's limits.max_body_bytes]",
        ),
        baseline: BaselineOpt = None,
        write_baseline: WriteBaselineOpt = None,
        confdir: Path | None = typer.Option(
            None,
            "--confdir",
            envvar="MITMPROXY_CONFDIR",
            help="mitmproxy's configuration and CA key; kept out of the report "
            "folder, which people hand around [default: ~/.mitmproxy]",
        ),
        keep_personal_data: bool = typer.Option(
            False,
            "--keep-personal-data",
            help="write faces and names as they passed (default: redacted in every file the proxy writes)",
        ),
    ) -> None:
        """Judge a real device and a real server live, through mitmdump in reverse-proxy mode."""
        from facecert.core.redact import configure
        from facecert.proxy_addons.runner import run_proxy

        configure(keep_personal_data=keep_personal_data)  # one salt for the run, handed to mitmdump's addon

        options: dict[str, object] = {
            "facecert_profile": profile,
            "facecert_time_scale": time_scale,
            "facecert_tolerance": tolerance,
            "facecert_check_downloads": check_downloads,
        }
        if protocol_version:
            options["facecert_protocol_version"] = protocol_version
        if max_body is not None:
            options["facecert_max_body"] = max_body
        raise typer.Exit(
            run_proxy(
                upstream=upstream,
                listen=listen,
                report=report,
                options=options,
                console=Console(),
                baseline=baseline,
                write_baseline=write_baseline,
                confdir=confdir or Path.home() / ".mitmproxy",
            )
        )
