"""``facecert validate``: captures and single messages, judged offline."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from facecert.core.captures import CaptureError, read_capture, read_judged_with, sniff_format
from facecert.core.engine import Engine, EngineConfig, judge_message, message_kinds
from facecert.core.jsonsafe import dumps_strict
from facecert.core.model import Finding, Severity
from facecert.reports import summarize, write_junit
from facecert.reports.console import findings_table, print_verdict

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def validate_capture(engine: Engine, path: Path, as_kind: str | None) -> int:
    """Feed one file to the engine; returns the number of exchanges or messages."""
    fmt = "message" if as_kind else sniff_format(path)
    if fmt == "message":
        if not as_kind:
            raise CaptureError(
                f"{path}: a single JSON message; say what it is with --as "
                f"(e.g. --as taskRequest, --as task, --as faceRecognition-answer)"
            )
        if as_kind not in message_kinds(engine.contract):
            raise CaptureError(f"--as {as_kind}: unknown; one of {', '.join(message_kinds(engine.contract)[:16])}, …")
        try:
            size = path.stat().st_size
            if size > MAX_MESSAGE_BYTES:
                raise CaptureError(f"{path}: {size:,} bytes is too large for a single message")
            body = path.read_bytes()
        except OSError as exc:  # missing, a folder, unreadable: one line, as for captures
            raise CaptureError(f"{path}: cannot read ({exc.strerror})") from None
        judge_message(engine, as_kind, body)
        return 1
    count = 0
    for exchange in read_capture(path, fmt):
        engine.feed(exchange)
        count += 1
    return count


def judge_files(
    paths: Iterable[Path], config: EngineConfig, as_kind: str | None = None
) -> tuple[Engine, list[Finding], int]:
    engine = Engine(config)
    total = 0
    for path in paths:
        total += validate_capture(engine, Path(path), as_kind)
    engine.finish()  # its findings join engine.findings
    return engine, list(engine.findings), total


CAPTURE_FORMATS = ("har", "flows", "jsonl")


@dataclass
class Judgement:
    """What the files and folders of one ``validate`` run came to."""

    version: str
    findings: list[Finding] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)  # per finding: the capture of a folder it came from, or ""
    exchanges: int = 0
    other_traffic: int = 0
    captures: list[str] = field(default_factory=list)  # the captures found in the folders
    skipped: list[str] = field(default_factory=list)  # files in the folders that are not captures, with why


def corpus_files(folder: Path) -> tuple[list[Path], list[str]]:
    """Every capture (HAR, mitmproxy flows, facecert JSONL) under ``folder``, recursively and in
    name order, and the files skipped there (single messages, reports, anything else) with why.
    Linked folders are not entered: a link cycle must not walk forever."""
    captures: list[Path] = []
    skipped: list[str] = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(top) / name
            try:
                fmt = sniff_format(path) if path.is_file() else "not a regular file"
            except CaptureError as exc:
                skipped.append(str(exc))
                continue
            if fmt in CAPTURE_FORMATS:
                captures.append(path)
            else:
                skipped.append(f"{path}: {'a single JSON message (give it with --as)' if fmt == 'message' else fmt}")
    return captures, skipped


def judge_inputs(files: Iterable[Path], config: EngineConfig, as_kind: str | None = None) -> Judgement:
    """Files named on the command line are one conversation (split captures of one session, as
    before); every capture found in a folder is a conversation of its own (a corpus of sessions),
    so cadence and outstanding tasks never run from one capture into the next."""
    given = [Path(f) for f in files]
    named = [f for f in given if not f.is_dir()]
    judgement = Judgement(version=Engine(config).version)
    if named:
        _add(judgement, *judge_files(named, config, as_kind), origin="")
    for folder in (f for f in given if f.is_dir()):
        captures, skipped = corpus_files(folder)
        judgement.captures.extend(str(c) for c in captures)
        judgement.skipped.extend(skipped)
        if not captures:  # a wrong path must not pass a CI gate as "nothing wrong"
            raise CaptureError(f"{folder}: no captures (HAR, mitmproxy flows, facecert JSONL) in this folder")
        for capture in captures:
            _add(judgement, *judge_files([capture], config), origin=str(capture))
    return judgement


def _add(judgement: Judgement, engine: Engine, findings: list[Finding], total: int, origin: str) -> None:
    judgement.findings.extend(findings)
    judgement.origins.extend([origin] * len(findings))
    judgement.exchanges += total
    judgement.other_traffic += engine.other_traffic


def first_capture(files: Iterable[Path]) -> list[Path]:
    """The files with each folder replaced by its captures (to read how they were judged live)."""
    out: list[Path] = []
    for path in map(Path, files):
        out.extend(corpus_files(path)[0] if path.is_dir() else [path])
    return out


DEFAULT_SETTINGS = {
    "profile": "strict",
    "protocol_version": None,
    "tolerance": EngineConfig.tolerance,
    "time_scale": EngineConfig.time_scale,
    "party": None,
}


def judged_settings(files: list[Path], given: dict[str, Any]) -> dict[str, Any]:
    """What to judge with: a flag the user gave, else how the (first) HAR was judged live,
    else the defaults, so that offline equals live with no flags."""
    recorded: dict[str, Any] = {}
    for path in first_capture(files):
        try:
            if Path(path).is_file() and sniff_format(Path(path)) == "har":
                recorded = read_judged_with(Path(path)) or {}
                break
        except CaptureError:
            continue  # run_validate says what is wrong with the file
    return {
        key: given.get(key) if given.get(key) is not None else recorded.get(key, default)
        for key, default in DEFAULT_SETTINGS.items()
    }


def run_validate(
    files: list[Path],
    *,
    profile: str,
    version: str | None,
    tolerance: float,
    time_scale: float,
    as_kind: str | None,
    json_out: bool,
    junit: Path | None,
    show_info: bool,
    console: Console,
    party: str | None = None,
    baseline: Path | None = None,
    write_baseline: Path | None = None,
) -> int:
    from facecert.baseline import BaselineError, compare, load_baseline, print_comparison
    from facecert.baseline import write_baseline as save_baseline

    config = EngineConfig(profile=profile, protocol_version=version, tolerance=tolerance, time_scale=time_scale)
    try:
        previous = load_baseline(baseline) if baseline is not None else None
        judgement = judge_inputs(files, config, as_kind)
        kept = [i for i, f in enumerate(judgement.findings) if party is None or f.party == party]
        # one side only (a certify-server HAR holds the harness's own bad messages)
        findings = [judgement.findings[i] for i in kept]
        origins = [judgement.origins[i] for i in kept]
    except BaselineError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False, markup=False)
        return 2
    except CaptureError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        return 2
    except MemoryError:
        console.print("[bold red]error:[/] the capture does not fit in memory")
        return 2
    summary = summarize(
        findings,
        exchanges=judgement.exchanges,
        profile=profile,
        version=judgement.version,
        extra={
            "files": [str(f) for f in files],
            "other_traffic": judgement.other_traffic,
            "judged_with": {
                "profile": profile,
                "protocol_version": judgement.version,
                "tolerance": tolerance,
                "time_scale": time_scale,
                "party": party,
            },
        },
    )
    if judgement.captures or judgement.skipped:  # a folder was given: say what was read in it
        summary["captures"] = judgement.captures
        summary["skipped"] = judgement.skipped
        for entry, origin in zip(summary["findings"], origins):
            if origin:
                entry["file"] = origin
    code = 1 if summary["verdict"] == "fail" else 0
    comparison = None
    if previous is not None:
        comparison = compare(previous, summary, source=str(baseline))
        summary["baseline"] = comparison.to_dict()
        code = 1 if comparison.failed else 0
    if write_baseline is not None:
        save_baseline(summary, write_baseline, command="validate")
    if junit:
        write_junit(findings, junit, suite="facecert.validate")
    if json_out:
        console.out(dumps_strict(summary, indent=2), highlight=False)
    else:
        shown = [f for f in findings if show_info or f.severity is not Severity.INFO]
        if shown:
            console.print(findings_table(shown))
        print_verdict(console, summary)
        if judgement.captures or judgement.skipped:
            console.print(
                f"{len(judgement.captures)} captures judged, {len(judgement.skipped)} other files skipped",
                highlight=False,
            )
        if comparison is not None:
            print_comparison(console, summary["baseline"])
    return code
