"""What a certification run prints: the verdict, the root causes first, then
one block per scenario that did not pass. Scenario names and messages are
printed as plain text (never as rich markup), so ``[addUser]`` stays."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from facecert.certify.verdicts import ScenarioRecord

MAX_LINES = 12  # of one scenario's message on the console; summary.json has it whole
MARK = {
    "fail": ("✗", "red"),
    "error": ("!", "magenta"),
    "unexpected_pass": ("✗", "red"),
    "expected_fail": ("~", "yellow"),
    "not_applicable": ("-", "dim"),
    "pass": ("✓", "green"),
}


def progress_printer(err: Console) -> Callable[[ScenarioRecord, int, int], None]:
    """Progress while the plan runs, on stderr: a line per scenario (a log, CI) or a live
    status line (a terminal)."""

    def show(record: ScenarioRecord, done: int, total: int) -> None:
        mark, colour = MARK[record.verdict.value]
        line = Text(f"[{done}/{total}] ")
        line.append(f"{mark} {record.verdict.value}", style=colour)
        line.append(f"  {record.feature} › {record.name} ({record.seconds:.1f} s)")
        err.print(line, soft_wrap=True, highlight=False)

    return show


def print_outcome(console: Console, summary: dict[str, Any], traces: dict[str, str] | None = None) -> None:
    counts = summary["counts"]
    certified = summary["verdict"] == "certified"
    head = Text(summary["verdict"].upper(), style="bold green" if certified else "bold red")
    head.append(": " + ", ".join(f"{n} {k}" for k, n in counts.items() if n or k in ("pass", "fail", "error")))
    console.print(head, soft_wrap=True)
    causes = summary.get("root_causes") or []
    if causes:
        console.print(Text("Root causes (the rules behind the failures, most scenarios first):", style="bold"))
        for cause in causes:
            first = cause["first"]
            where = f"first at {first['time']}" + (
                f", exchange #{first['exchange']}" if first.get("exchange") is not None else ""
            )
            line = Text(f"  {cause['rule']}", style="bold")
            line.append(
                f" ({cause['party']}): {len(cause['scenarios'])} scenario(s), {cause['count']} finding(s), "
                f"{where}\n      {cause['title']}"
            )
            console.print(line, soft_wrap=True)
    _print_blocks(console, summary["scenarios"], traces or {})
    warned = [s for s in summary["scenarios"] if s.get("warnings")]
    if warned:
        console.print(
            Text("Check by hand (warnings: the harness cannot prove these from outside):", style="bold yellow")
        )
        for scenario in warned:
            console.print(Text(f"  ~ {scenario['feature']} › {scenario['name']}", style="yellow"), soft_wrap=True)
            for warning in dict.fromkeys(scenario["warnings"]):
                console.print(Text(f"      {warning}"), soft_wrap=True)
    for declaration in summary.get("expectations") or []:
        if declaration["status"] == "unmatched":
            console.print(
                Text(
                    f"  expectation not met: {declaration['declaration']} ({declaration['reason']}) "
                    "matched no failure: remove it",
                    style="red",
                ),
                soft_wrap=True,
            )
    if summary.get("wall_to_floor_ratio"):
        console.print(
            f"plan wall time {summary['plan_seconds']} s, protocol floor {summary['protocol_floor_seconds']} s "
            f"(ratio {summary['wall_to_floor_ratio']})",
            highlight=False,
        )


def _print_blocks(console: Console, scenarios: list[dict[str, Any]], traces: dict[str, str]) -> None:
    """One block per scenario that did not pass; errors with one cause are listed together."""
    shown: dict[str, list[dict[str, Any]]] = {}
    for scenario in scenarios:
        if scenario["verdict"] in ("pass", "not_applicable"):
            continue
        key = f"{scenario['verdict']}\0{scenario['message']}"  # one cause, one block: the names listed above it
        shown.setdefault(key, []).append(scenario)
    if shown:
        console.print(Text("Scenarios that did not pass:", style="bold"))
    for group in shown.values():
        first = group[0]
        mark, colour = MARK[first["verdict"]]
        for scenario in group:
            line = Text(f"  {mark} {scenario['verdict']}", style=colour)
            line.append(f"  {scenario['feature']} › {scenario['name']}")
            console.print(line, soft_wrap=True)
        if first["rules"]:
            console.print(Text(f"      rules: {', '.join(first['rules'])}"), soft_wrap=True)
        lines = (first["message"] or "").splitlines()
        for text in lines[:MAX_LINES]:
            console.print(Text(f"      {text}"), soft_wrap=True)
        if len(lines) > MAX_LINES:
            console.print(Text(f"      … {len(lines) - MAX_LINES} more line(s): see summary.json", style="dim"))
        if first.get("expectation"):
            console.print(Text(f"      declared: {first['expectation']}", style="yellow"), soft_wrap=True)
        for scenario in group:
            trace = traces.get(f"{scenario['feature']}\0{scenario['name']}")
            if trace:
                console.print(Text(trace), soft_wrap=True)


def is_terminal(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()
