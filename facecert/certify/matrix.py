"""The mutation matrix: every fault knob of the reference device and every
misbehaviour of the mock server, run through the certification plans; each
must fail the plan, and the failed scenario must name the rule it breaks.

Each row is a separate `facecert certify ... --demo --no-html` process limited to the
flows the knob needs (its ``scenario`` field -> feature tags), without the HTML
report, a few at a time: the plans mostly wait on protocol time. Each is a fork of a
server process that has imported the harness once (multiprocessing's forkserver): a fresh
process per row, as a subprocess would be, without a second of imports per row.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from facecert.core.model import Severity
from facecert.core.rules.registry import RULES

# what a knob's conversation needs (mock_device.faults.Fault.scenario) -> plan tags that make it happen
TAGS_FOR_SCENARIO = {
    "poll": "first_contact",
    "idle": "cadence",
    "task": "first_contact or cadence",
    "capture": "captures",
    "alarm": "alarms",
    "gps": "gps",
    "setDevTime": "clock",
    "faceCmd": "captures",
    "download": "downloads",
    "outage": "resume",
    "getDevStatus": "clock",
    "getLogFile": "clock",
    "SetFaceConfig": "face_config",
    "face_count": "users",
    "setPlatformServer": "platform_server",
    "malformed-task": "robustness",
    "log-path": "security",
}
# the same for a misbehaviour of the mock server (mock_server.misbehaviours.Misbehaviour.scenario) -> server
# plan tags; a queued task is the robustness flow's (its first scenario queues one for a second device), as
# the tasks flow would wait out a deadline in each of its fourteen scenarios (47 s at the demo's time scale)
SERVER_TAGS_FOR_SCENARIO = {
    "poll": "polling",
    "task": "tasks",
    "queued-task": "robustness",
    "capture": "captures",
    "hostile": "robustness",
}


@dataclass
class Row:
    peer: str  # "device" (a fault knob) or "server" (a misbehaviour)
    knob: str
    rule: str | None
    check: str
    tags: str
    verdict: str = ""
    failed: tuple[str, ...] = ()
    named: bool = False
    seconds: float = 0.0
    causes: tuple[str, ...] = ()  # the run's root causes, rule ids first found first: what a miss names instead
    why: str = ""  # the first failed scenario's message

    @property
    def caught(self) -> bool:
        if self.rule and RULES[self.rule].severity is not Severity.ERROR:
            return self.named  # an info/warning rule is reported, not failed, by design
        return self.verdict == "not certified" and self.named


def rows() -> list[Row]:
    from facecert.mock_device import FAULTS
    from facecert.mock_server import MISBEHAVIOURS

    out = [Row("device", f.name, f.rule, f.check, TAGS_FOR_SCENARIO[f.scenario]) for f in FAULTS]
    out += [Row("server", m.name, m.rule, "", SERVER_TAGS_FOR_SCENARIO[m.scenario]) for m in MISBEHAVIOURS.values()]
    return out


# what a row's process needs: imported once in the fork server, shared by every row forked from it
PRELOAD = [
    "facecert.cli",
    "facecert.certify.runner",
    "facecert.certify.device_session",
    "facecert.certify.server_session",
    "facecert.steps.plugin",
]
ROW_TIMEOUT_S = 600.0


def command_for(row: Row, report: Path) -> list[str]:
    """The ``facecert`` arguments that certify the peer broken by ``row``."""
    from facecert.mock_device import FAULTS_BY_NAME

    command = ["certify", row.peer, "--demo", "--no-html", "--report", str(report)]
    if row.peer == "device":
        command += ["--fault", row.knob, "--tags", row.tags]
        version = FAULTS_BY_NAME[row.knob].protocol_version
        if version:
            command += ["--protocol-version", version]
    else:
        command += ["--misbehave", row.knob, "--tags", row.tags]
    return command


def _facecert(argv: list[str], stdout: str, stderr: str, cwd: str | None, env: dict[str, str] | None) -> None:
    """A forked process: ``facecert ARGV`` writing to these files (it exits with the command's code), in
    ``env`` when given (the command reads its environment when it runs: the console's width, say)."""
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), fd)
    if cwd is not None:
        os.chdir(cwd)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    sys.argv = ["facecert", *argv]
    # what `python -m facecert.cli ARGV` runs, from the module the fork server preloaded (the command line
    # sits above certification: named, not imported; runpy would warn that it is imported already)
    importlib.import_module("facecert.cli").main()


def run_facecert(
    argv: list[str],
    stdout: Path,
    stderr: Path | None = None,
    cwd: Path | None = None,
    timeout: float = ROW_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> int:
    """``facecert ARGV`` in a process forked from a fork server that has imported the harness
    (a fresh process, as a subprocess is, without its second of imports); its exit code, -9 when
    it had to be killed after ``timeout`` seconds. Its stdin is /dev/null; its environment ``env``,
    else the fork server's (this process's when the server started)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)  # heeded when the server starts (the first run)
    for path in (stdout, stderr or stdout):
        path.write_bytes(b"")
    args = (argv, str(stdout), str(stderr or stdout), str(cwd) if cwd else None, env)
    process = context.Process(target=_facecert, args=args)
    with _POLLS:
        process.start()
    ended = bool(wait([process.sentinel], timeout))  # the fork server writes the exit code there
    with _POLLS:
        if not ended:
            process.kill()
        process.join(10)
    if not ended:
        return -9
    return 255 if process.exitcode is None else process.exitcode


# Process.start() polls every other child of this process (multiprocessing.process._cleanup), and a fork
# server's child tells its exit code once, on a pipe: two threads polling one child at once (a start in one,
# a join in another) leave one of them an empty pipe, which multiprocessing reports as exit code 255 (a
# certification that exited 1 was read as 255 in make test, 2026-12-02). Starts and polls take turns here.
_POLLS = threading.Lock()


def run_row(row: Row, workdir: Path) -> Row:
    report = workdir / f"{row.peer}-{row.knob}"
    log = workdir / f"{row.peer}-{row.knob}.log"
    code = run_facecert(command_for(row, report), log)
    summary_path = report / "summary.json"
    if not summary_path.exists():
        output = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        row.verdict = f"did not run (exit {code}): {output[-300:]}"
        return row
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    row.verdict = summary["verdict"]
    failed = [s for s in summary["scenarios"] if s["verdict"] in ("fail", "error")]
    row.failed = tuple(s["name"] for s in failed)
    row.seconds = float(summary.get("plan_seconds") or 0.0)
    row.causes = tuple(c["rule"] for c in summary.get("root_causes", []))
    row.why = str(failed[0].get("message") or "")[:300] if failed else ""
    if row.rule and RULES[row.rule].severity is not Severity.ERROR:
        row.named = any(f["rule"] == row.rule for f in summary.get("findings", []))
    else:  # the rule must be behind a failed scenario and among the run's root causes
        row.named = row.rule in row.causes and any(row.rule in s["rules"] for s in failed)
    return row


def run_matrix(selected: list[Row] | None = None, workers: int = 4) -> list[Row]:
    chosen = selected if selected is not None else rows()
    with tempfile.TemporaryDirectory(prefix="facecert-matrix-") as folder:
        # server rows first: most of them wait out task deadlines (4.8-8.3 s each at the demo's time scale, as
        # long as all but the cadence device rows), so few long rows are left to run alone at the end
        first = sorted(chosen, key=lambda r: r.peer != "server")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = dict(zip(map(id, first), pool.map(lambda r: run_row(r, Path(folder)), first), strict=True))
        return [done[id(row)] for row in chosen]


def to_markdown(results: list[Row]) -> str:
    lines = [
        "# Mutation matrix",
        "",
        "Generated by `facecert certify matrix --write docs/mutation-matrix.md` (CI runs the same matrix in",
        "`tests/suites/test_matrix.py`: no knob may pass). Each row runs the certification plan against our own",
        "reference peer broken one way: a device fault knob (`facecert device --list-faults`) or a mock",
        "server misbehaviour. *Caught* means the plan failed and a failed scenario names the rule (info",
        "rules are reported, not failed, by design). `MSG-SCHEMA` (a combined `anyOf`/`oneOf` constraint, e.g. a",
        'screen-saver slot that is neither "" nor an http URL) has no knob: it is shown firing in',
        "tests/engine/test_rules.py.",
        "",
        "| peer | knob | rule | flows run | verdict | first failing scenario | caught |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results:
        rule = row.rule or f"(none: {row.check.split(':')[0]})"
        first = row.failed[0] if row.failed else "—"
        lines.append(
            f"| {row.peer} | `{row.knob}` | {rule} | {row.tags or 'all'} | {row.verdict} | {first} | "
            f"{'yes' if row.caught else '**NO**'} |"
        )
    return "\n".join(lines) + "\n"


def summary_line(results: list[Row]) -> dict[str, Any]:
    return {
        "rows": len(results),
        "caught": sum(r.caught for r in results),
        "missed": [r.knob for r in results if not r.caught],
    }
