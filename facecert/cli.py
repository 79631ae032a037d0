"""The ``facecert`` command: one typer app, a sub-command per job.

Exit codes are for CI: 0 clean, 1 errors found (or not certified), 2 the
input or the invocation could not be used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from facecert import __version__
from facecert.clicommon import (
    BaselineOpt,
    VersionOpt,
    WriteBaselineOpt,
    conventional_help_types,
    fail,
    sigterm_interrupts,
)
from facecert.core.defaults import (
    CADENCE_TOLERANCE,
    TIME_SCALE,
    TIME_SCALE_MAX,
    TIME_SCALE_MIN,
    TOLERANCE_MAX,
    TOLERANCE_MIN,
)
from facecert.core.profiles import PROFILES
from facecert.recording import disk_failure, what_failed, what_to_do

if TYPE_CHECKING:
    from typer._click.core import Command, Context  # typer 0.2x carries its own click

# ---- sub-commands of the peers and of certification, imported when asked for ----
# `facecert validate` need not import both peers (a second of imports a process): each of these modules
# registers its commands on a typer app (``register(app)``) and is imported only when one of its commands
# runs, or when every command is listed (``--help``, completion, an unknown name). tests/cli checks that
# each module registers exactly the names written here.
RICH_MARKUP: Final = "rich"
LAZY_COMMANDS: dict[str, tuple[str, ...]] = {
    "facecert.mock_server.cli": ("serve", "export"),
    "facecert.mock_device.cli": ("fleet", "device"),
    "facecert.proxy_addons.cli": ("proxy",),
    "facecert.certify": ("rules", "certify", "capabilities"),
    "facecert.contract_diff.cli": ("contract",),
}


class LazyGroup(TyperGroup):
    """The ``facecert`` group: the commands of LAZY_COMMANDS are built on first use."""

    def _load(self, module: str) -> None:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # an install without that part: its commands are not offered
            if exc.name != module:
                raise
            return
        part = typer.Typer(rich_markup_mode=RICH_MARKUP)
        mod.register(part)
        for name, command in typer.main.get_group(part).commands.items():
            self.add_command(command, name)

    def _load_all(self) -> None:
        for module, names in LAZY_COMMANDS.items():
            if not any(name in self.commands for name in names):
                self._load(module)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands:
            owner = next((module for module, names in LAZY_COMMANDS.items() if cmd_name in names), None)
            if owner is not None:
                self._load(owner)
            else:  # an unknown name: every command known, so the "did you mean" hint has them all
                self._load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Context) -> list[str]:
        self._load_all()
        return super().list_commands(ctx)


conventional_help_types()
app = typer.Typer(
    cls=LazyGroup,
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=RICH_MARKUP,
    help="Conformance harness for the face-terminal HTTP task protocol (V2.0).",
)
console = Console(stderr=False)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"facecert {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="print facecert's version and exit"
    ),
) -> None:
    """Conformance harness for the face-terminal HTTP task protocol (V2.0)."""


@app.command()
def validate(
    files: list[Path] = typer.Argument(
        ...,
        help="HAR, mitmproxy flow files, facecert JSONL, or single JSON messages; "
        "a folder: every capture in it, recursively, each its own session",
    ),
    profile: str | None = typer.Option(
        None, "--profile", help="strict | field (default: as the HAR was judged live, else strict)"
    ),
    protocol_version: VersionOpt = None,
    tolerance: float | None = typer.Option(
        None,
        "--tolerance",
        min=TOLERANCE_MIN,
        max=TOLERANCE_MAX,
        help=f"relative cadence tolerance (default: as judged live, else {CADENCE_TOLERANCE:g})",
    ),
    time_scale: float | None = typer.Option(
        None,
        "--time-scale",
        min=TIME_SCALE_MIN,
        max=TIME_SCALE_MAX,
        help=f"protocol intervals × this (default: as judged live, else {TIME_SCALE:g})",
    ),
    party: str | None = typer.Option(
        None, "--party", help="judge one side only: device or server; all: both (default: as judged live, else all)"
    ),
    as_: str | None = typer.Option(
        None,
        "--as",
        help="what a single JSON message is: an endpoint "
        "(taskRequest), an answer (faceRecognition-answer, task) or a schema name",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the JSON summary instead of the table"),
    junit: Path | None = typer.Option(None, "--junit", help="also write JUnit XML here"),
    show_info: bool = typer.Option(False, "--info", help="list info findings in the table too"),
    baseline: BaselineOpt = None,
    write_baseline: WriteBaselineOpt = None,
    jobs: int = typer.Option(
        1,
        "--jobs",
        min=1,
        max=64,
        help="processes judging each capture, split by device (the same findings as one; worth it on big captures)",
    ),
) -> None:
    """Validate captures or messages offline. Exit 0 clean, 1 errors, 2 unusable input.

    A HAR written by `facecert certify` or `facecert proxy` records how it was judged live
    (profile, protocol version, time scale, tolerance): those are used unless a flag says otherwise."""
    from facecert.validate import judged_settings, run_validate

    if party not in (None, "device", "server", "all"):
        fail(console, f"--party {party}: choose device, server or all")
    settings = judged_settings(
        files,
        {
            "profile": profile,
            "protocol_version": protocol_version,
            "tolerance": tolerance,
            "time_scale": time_scale,
            "party": party,
        },
    )
    if settings["profile"] not in PROFILES:
        fail(console, f"--profile {settings['profile']}: choose one of {', '.join(PROFILES)}")
    code = run_validate(
        files,
        profile=settings["profile"],
        version=settings["protocol_version"],
        tolerance=settings["tolerance"],
        time_scale=settings["time_scale"],
        as_kind=as_,
        json_out=json_out,
        junit=junit,
        show_info=show_info,
        console=console,
        party=None if settings["party"] == "all" else settings["party"],
        baseline=baseline,
        write_baseline=write_baseline,
        jobs=jobs,
    )
    raise typer.Exit(code)


@app.command()
def openapi(
    output: Path | None = typer.Option(None, "-o", "--output", help="write here instead of stdout"),
    admin: bool = typer.Option(False, "--admin", help="the mock server's control API instead"),
    closed: bool = typer.Option(
        False,
        "--closed",
        help="reject fields the document does not define (default: accepted, as facecert reports them as info)",
    ),
) -> None:
    """Print the OpenAPI 3.1 document of the five device endpoints (built from the schemas; docs/openapi.md)."""
    import json

    if admin:
        from facecert.mock_server.openapi import admin_openapi

        document = admin_openapi()
    else:
        from facecert.openapi import build_openapi

        document = build_openapi(closed=closed)
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def demo(report: Path = typer.Option(Path("reports"), help="where the demo writes its reports")) -> None:
    """The main job on the embedded defaults (see README)."""
    from facecert.certify.demo import run_demo

    raise typer.Exit(run_demo(report, console))


@app.command()
def verify(
    report_dir: Path = typer.Argument(..., help="a report folder holding manifest.json"),
    allowed_signers: Path | None = typer.Option(
        None,
        "--allowed-signers",
        help='OpenSSH allowed_signers file (lines: ID namespaces="facecert-evidence" ssh-ed25519 AAAA…)',
    ),
    identity: str | None = typer.Option(None, "--identity", help="who must have signed (an ID of that file)"),
) -> None:
    """Check a report folder against its manifest.json and manifest.json.sig. Exit 0 intact (and
    well signed, if signed), 1 a file changed, missing or added or the signature wrong, 2 unusable input."""
    from rich.markup import escape

    from facecert.evidence import MANIFEST, EvidenceError, verify_report

    if (allowed_signers is None) != (identity is None):
        fail(
            console,
            "--allowed-signers and --identity go together: the file says whose keys count, "
            "the identity which of them must have signed",
        )
    try:
        result = verify_report(report_dir, allowed_signers, identity)
    except EvidenceError as exc:
        fail(console, escape(str(exc)))
    for line in result.problems + result.notes:
        sys.stdout.write(line + "\n")
    if result.problems:
        sys.stdout.write(f"NOT VERIFIED: {len(result.problems)} problem(s) in {report_dir}\n")
    else:
        signer = f"; signature good for {result.signed_by}" if result.signed_by else ""
        sys.stdout.write(f"verified: {result.files} files match {MANIFEST}{signer}\n")
    raise typer.Exit(result.code)


@app.command()
def redact(
    source: Path = typer.Argument(..., help="a capture: HAR, mitmproxy flow file or facecert JSONL"),
    target: Path = typer.Argument(..., help="where the redacted copy goes (same format)"),
) -> None:
    """Write a copy of a capture without faces or identities (docs/reports.md, privacy): images become
    placeholders that `facecert validate` judges as it judged the images, names salted hashes of the same length."""
    from rich.markup import escape

    from facecert.core.captures import CaptureError
    from facecert.core.captures.redacted import redact_capture
    from facecert.core.redact import Redactor

    try:
        fmt, count = redact_capture(source, target, Redactor())
    except (CaptureError, OSError) as exc:
        fail(console, escape(str(exc)))
    sys.stdout.write(f"redacted {count} exchanges ({fmt}) to {target}\n")


def main() -> None:
    try:
        with sigterm_interrupts():  # SIGTERM (kill, a CI job's timeout) stops every command as Ctrl-C does
            app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:
        if not disk_failure(exc):
            raise
        # a disk that will not take what a command writes (a report, a HAR, --junit, the session database):
        # the user's to fix, so one line and exit 2, from whichever command it was, never a traceback
        console.print(
            f"[bold red]error:[/] the disk would not take what facecert writes: {escape(what_failed(exc))}; "
            f"{what_to_do(exc)}",
            soft_wrap=True,
            highlight=False,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
