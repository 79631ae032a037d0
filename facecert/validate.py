"""``facecert validate``: captures and single messages, judged offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from rich.console import Console

from facecert.captures import CaptureError, read_capture, read_judged_with, sniff_format
from facecert.engine import Engine, EngineConfig, judge_message, message_kinds
from facecert.jsonsafe import dumps_strict
from facecert.model import Finding, Severity
from facecert.reports import summarize, write_junit
from facecert.reports.console import findings_table, print_verdict

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def validate_capture(engine: Engine, path: Path, as_kind: str | None) -> int:
    """Feed one file to the engine; returns the number of exchanges or messages."""
    fmt = "message" if as_kind else sniff_format(path)
    if fmt == "message":
        if not as_kind:
            raise CaptureError(f"{path}: a single JSON message; say what it is with --as "
                               f"(e.g. --as taskRequest, --as task, --as faceRecognition-answer)")
        if as_kind not in message_kinds(engine.contract):
            raise CaptureError(f"--as {as_kind}: unknown; one of {', '.join(message_kinds(engine.contract)[:16])}, …")
        if path.stat().st_size > MAX_MESSAGE_BYTES:
            raise CaptureError(f"{path}: {path.stat().st_size:,} bytes is too large for a single message")
        judge_message(engine, as_kind, path.read_bytes())
        return 1
    count = 0
    for exchange in read_capture(path, fmt):
        engine.feed(exchange)
        count += 1
    return count


def judge_files(paths: Iterable[Path], config: EngineConfig, as_kind: str | None = None) -> tuple[Engine, list[Finding], int]:
    engine = Engine(config)
    total = 0
    for path in paths:
        total += validate_capture(engine, Path(path), as_kind)
    engine.finish()  # its findings join engine.findings
    return engine, list(engine.findings), total


DEFAULT_SETTINGS = {"profile": "strict", "protocol_version": None, "tolerance": EngineConfig.tolerance,
                    "time_scale": EngineConfig.time_scale, "party": None}


def judged_settings(files: list[Path], given: dict[str, Any]) -> dict[str, Any]:
    """What to judge with: a flag the user gave, else how the (first) HAR was judged live,
    else the defaults, so that offline equals live with no flags."""
    recorded: dict[str, Any] = {}
    for path in files:
        try:
            if Path(path).is_file() and sniff_format(Path(path)) == "har":
                recorded = read_judged_with(Path(path)) or {}
                break
        except CaptureError:
            continue  # run_validate says what is wrong with the file
    return {key: given.get(key) if given.get(key) is not None else recorded.get(key, default)
            for key, default in DEFAULT_SETTINGS.items()}


def run_validate(files: list[Path], *, profile: str, version: str | None, tolerance: float, time_scale: float,
                 as_kind: str | None, json_out: bool, junit: Path | None, show_info: bool, console: Console,
                 party: str | None = None) -> int:
    config = EngineConfig(profile=profile, protocol_version=version, tolerance=tolerance, time_scale=time_scale)
    try:
        engine, findings, total = judge_files(files, config, as_kind)
        if party is not None:  # one side only (a certify-server HAR holds the harness's own bad messages)
            findings = [f for f in findings if f.party == party]
    except CaptureError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        return 2
    except MemoryError:
        console.print("[bold red]error:[/] the capture does not fit in memory")
        return 2
    summary = summarize(findings, exchanges=total, profile=profile, version=engine.version,
                        extra={"files": [str(f) for f in files], "other_traffic": engine.other_traffic,
                               "judged_with": {"profile": profile, "protocol_version": engine.version,
                                               "tolerance": tolerance, "time_scale": time_scale, "party": party}})
    if junit:
        write_junit(findings, junit, suite="facecert.validate")
    if json_out:
        console.out(dumps_strict(summary, indent=2), highlight=False)
    else:
        shown = [f for f in findings if show_info or f.severity is not Severity.INFO]
        if shown:
            console.print(findings_table(shown))
        print_verdict(console, summary)
    return 1 if summary["verdict"] == "fail" else 0
