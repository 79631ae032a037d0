"""The main outputs at 80 columns (COLUMNS=80, no TTY, as in CI): every finding's
rule and message, every knob, every rule and every counter appear in full, and
nothing is cut to "…". Also the small things a terminal user meets first:
--version, help without type placeholders, one-line errors for bad arguments,
and progress lines during long waits without a terminal."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from facecert.certify import operator as operator_module
from facecert.certify.operator import Operator
from facecert.certify.rules_catalogue import catalogue
from facecert.core.captures import write_har
from facecert.mock_device.faults import FAULTS
from facecert.samples import ConversationBuilder
from tests.engine.test_rules import CASES
from tests.support import facecert

pytestmark = pytest.mark.slow  # the command line at several widths, a (forked) process each: not in make test-fast

BOX = re.compile(r"[\s\u2500-\u257f]+")  # whitespace and box drawing: what folding and tables add


def run(*args: str, columns: int = 80, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50"}
    env.pop("FORCE_COLOR", None)
    return facecert(*args, timeout=timeout, env=env)


def flat(text: str) -> str:
    return BOX.sub("", text)


def assert_whole(output: str, texts: Iterable[str]) -> None:
    """Each text appears in the output, whatever the output wrapped or folded; and the only
    "…" left are those of the texts themselves (a message may abbreviate what it quotes)."""
    rest = flat(output)
    missing = [text for text in texts if flat(text) not in rest]
    assert not missing, missing[:5]
    for text in sorted(set(texts), key=len, reverse=True):
        rest = rest.replace(flat(text), "")
    assert "…" not in rest, rest[max(0, rest.index("…") - 120) : rest.index("…") + 20]


def assert_width(output: str, columns: int) -> None:
    wide = [line for line in output.splitlines() if cell_len(line) > columns]
    assert not wide, wide[:3]


@pytest.fixture(scope="module")
def many_findings(tmp_path_factory) -> Path:
    """One HAR of every breaking conversation of tests/engine/test_rules.py (default config)."""
    exchanges = []
    for number, (_rule, (broken, _, config)) in enumerate(sorted(CASES.items())):
        if config:
            continue
        builder = ConversationBuilder(f"ID{number:014d}", start=1_700_000_000 + number * 1000)
        broken(builder)
        exchanges += builder.exchanges
    return write_har(exchanges, tmp_path_factory.mktemp("terminals") / "many.har")


def test_validate_prints_every_finding_whole_at_80_columns(many_findings: Path) -> None:
    summary = json.loads(run("validate", str(many_findings), "--json", "--info").stdout)
    findings = summary["findings"]
    assert len(findings) > 50 and len({f["rule"] for f in findings}) > 30
    shown = run("validate", str(many_findings), "--info")
    assert shown.returncode == 1, shown.stderr
    assert_whole(shown.stdout, [f["rule"] for f in findings] + [f["message"] for f in findings])
    assert_width(shown.stdout, 80)
    wide = run("validate", str(many_findings), "--info", columns=140).stdout  # the table: folds, never "…"
    assert wide.count("…") <= sum(f["message"].count("…") for f in findings)


def test_list_faults_at_80_columns() -> None:
    shown = run("device", "--list-faults")
    assert shown.returncode == 0, shown.stderr
    assert_whole(shown.stdout, [t for f in FAULTS for t in (f.name, f.rule or "", f.description)])
    assert_width(shown.stdout, 80)


def test_rules_at_80_columns() -> None:
    shown = run("rules")
    assert shown.returncode == 0, shown.stderr
    assert_whole(shown.stdout, [t for e in catalogue() for t in (e.id, e.title, e.example, e.proved_by())])
    assert_width(shown.stdout, 80)


def test_certify_console_at_80_columns(tmp_path: Path) -> None:
    report = tmp_path / "report"
    shown = run(
        "certify",
        "device",
        "--demo",
        "--no-html",
        "--fault",
        "missing-field",
        "--tags",
        "first_contact",
        "--report",
        str(report),
        timeout=300,
    )
    assert shown.returncode == 1, shown.stdout + shown.stderr
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    failed = [s for s in summary["scenarios"] if s["verdict"] not in ("pass", "not_applicable")]
    assert failed and summary["root_causes"]
    texts = [t for c in summary["root_causes"] for t in (c["rule"], c["title"])]
    texts += [t for s in failed for t in (s["name"], *s["rules"], *(s["message"] or "").splitlines())]
    assert_whole(shown.stdout, texts)


def test_device_summary_is_whole_at_80_and_120_columns() -> None:
    from facecert.mock_server import MockServer, ServerConfig

    with MockServer(ServerConfig(port=0, time_scale=0.05)) as server:
        for columns in (80, 120):
            shown = run(
                "device",
                "--server",
                server.url,
                "--count",
                "3",
                "--duration",
                "1",
                "--time-scale",
                "0.05",
                "--id",
                "ID0000000000",
                columns=columns,
            )
            assert shown.returncode == 0, shown.stderr
            labels = [
                "polls",
                "idle",
                "tasks",
                "results",
                "task failures",
                "captures sent",
                "captures buffered",
                "captures dropped",
                "alarms",
                "gps",
                "latency p50 ms",
                "latency p95 ms",
            ]
            ids = [f"ID0000000000{n:08d}" for n in range(3)]
            assert_whole(shown.stdout, labels + ids)
            assert all(label in shown.stdout for label in labels)  # each on one line, not folded
            assert_width(shown.stdout, columns)


# ---- the rest of a terminal user's first minutes ------------------------------------------------
def test_version_completion_and_help_without_placeholders() -> None:
    version = run("--version")
    assert version.returncode == 0 and re.fullmatch(r"facecert \S+\n", version.stdout)
    top = run("--help", columns=120).stdout
    assert "--install-completion" in top and "--show-completion" in top
    for command in (["validate"], ["device"], ["certify", "device"], ["rules"], ["serve"]):
        shown = run(*command, "--help", columns=120).stdout
        assert not re.search(r"<(bool|str|int|float|path|list\[[^\]]*\])[^>]*>", shown, re.I), shown


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    missing = run("validate", str(tmp_path / "nope.json"), "--as", "taskRequest")
    assert missing.returncode == 2 and "Traceback" not in missing.stdout + missing.stderr
    assert missing.stdout.strip().startswith("error:") and "cannot read" in missing.stdout
    device = run("device", "--server", "http://127.0.0.1:9", "--fault", "no_such_knob")
    certify = run(
        "certify", "device", "--demo", "--no-html", "--fault", "no-such-knob", "--report", str(tmp_path / "r")
    )
    for shown in (device, certify):
        assert shown.returncode == 2 and "unknown fault knob" in shown.stdout, shown.stdout + shown.stderr
        assert "cannot start" not in shown.stdout and "Traceback" not in shown.stdout + shown.stderr
    server = run("certify", "server", "--demo", "--no-html", "--misbehave", "capture_6xx")
    assert server.returncode == 2 and "unknown misbehaviour 'capture_6xx'" in server.stdout


def test_long_waits_print_progress_lines_without_a_terminal(monkeypatch) -> None:
    monkeypatch.setattr(operator_module, "PROGRESS_EVERY_S", 0.1)
    out = io.StringIO()
    operator = Operator(Console(file=out, force_terminal=False, width=80), interactive=False)
    until = time.monotonic() + 0.55
    found = operator.wait(
        "the first taskRequest", lambda step: time.sleep(min(step, 0.05)) or (time.monotonic() >= until), timeout=5
    )
    assert found is True
    lines = [line for line in out.getvalue().splitlines() if line.startswith("waiting for the first taskRequest: ")]
    assert 3 <= len(lines) <= 7, out.getvalue()
    out.truncate(0)
    assert Operator(Console(file=out, force_terminal=False), interactive=False).wait("x", lambda s: 1, 5) == 1
    assert out.getvalue() == ""  # a wait shorter than the interval says nothing


def test_findings_never_carry_a_peers_control_characters_to_the_terminal() -> None:
    """A key a peer named (the pointer) and a message quoting it are shown escaped, table or blocks."""
    import io
    import json

    from rich.console import Console

    from facecert.core.engine import Engine
    from facecert.core.examples import example_for
    from facecert.reports.console import findings_table

    body = {**example_for("device/taskRequest"), "x\x1b[2Jkey": 1}
    findings = Engine().check_message("device/taskRequest", json.dumps(body).encode())
    assert any("\x1b" in f.pointer for f in findings)  # the finding holds the key as sent
    for width in (200, 60):  # a table, and the narrow blocks
        out = io.StringIO()
        Console(file=out, width=width, force_terminal=True, color_system=None).print(findings_table(findings))
        assert "MSG-UNKNOWN-FIELD" in out.getvalue()
        assert "\x1b[2J" not in out.getvalue() and "\\x1b[2Jkey" in out.getvalue().replace("\n", ""), out.getvalue()
