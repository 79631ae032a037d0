"""Human output with rich: the findings and a one-line verdict.

Findings are never shortened: at a terminal of 120 columns or more they are a
table whose cells fold; narrower (80 columns, a CI log) each finding is a block,
its rule and place on one line and its full message below."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Table
from rich.text import Text

from facecert.core.jsonsafe import printable
from facecert.core.model import Finding, Severity

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}
TABLE_WIDTH = 120  # below this a table's message column is too narrow to read: blocks instead


class FindingsView:
    """The findings, laid out for the width they are printed at (decided when rendered)."""

    def __init__(self, findings: Iterable[Finding], title: str, limit: int) -> None:
        self.findings = list(findings)
        self.title = title
        self.limit = limit

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        shown = self.findings[: self.limit]
        if options.max_width >= TABLE_WIDTH:
            yield self._table(shown)
        else:
            yield Text(self.title, style="bold")
            for finding in shown:
                yield from _block(finding, console, options.max_width)
        if len(self.findings) > self.limit:
            yield Text(f"({len(self.findings) - self.limit} more findings not shown: see --json)")

    def _table(self, shown: list[Finding]) -> Table:
        table = Table(title=self.title, show_lines=False, expand=True)
        for column, kwargs in (
            ("#", {"justify": "right", "no_wrap": True}),
            ("severity", {"no_wrap": True}),
            ("rule", {"no_wrap": True}),
            ("where", {"ratio": 1}),
            ("message", {"ratio": 3}),
        ):
            table.add_column(column, overflow="fold", **kwargs)
        for finding in shown:
            table.add_row(
                _number(finding),
                Text(finding.severity.value, style=STYLE[finding.severity]),
                finding.rule,
                Text(_where(finding)),
                _message(finding),
            )
        return table


def _where(finding: Finding) -> str:
    """Endpoint, direction and pointer; the pointer names a peer's key: its control characters escaped."""
    return printable(" ".join(x for x in (finding.endpoint, finding.direction, finding.pointer) if x))


def _message(finding: Finding) -> Text:
    """The message as plain text (never markup: it quotes what a peer sent), the profile's note dimmed."""
    text = Text(printable(finding.message))
    if finding.note:
        text.append(f" ({finding.note})", style="dim")
    return text


def _number(finding: Finding) -> str:
    return str(finding.exchange) if finding.exchange >= 0 else "-"  # -1: of the conversation, no one exchange


def _block(finding: Finding, console: Console, width: int) -> Iterator[RenderableType]:
    """Rule and place on a line, the full message wrapped below it, indented (no padding spaces)."""
    head = Text(f"#{_number(finding)} ")
    head.append(finding.severity.value, style=STYLE[finding.severity])
    head.append(f" {finding.rule}", style="bold")
    if _where(finding):
        head.append(f"  {_where(finding)}")
    yield head
    for line in _message(finding).wrap(console, max(20, width - 4)):
        line.rstrip()
        yield Text("    ") + line


def findings_table(findings: Iterable[Finding], title: str = "Findings", limit: int = 500) -> FindingsView:
    """What ``console.print`` shows of the findings: a table or blocks, as wide as the console allows."""
    return FindingsView(findings, title, limit)


def print_verdict(console: Console, summary: dict[str, Any]) -> None:
    counts = summary["counts"]
    colour = "green" if summary["verdict"] == "pass" else "red"
    console.print(
        f"[bold {colour}]{summary['verdict'].upper()}[/]: {summary['exchanges']} exchanges, "
        f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} info "
        f"(profile {summary['profile']}, protocol V{summary['protocol_version']})"
    )
