"""``facecert validate``: captures and single messages, judged offline."""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import shutil
import stat
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from facecert.core.captures import CaptureError, read_capture, read_judged_with, sniff_format
from facecert.core.contract import get_contract
from facecert.core.engine import Engine, EngineConfig, judge_message, message_kinds
from facecert.core.jsonsafe import dumps_strict
from facecert.core.model import Exchange, Finding, Severity
from facecert.core.rules.conversation import peer_host, rid_key
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


# ---- --jobs: one conversation split by device across processes ---------------------------------
#
# The main process reads the captures (as one conversation, like judge_files), numbers the exchanges
# as one engine would, and sends each to the job of its device: the request's device_id, else the
# host it came from (where the engine files a device-less message), so every exchange of a device is
# judged by one engine, in order. Exchanges that are no protocol message go to job 0. Each job judges
# with its own Engine and returns its findings keyed by where one engine would have made them; the
# merge sorts them back into that order. Two things one engine shares between devices are checked
# afterwards, not assumed: the device each engine filed an exchange under, and the request_ids (a
# result for another device's task, an id given to two devices). When a device or a request_id shows
# up in two jobs, the split would not judge as one engine does, and the captures are judged again in
# one process.

JOB_BATCH = 256  # exchanges sent to a job at a time
_DEVICE_ID = re.compile(rb'"device_id"\s*:\s*"([^"\\]+)"')  # where to send it; the engine's own reading is checked


class JobError(RuntimeError):
    """A job of ``--jobs`` failed: its traceback, or how it ended."""


@dataclass
class _JobOutcome:
    """What one job returns: its findings keyed by where one engine would have made them, and what
    the merge checks (each device and request_id it met, with the position it first met it at)."""

    keyed: list[tuple[tuple[int, int, int], Finding]]
    devices: dict[str, int]
    request_ids: set[str]
    other_traffic: int


_ORPHAN_CHECK_S = 1.0  # how often a job with nothing to judge looks whether the main process is still there


def _job(conn: Any, config: EngineConfig, parent: int) -> None:
    """One job (a process of its own; a top-level function, so any start method can run it); ``parent``
    is the main process's pid, given (a job that asked for it could already be an orphan by then)."""
    try:
        engine = Engine(config)
        keyed: list[tuple[tuple[int, int, int], Finding]] = []
        devices: dict[str, int] = {}
        request_ids: set[str] = set()
        while True:
            # a main process that was killed never says "end", and a forked sibling still holds its end of
            # this pipe, so no EOF comes either: the job would wait for ever (an orphan) without this
            while not conn.poll(_ORPHAN_CHECK_S):
                if os.getppid() != parent:
                    return
            kind, payload = conn.recv()
            if kind == "batch":
                for position, exchange in payload:
                    before = len(engine.findings)
                    judged = engine.feed(exchange)
                    keyed.extend(((0, position, n), f) for n, f in enumerate(engine.findings[before:]))
                    if judged.endpoint is None:
                        continue
                    devices.setdefault(judged.device_id, position)
                    for body in (judged.request, judged.answer):
                        key = rid_key(body.get("request_id")) if isinstance(body, dict) else None
                        if key is not None:
                            request_ids.add(key)
            else:  # "end": the conversation's last moment, as one engine would have seen it
                engine.last_time = max(engine.last_time, payload)
                before = len(engine.findings)
                engine.finish()
                # one engine ends device by device, in the order it first met them
                keyed.extend(((1, devices[f.device_id], n), f) for n, f in enumerate(engine.findings[before:]))
                conn.send(("done", _JobOutcome(keyed, devices, request_ids, engine.other_traffic)))
                return
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the main process, which raises it
        try:
            conn.send(("error", (type(exc).__name__, traceback.format_exc())))
        except Exception:  # noqa: BLE001 - the main process then sees the job end without an answer
            pass


def _start_method() -> str:
    """fork where it is safe (a single thread: the contract, already loaded, is inherited), else
    spawn (each job loads the contract itself; nothing a job needs is inherited)."""
    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods and _threads() == 1 else "spawn"


def _threads() -> int:
    """Threads of this process, those Python's threading module did not start too (pytest-xdist's)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class _Jobs:
    """N job processes, the pipes to them and a sender thread for each: the main process hands a batch
    to a job's thread and reads on (a pipe takes a batch only as fast as its job judges, so sending from
    the reading loop would make every job wait for the slowest). Closed (threads and processes ended)
    whatever happens."""

    AHEAD = 8  # batches a job may have waiting before the reader waits for it

    def __init__(self, count: int, config: EngineConfig, start_method: str | None) -> None:
        # typeshed's BaseContext lacks Process (each concrete context has it): typed by what is used
        context: Any = multiprocessing.get_context(start_method or _start_method())
        self.conns: list[Any] = []
        self.processes: list[Any] = []
        for number in range(count):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_job, args=(theirs, config, os.getpid()), name=f"facecert-job-{number}", daemon=True
            )
            process.start()
            theirs.close()
            self.conns.append(mine)
            self.processes.append(process)
        self.queues: list[queue.Queue[tuple[str, Any] | None]] = [queue.Queue(self.AHEAD) for _ in range(count)]
        self.broken = [False] * count  # the job stopped taking batches (it failed or ended)
        self.senders = [
            threading.Thread(target=self._sender, args=(number,), name=f"facecert-job-{number}-sender", daemon=True)
            for number in range(count)
        ]
        for sender in self.senders:
            sender.start()

    def _sender(self, number: int) -> None:
        while (message := self.queues[number].get()) is not None:
            if self.broken[number]:
                continue  # keep emptying the queue: the reader must never wait on a job that is gone
            try:
                self.conns[number].send(message)
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                self.broken[number] = True

    def send(self, number: int, message: tuple[str, Any]) -> None:
        if self.broken[number]:
            self.receive(number)  # the job ended: say why
            raise JobError(f"--jobs: job {number} stopped taking exchanges")
        self.queues[number].put(message)

    def flush(self) -> None:
        """Every batch handed over has been sent (or its job is gone): the sender threads end."""
        for number, sender in enumerate(self.senders):
            if sender.is_alive():
                self.queues[number].put(None)
                sender.join()

    def receive(self, number: int) -> _JobOutcome:
        try:
            kind, payload = self.conns[number].recv()
        except (EOFError, ConnectionResetError, OSError):
            self.processes[number].join(5)
            code = self.processes[number].exitcode
            raise JobError(f"--jobs: job {number} ended without its findings (exit code {code})") from None
        if kind == "error":
            name, text = payload
            if name == "MemoryError":
                raise MemoryError(f"--jobs: job {number} ran out of memory")
            raise JobError(f"--jobs: job {number} failed:\n{text.rstrip()}")
        outcome: _JobOutcome = payload
        return outcome

    def close(self) -> None:
        self.broken = [True] * len(self.broken)  # what is still queued is dropped
        self.flush()
        for conn in self.conns:
            conn.close()
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)


def _numbered(paths: Iterable[Path]) -> Iterator[tuple[int, Exchange]]:
    """The exchanges of the captures, one conversation, with the index one engine gives each."""
    position = 0
    for path in paths:
        for exchange in read_capture(Path(path), sniff_format(Path(path))):
            exchange.index = position if exchange.index < 0 else exchange.index
            yield position, exchange
            position += 1


def judge_split(
    paths: Iterable[Path], config: EngineConfig, jobs: int, start_method: str | None = None
) -> tuple[list[Finding], int, int]:
    """The captures judged as one conversation, as :func:`judge_files` does, by ``jobs`` processes
    (split by device, see above): (findings in one engine's order, exchanges, other traffic)."""
    paths = [Path(p) for p in paths]
    contract = get_contract()
    job_of: dict[str, int] = {}
    batches: list[list[tuple[int, Exchange]]] = [[] for _ in range(jobs)]
    last_time, total = 0.0, 0
    try:
        workers = _Jobs(jobs, config, start_method)
    except OSError as exc:  # no processes or pipes left: say so (the jobs started are daemons, they end with us)
        raise JobError(f"could not start {jobs} jobs: {exc.strerror or exc}") from None
    try:
        for position, exchange in _numbered(paths):
            total += 1
            last_time = max(last_time, exchange.ended or exchange.started)
            if contract.endpoint_for_path(exchange.path) is None:
                number = 0  # not a protocol message: no device to follow
            else:
                found = _DEVICE_ID.search(exchange.request_body or b"")
                key = found.group(1).decode("utf-8", "replace") if found else peer_host(exchange.peer) or "?"
                number = job_of.setdefault(key, len(job_of) % jobs)  # devices dealt out as they first appear
            batch = batches[number]
            batch.append((position, exchange))
            if len(batch) >= JOB_BATCH:
                workers.send(number, ("batch", batch))
                batches[number] = []
        for number, batch in enumerate(batches):
            if batch:
                workers.send(number, ("batch", batch))
            workers.send(number, ("end", last_time))
        workers.flush()
        outcomes = [workers.receive(number) for number in range(jobs)]
    finally:
        workers.close()
    if _shared(outcomes):
        _, findings, total = judge_files(paths, config)  # a device or request_id in two jobs: as one engine
        return findings, total, sum(o.other_traffic for o in outcomes)
    keyed = sorted((pair for outcome in outcomes for pair in outcome.keyed), key=lambda pair: pair[0])
    return [finding for _, finding in keyed], total, sum(o.other_traffic for o in outcomes)


def _shared(outcomes: list[_JobOutcome]) -> bool:
    """True when a device or a request_id was met by more than one job."""
    devices: set[str] = set()
    request_ids: set[str] = set()
    for outcome in outcomes:
        if devices & outcome.devices.keys() or request_ids & outcome.request_ids:
            return True
        devices |= outcome.devices.keys()
        request_ids |= outcome.request_ids
    return False


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


STDIN = "-"  # the capture comes on standard input (`zcat capture.jsonl.gz | facecert validate -`)


@contextmanager
def rereadable(paths: list[Path]) -> Iterator[list[Path]]:
    """The inputs as paths that can be read more than once. A capture is sniffed for its format and then read
    from its start, so one that can be read only once (``facecert validate <(zcat capture.jsonl.gz)``, a FIFO,
    ``-`` for standard input) lost its first 4 KiB and failed mid-line: such an input is first streamed into a
    private temporary file (never through a link: created exclusively, in a fresh folder), and an error
    about that copy names the input instead."""
    with tempfile.TemporaryDirectory(prefix="facecert-validate-") as folder:
        copies: dict[str, str] = {}
        readable = []
        for number, path in enumerate(paths):
            if not _read_once(path):
                readable.append(path)
                continue
            copy = Path(folder) / f"{number}-{path.name if str(path) != STDIN else 'stdin'}"
            try:
                with _opened(path) as source, open(copy, "xb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
            except OSError as exc:  # as for a file: a clear message, not a traceback
                raise CaptureError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
            copies[str(copy)] = "standard input" if str(path) == STDIN else str(path)
            readable.append(copy)
        try:
            yield readable
        except CaptureError as exc:
            text = str(exc)
            for copied, original in copies.items():
                text = text.replace(copied, original)
            raise CaptureError(text) from None


def _read_once(path: Path) -> bool:
    if str(path) == STDIN:
        return True
    try:
        mode = path.stat().st_mode
    except OSError:
        return False  # judged as given: its own error ("cannot read")
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _opened(path: Path) -> Any:
    return open(sys.stdin.fileno(), "rb", closefd=False) if str(path) == STDIN else open(path, "rb")


def judge_inputs(files: Iterable[Path], config: EngineConfig, as_kind: str | None = None, jobs: int = 1) -> Judgement:
    """Files named on the command line are one conversation (split captures of one session, as
    before); every capture found in a folder is a conversation of its own (a corpus of sessions),
    so cadence and outstanding tasks never run from one capture into the next. ``jobs`` > 1: each
    conversation judged by that many processes (:func:`judge_split`), with the same findings."""
    given = [Path(f) for f in files]
    named = [f for f in given if not f.is_dir()]
    judgement = Judgement(version=Engine(config).version)
    if named:
        _add(judgement, *_judge_conversation(named, config, as_kind, jobs), origin="")
    for folder in (f for f in given if f.is_dir()):
        captures, skipped = corpus_files(folder)
        judgement.captures.extend(str(c) for c in captures)
        judgement.skipped.extend(skipped)
        if not captures:  # a wrong path must not pass a CI gate as "nothing wrong"
            raise CaptureError(f"{folder}: no captures (HAR, mitmproxy flows, facecert JSONL) in this folder")
        for capture in captures:
            _add(judgement, *_judge_conversation([capture], config, None, jobs), origin=str(capture))
    return judgement


def _judge_conversation(
    paths: list[Path], config: EngineConfig, as_kind: str | None, jobs: int
) -> tuple[list[Finding], int, int]:
    """(findings, exchanges, other traffic) of one conversation: by ``jobs`` processes when they
    are captures (a single message is judged here), else by one engine."""
    if jobs > 1 and not as_kind and all(_is_capture(p) for p in paths):
        return judge_split(paths, config, jobs)
    engine, findings, total = judge_files(paths, config, as_kind)
    return findings, total, engine.other_traffic


def _is_capture(path: Path) -> bool:
    try:
        return sniff_format(path) in CAPTURE_FORMATS
    except CaptureError:
        return False  # judge_files says what is wrong with it


def _add(judgement: Judgement, findings: list[Finding], total: int, other_traffic: int, origin: str) -> None:
    judgement.findings.extend(findings)
    judgement.origins.extend([origin] * len(findings))
    judgement.exchanges += total
    judgement.other_traffic += other_traffic


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
    jobs: int = 1,
) -> int:
    from facecert.baseline import BaselineError, compare, load_baseline, print_comparison
    from facecert.baseline import write_baseline as save_baseline

    config = EngineConfig(profile=profile, protocol_version=version, tolerance=tolerance, time_scale=time_scale)
    try:
        previous = load_baseline(baseline) if baseline is not None else None
        with rereadable(list(files)) as readable:
            judgement = judge_inputs(readable, config, as_kind, jobs)
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
    except JobError as exc:  # a job of --jobs failed or died: its cause, not a traceback
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False, markup=False)
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
        for entry, origin in zip(summary["findings"], origins, strict=True):
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
