"""``facecert certify device|server``: run a certification plan end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from facecert.certify.console import progress_printer
from facecert.clicommon import BaselineOpt, ProfileOpt, VersionOpt, WriteBaselineOpt, fail, sigterm_interrupts
from facecert.core.defaults import (
    DEFAULT_DEVICE_ID,
    DEFAULT_HOST,
    DEFAULT_LISTEN,
    DEMO_TIME_SCALE,
    DEMO_TIME_SCALE_ENV,
    TIME_SCALE,
    TIME_SCALE_MAX,
    TIME_SCALE_MIN,
    demo_time_scale,
)
from facecert.heap import settle
from facecert.recording import disk_failure, what_to_do

if TYPE_CHECKING:
    from facecert.certify.runner import PlanOutcome

console = Console()
err_console = Console(stderr=True)
certify_app = typer.Typer(no_args_is_help=True, help="Certify a device or a platform server.")
TimeScaleOpt = Annotated[
    float | None,
    typer.Option(
        "--time-scale",
        min=TIME_SCALE_MIN,
        max=TIME_SCALE_MAX,
        help=f"for simulators only: protocol intervals × this (default {TIME_SCALE:g}; "
        f"demo: {DEMO_TIME_SCALE:g}, or ${DEMO_TIME_SCALE_ENV})",
    ),
]
TagsOpt = Annotated[str | None, typer.Option(help="select flows by tag expression, e.g. 'tasks or cadence'")]
ReportOpt = Annotated[Path | None, typer.Option(help="report folder (default reports/<time>-<plan>)")]
HtmlOpt = Annotated[bool, typer.Option("--html/--no-html", help="render the Allure HTML report")]
ExpectOpt = Annotated[
    Path | None,
    typer.Option(
        "--expect",
        help="YAML of known failures (expected_failures: [{rule|scenario, reason}]): they do not fail the run",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show the tracebacks of harness errors")]
CapabilitiesOpt = Annotated[
    Path | None,
    typer.Option(
        "--capabilities",
        help="capability statement (YAML; facecert capabilities template): scenarios outside it are "
        "not_applicable, what it declares must work",
    ),
]
SignOpt = Annotated[
    Path | None,
    typer.Option(
        "--sign", help="OpenSSH private key (ed25519, no passphrase; or a public key in ssh-agent): sign manifest.json"
    ),
]

KeepPersonalOpt = Annotated[
    bool,
    typer.Option(
        "--keep-personal-data", help="write faces and names as they came (default: redacted, docs/reports.md privacy)"
    ),
]
KeepSaltOpt = Annotated[
    bool,
    typer.Option(
        "--keep-salt",
        help="keep the redaction salt in summary.json and the manifest (whoever has it can test a guess "
        "at a name against its hash)",
    ),
]


def _privacy(keep_personal_data: bool, keep_salt: bool) -> None:
    """One redactor, one salt for the whole run (facecert.core.redact)."""
    from facecert.core.redact import configure

    if keep_salt and keep_personal_data:
        fail(console, "--keep-salt and --keep-personal-data: with the data kept there is no salt to keep")
    configure(keep_personal_data=keep_personal_data, keep_salt=keep_salt)


def _expectations(path: Path | None) -> list:
    from facecert.certify.expectations import ExpectationError, load_expectations

    if path is None:
        return []
    try:
        return load_expectations(path)
    except ExpectationError as exc:
        fail(console, str(exc))


def _statement(path: Path | None, party: str):  # -> Optional[Statement]
    """The peer's capability statement, read before the plan runs (an unusable one is exit 2 at once)."""
    from facecert.certify.capabilities import CapabilityError, load_statement

    if path is None:
        return None
    try:
        return load_statement(path, party)
    except CapabilityError as exc:
        fail(console, escape(str(exc)))


def _declared(statement, report: Path) -> dict:  # statement: Optional[Statement]
    """Summary fields of the statement (and its copy beside the report)."""
    from facecert.certify.capabilities import save_copy

    if statement is None:
        return {"capabilities_sha256": None}
    save_copy(statement, report)
    return {"capabilities_sha256": statement.sha256, "capabilities": statement.source}


def _baseline(path: Path | None) -> dict | None:
    """The earlier summary to compare with (read before the plan runs: a bad path is exit 2 at once)."""
    from facecert.baseline import BaselineError, load_baseline

    if path is None:
        return None
    try:
        return load_baseline(path)
    except BaselineError as exc:
        fail(console, escape(str(exc)))


def _save_baseline(summary: dict, path: Path | None, command: str) -> None:
    from facecert.baseline import write_baseline

    if path is not None:
        write_baseline(summary, path, command)
        console.print(f"baseline written: {path}", soft_wrap=True, highlight=False, markup=False)


def _time_scale(given: float | None, demo: bool) -> float:
    """The run's time scale: the one given, else the demo's (FACECERT_DEMO_TIME_SCALE may set it), else real time."""
    if given:
        return given
    if not demo:
        return TIME_SCALE
    try:
        return demo_time_scale()
    except ValueError as exc:
        fail(console, str(exc))


def _report_dir(report: Path | None, plan: str) -> Path:
    return report or Path("reports") / f"{time.strftime('%Y%m%d-%H%M%S')}-{plan}"


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or DEFAULT_HOST, int(port)
    except ValueError:
        raise typer.BadParameter(f"give HOST:PORT, e.g. {DEFAULT_LISTEN}") from None


@certify_app.command("device")
def certify_device(
    listen: str = typer.Option(DEFAULT_LISTEN, help="where the reference server listens (HOST:PORT; port 0: any)"),
    prefix: str = typer.Option("", help="path prefix of server_url, e.g. /test"),
    device_id: str = typer.Option(DEFAULT_DEVICE_ID, "--device-id", help="the device_id the device under test sends"),
    profile: ProfileOpt = "strict",
    protocol_version: VersionOpt = None,
    time_scale: TimeScaleOpt = None,
    tags: TagsOpt = None,
    report: ReportOpt = None,
    demo: bool = typer.Option(False, "--demo", help="certify our own reference device, fast"),
    fault: list[str] = typer.Option([], "--fault", help="with --demo: break the simulator with this knob"),
    first_poll_timeout: float = typer.Option(600.0, help="seconds to wait for the device's first poll"),
    html: HtmlOpt = True,
    expect: ExpectOpt = None,
    debug: DebugOpt = False,
    sign: SignOpt = None,
    keep_personal_data: KeepPersonalOpt = False,
    keep_salt: KeepSaltOpt = False,
    baseline: BaselineOpt = None,
    write_baseline: WriteBaselineOpt = None,
    capabilities: CapabilitiesOpt = None,
) -> None:
    """Play the platform for a device and certify it against the device plan."""
    from facecert.certify.device_session import DeviceRunConfig, DeviceSession
    from facecert.certify.operator import Operator
    from facecert.certify.runner import forget_earlier_outputs, run_plan, write_reports
    from facecert.mock_server.cli import admin_token_for
    from facecert.mock_server.store import read_exchanges

    host, port = _listen(listen)
    expectations = _expectations(expect)
    previous = _baseline(baseline)
    statement = _statement(capabilities, "device")
    _check_key(sign)
    _privacy(keep_personal_data, keep_salt)
    token, generated = admin_token_for(host, None)
    if fault and not demo:
        fail(console, "--fault breaks our simulator: it needs --demo")
    fault = _known_faults(fault)
    cfg = DeviceRunConfig(
        host=host,
        port=0 if demo and listen == DEFAULT_LISTEN else port,
        prefix=prefix,
        device_id=device_id,
        profile=profile,
        protocol_version=protocol_version,
        time_scale=_time_scale(time_scale, demo),
        report=_report_dir(report, "device"),
        demo=demo,
        faults=set(fault),
        first_poll_timeout=first_poll_timeout,
        admin_token=token,
    )
    operator = Operator(console)
    if generated:
        console.print(
            f"bound beyond localhost: the control API (/_admin) needs the token [bold]{token}[/]", soft_wrap=True
        )
    try:
        forget_earlier_outputs(cfg.report)
        session = DeviceSession(cfg, operator)
        settle()  # the heap of imports and set-up, out of the collector's walks: its pauses hit the cadences
        session.start()
    except (OSError, RuntimeError, ValueError) as exc:
        fail(console, f"cannot start the reference server on {listen}: {exc}")
    try:
        try:
            with sigterm_interrupts():
                console.print(
                    f"Configure the device's server URL as [bold]{session.server.url}[/] "
                    f"(device_id {device_id}); second server for setPlatformServer: {session.second.url}",
                    soft_wrap=True,
                )
                session.wait_first_poll()
        except TimeoutError as exc:
            fail(console, str(exc))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while no device has come yet: no plan, no report
            fail(console, f"stopped before the device's first poll: nothing was certified (the record: {session.db})")
        session.plan_started = time.time()
        outcome = run_plan(session, "device", cfg.report, tags, progress_printer(err_console), statement)
        session.plan_ended = time.time()
        floor, wall = session.floor_and_wall()
        session.server.check_deadlines()
        findings = session.timed_findings()
        version = session.server.engine.version
        declared: dict[str, Any] = next(
            (d["versions"] for d in session.server.devices() if d["device_id"] == device_id), {}
        )
    finally:
        session.stop()
    _check_ran(outcome)
    with _writing(cfg.report):
        judged = {
            "profile": profile,
            "protocol_version": version,
            "time_scale": cfg.time_scale,
            "tolerance": session.server.engine.config.tolerance,
            "party": "device",
        }
        from facecert.certify.capabilities import undeclared

        exchanges = read_exchanges(session.db)
        findings += undeclared(statement, exchanges, findings)
        summary = write_reports(
            cfg.report,
            "device",
            outcome,
            exchanges,
            findings,
            {
                "device_id": device_id,
                "device_versions": declared,
                "server_url": session.server.url,
                "profile": profile,
                "protocol_version": version,
                "time_scale": cfg.time_scale,
                "demo": demo,
                "faults": sorted(fault),
                "plan_seconds": round(wall, 3),
                "protocol_floor_seconds": round(floor, 3),
                "wall_to_floor_ratio": round(wall / floor, 2) if floor else None,
                **_declared(statement, cfg.report),
            },
            html=html,
            expectations=expectations,
            judged_with=judged,
            baseline=previous,
            baseline_source=str(baseline or ""),
        )
        _save_baseline(summary, write_baseline, "certify device")
        _finish(summary, cfg.report, outcome, debug, _seal(cfg.report, summary, session.plan_started, sign))


@certify_app.command("server")
def certify_server(
    url: str = typer.Option("", help="base URL of the platform server under test (its server_url)"),
    triggers: Path | None = typer.Option(None, help="trigger file (YAML): how to make the platform queue each task"),
    profile: ProfileOpt = "strict",
    protocol_version: VersionOpt = None,
    time_scale: TimeScaleOpt = None,
    tags: TagsOpt = None,
    report: ReportOpt = None,
    demo: bool = typer.Option(False, "--demo", help="certify our own mock server, fast"),
    misbehave: list[str] = typer.Option([], "--misbehave", help="with --demo: make our server misbehave"),
    persona: str = typer.Option(
        "spec",
        "--persona",
        help="the harness device: spec (only the document's fields) or "
        "field (the vendor extras field devices send: device_ip, sign_tby, ...)",
    ),
    html: HtmlOpt = True,
    expect: ExpectOpt = None,
    debug: DebugOpt = False,
    sign: SignOpt = None,
    keep_personal_data: KeepPersonalOpt = False,
    keep_salt: KeepSaltOpt = False,
    baseline: BaselineOpt = None,
    write_baseline: WriteBaselineOpt = None,
    capabilities: CapabilitiesOpt = None,
) -> None:
    """Play the device for a platform server and certify it against the server plan."""
    from facecert.certify.operator import Operator
    from facecert.certify.runner import forget_earlier_outputs, run_plan, write_reports
    from facecert.certify.server_session import PERSONAS, ServerRunConfig, ServerSession
    from facecert.certify.triggers import TriggerError

    if not demo and not url:
        fail(console, "give --url of the server under test (or --demo)")
    if persona not in PERSONAS:
        fail(console, f"--persona {persona}: choose one of {', '.join(PERSONAS)}")
    if misbehave and not demo:
        fail(console, "--misbehave breaks our mock server: it needs --demo")
    misbehave = _known_misbehaviours(misbehave)
    expectations = _expectations(expect)
    previous = _baseline(baseline)
    statement = _statement(capabilities, "server")
    _check_key(sign)
    _privacy(keep_personal_data, keep_salt)
    if not demo:
        _check_answers(url)
    cfg = ServerRunConfig(
        url=url,
        triggers=triggers,
        profile=profile,
        protocol_version=protocol_version,
        time_scale=_time_scale(time_scale, demo),
        report=_report_dir(report, "server"),
        demo=demo,
        misbehaviours=set(misbehave),
        persona=persona,
    )
    try:
        forget_earlier_outputs(cfg.report)
        session = ServerSession(cfg, Operator(console))
        settle()  # the heap of imports and set-up, out of the collector's walks: its pauses hit the cadences
        session.start()
    except (TriggerError, ValueError, OSError, RuntimeError) as exc:
        fail(console, str(exc))
    try:
        console.print(f"Certifying the server at [bold]{session.url}[/] as device {session.device_id}", soft_wrap=True)
        session.plan_started = time.time()
        outcome = run_plan(session, "server", cfg.report, tags, progress_printer(err_console), statement)
        session.plan_ended = time.time()
    finally:
        session.stop()
    _check_ran(outcome)
    with _writing(cfg.report):
        engine = session.judge()
        judged = {
            "profile": profile,
            "protocol_version": engine.version,
            "time_scale": cfg.time_scale,
            "tolerance": engine.config.tolerance,
            "party": "server",
        }
        from facecert.certify.capabilities import undeclared

        exchanges = sorted(session.exchanges(), key=lambda e: e.started)
        summary = write_reports(
            cfg.report,
            "server",
            outcome,
            exchanges,
            session.timed_findings() + undeclared(statement, exchanges, session.timed_findings()),
            {
                "server_url": session.url,
                "profile": profile,
                "protocol_version": engine.version,
                "persona": persona,
                "time_scale": cfg.time_scale,
                "demo": demo,
                "misbehaviours": sorted(misbehave),
                "plan_seconds": round(session.plan_ended - session.plan_started, 3),
                **_declared(statement, cfg.report),
            },
            html=html,
            expectations=expectations,
            judged_with=judged,
            baseline=previous,
            baseline_source=str(baseline or ""),
        )
        _save_baseline(summary, write_baseline, "certify server")
        _finish(summary, cfg.report, outcome, debug, _seal(cfg.report, summary, session.plan_started, sign))


@certify_app.command("matrix")
def certify_matrix(
    write: Path | None = typer.Option(None, "--write", help="write the matrix as Markdown here"),
    only: list[str] = typer.Option([], "--only", help="run only these knobs / misbehaviours"),
    workers: int = typer.Option(4, min=1, max=8, help="plans run at once (they mostly wait on protocol time)"),
) -> None:
    """Run every device fault knob and server misbehaviour through the plans (self-test)."""
    from facecert.certify.matrix import rows, run_matrix, summary_line, to_markdown
    from facecert.core.knobs import knob_name

    wanted = {knob_name(name) for name in only}
    chosen = [r for r in rows() if not wanted or r.knob in wanted]
    with console.status(f"running {len(chosen)} broken peers through the plans, {workers} at a time"):
        results = run_matrix(chosen, workers=workers)
    text = to_markdown(results)
    if write:
        write.write_text(text, encoding="utf-8")
    console.print(text, soft_wrap=True, highlight=False)
    outcome = summary_line(results)
    console.print(
        f"{outcome['caught']}/{outcome['rows']} caught"
        + (f"; missed: {outcome['missed']}" if outcome["missed"] else "")
    )
    raise typer.Exit(0 if not outcome["missed"] else 1)


def _known_faults(names: list[str]) -> list[str]:
    """Knob names as the table spells them; an unknown one is a one-line error saying so,
    before any server starts."""
    from facecert.mock_device.faults import check_faults

    try:
        return sorted(check_faults(names))
    except ValueError as exc:
        fail(console, escape(str(exc)))


def _known_misbehaviours(names: list[str]) -> list[str]:
    """Misbehaviour names as the table spells them (old underscore spellings accepted)."""
    from facecert.mock_server.misbehaviours import misbehaviour_name

    try:
        return sorted({misbehaviour_name(name) for name in names})
    except ValueError as exc:
        fail(console, escape(str(exc)))


def _check_answers(url: str) -> None:
    """Before any scenario: a server that does not answer at all cannot be certified (exit 2)."""
    import httpx

    try:
        httpx.get(url, timeout=5.0)
    except httpx.InvalidURL as exc:
        fail(console, f"--url {url}: not a usable URL ({exc})")
    except httpx.HTTPError as exc:
        fail(
            console, f"--url {url} does not answer ({type(exc).__name__}: {exc}); is the server running and reachable?"
        )
    except ValueError as exc:
        fail(console, f"--url {url}: not a usable URL ({exc})")


@contextmanager
def _writing(report: Path) -> Iterator[None]:
    """The reports' writes, from the session's record to the seal: a disk that will not take them (full,
    read-only) is one line and exit 2, not a traceback; what was written before stays where it is."""
    try:
        yield
    except OSError as exc:
        advice = f" ({what_to_do(exc)})" if disk_failure(exc) else ""
        fail(console, f"cannot write the report in {report}: {exc.strerror or exc}: nothing was certified{advice}")


def _check_ran(outcome: PlanOutcome) -> None:
    if not outcome.ran:
        fail(console, f"the plan could not run (pytest exit {outcome.pytest_code}): check --tags")


def _check_key(key: Path | None) -> None:
    """--sign: a key that cannot sign is said before the plan runs, not after it."""
    from rich.markup import escape

    from facecert.evidence import EvidenceError, check_signing_key

    if key is not None:
        try:
            check_signing_key(key)
        except EvidenceError as exc:
            fail(console, escape(str(exc)))


def _seal(report: Path, summary: dict, started: float, key: Path | None) -> tuple[bool, str]:
    """The run's last write: manifest.json over every file of the report (and its signature).
    (written, the line that says so)."""
    from facecert.evidence import MANIFEST, SIGNATURE, EvidenceError, predicate_from_summary, seal

    try:
        seal(report, predicate_from_summary(summary, plan=summary["plan"], started=started, ended=time.time()), key)
    except (EvidenceError, OSError) as exc:
        return False, f"error: no evidence manifest: {exc}"
    signed = f" signed by {key} ({SIGNATURE})" if key else ", unsigned"
    return True, f"evidence: {report}/{MANIFEST}{signed}; check it with: facecert verify {report}"


def _finish(
    summary: dict, report: Path, outcome: PlanOutcome, debug: bool, evidence: tuple[bool, str] = (True, "")
) -> None:
    from facecert.certify.console import print_outcome

    traces = {f"{r.feature}\0{r.name}": r.trace for r in outcome.records if r.trace} if debug else {}
    print_outcome(console, summary, traces)
    if summary.get("baseline"):
        from facecert.baseline import print_comparison

        print_comparison(console, summary["baseline"])
    html = f", {summary['html']}" if summary.get("html") else f"; no HTML: {summary.get('html_error')}"
    console.print(
        f"report: {report}/ (summary.json, junit.xml, allure-results/, session.har{html})",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    sealed, line = evidence
    if line:
        console.print(line, soft_wrap=True, highlight=False, markup=False, style=None if sealed else "bold red")
    raise typer.Exit(summary["exit_code"] if sealed else summary["exit_code"] or 2)


def register(app: typer.Typer) -> None:
    from facecert.certify.capabilities import register_capabilities
    from facecert.certify.rules_catalogue import register_rules

    app.add_typer(certify_app, name="certify")
    register_capabilities(app)  # `facecert capabilities template`
    register_rules(app)  # `facecert rules`: it reads the peers' knob tables, so it registers from here
