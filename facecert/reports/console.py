"""Human output with rich: a findings table and a one-line verdict."""

from __future__ import annotations

from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from facecert.model import Finding, Severity

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


def findings_table(findings: Iterable[Finding], title: str = "Findings", limit: int = 500) -> Table:
    table = Table(title=title, show_lines=False, expand=True)
    for column, kwargs in (("#", {"justify": "right", "no_wrap": True}), ("severity", {"no_wrap": True}),
                           ("rule", {"no_wrap": True}), ("where", {}), ("message", {"ratio": 3})):
        table.add_column(column, **kwargs)
    for number, finding in enumerate(findings):
        if number >= limit:
            table.add_row("…", "", "", "", f"(more findings: see --json)")
            break
        where = " ".join(x for x in (finding.endpoint, finding.direction, finding.pointer) if x)
        table.add_row(str(finding.exchange), f"[{STYLE[finding.severity]}]{finding.severity.value}[/]",
                      finding.rule, where, finding.message + (f" [dim]({finding.note})[/]" if finding.note else ""))
    return table


def print_verdict(console: Console, summary: dict[str, Any]) -> None:
    counts = summary["counts"]
    colour = "green" if summary["verdict"] == "pass" else "red"
    console.print(f"[bold {colour}]{summary['verdict'].upper()}[/]: {summary['exchanges']} exchanges, "
                  f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} info "
                  f"(profile {summary['profile']}, protocol V{summary['protocol_version']})")
