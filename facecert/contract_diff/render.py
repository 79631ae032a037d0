"""A contract diff as a person or a CI job reads it: a table, Markdown for a pull-request
comment, or JSON (strict: no NaN, no Infinity)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from facecert.contract_diff.model import Change, ContractDiff

_MARK = {"device": "devices", "server": "servers"}


def to_json(diff: ContractDiff) -> str:
    return json.dumps(diff.to_dict(), ensure_ascii=False, indent=2, allow_nan=False)


def headline(diff: ContractDiff) -> str:
    counts = diff.to_dict()["counts"]
    return (
        f"{diff.old.label} → {diff.new.label}: {counts['changes']} changes in {diff.messages} messages compared, "
        f"{counts['breaking']} breaking ({counts['breaks_devices']} break devices, {counts['breaks_servers']} "
        f"break servers)" + (f", {counts['unconfirmed']} not shown by a message" if counts["unconfirmed"] else "")
    )


def table(diff: ContractDiff) -> Table:
    """One row per change; the counterexamples follow the table (print_diff)."""
    out = Table(title=headline(diff), expand=True, show_lines=False, title_justify="left")
    for column, kwargs in (
        ("#", {"justify": "right", "no_wrap": True}),
        ("message", {"ratio": 2}),
        ("change", {"ratio": 3}),
        ("where", {"ratio": 2}),
        ("breaks", {"no_wrap": True}),
    ):
        out.add_column(column, **kwargs)
    for number, change in enumerate(diff.changes, start=1):
        style = "red" if change.breaking else "green"
        out.add_row(
            str(number),
            escape(change.message),
            escape(f"{change.kind}: {change.detail}"),
            escape(_where(change)),
            f"[{style}]{breaks_text(change)}[/]\n[dim]{change.direction}[/]",
        )
    return out


def print_diff(console: Console, diff: ContractDiff) -> None:
    """The table, then per change the message that shows it (or why none does)."""
    if not diff.changes:
        console.print(headline(diff) + ": no change to any message", soft_wrap=True, highlight=False)
        return
    console.print(table(diff))
    console.print("Counterexamples (a message one side accepts and the other refuses; --json has them whole):")
    for number, change in enumerate(diff.changes, start=1):
        console.print(
            Text(f"  #{number} {counterexample_text(change)}", style="" if change.confirmed else "yellow"),
            soft_wrap=True,
        )


def markdown(diff: ContractDiff) -> str:
    """The pull-request comment: the headline, one row per change, then each counterexample."""
    lines = [f"### facecert contract diff: {diff.old.label} → {diff.new.label}", "", headline(diff) + ".", ""]
    if not diff.changes:
        return "\n".join(lines + ["No change to any message.", ""])
    lines += ["| message | change | where | direction | breaks | shown by |", "|---|---|---|---|---|---|"]
    for number, change in enumerate(diff.changes, start=1):
        shown = (
            f"[#{number}](#c{number})"
            if change.witnesses
            else ("none (compatible)" if not change.breaking else "**not shown**")
        )
        lines.append(
            f"| `{change.message}` | {_md(change.kind + ': ' + change.detail)} | {_md(_where(change))} | "
            f"{change.direction} | {'**' + breaks_text(change) + '**' if change.breaking else 'nobody'} | "
            f"{shown} |"
        )
    lines.append("")
    for number, change in enumerate(diff.changes, start=1):
        if not change.witnesses and not change.note:
            continue
        lines.append(
            f'<details><summary id="c{number}">#{number} {_md(change.message)} {_md(change.pointer)}: '
            f"{_md(change.kind)}</summary>\n"
        )
        if change.note:
            lines.append(f"{_md(change.note)}\n")
        for witness in change.witnesses:
            where = f" (POST {witness.endpoint})" if witness.endpoint else ""
            lines += [
                f"Accepted by **{witness.accepted_by}**, refused by **{witness.refused_by}**{where}: "
                f"`{witness.error['keyword']}` at `{witness.error['pointer'] or '/'}`: {_md(witness.error['message'])}."
                f" Made from: {_md(witness.method)}.",
                "",
                "```json",
                _shorten_json(witness.instance),
                "```",
                "",
            ]
        lines.append("</details>\n")
    return "\n".join(lines)


def breaks_text(change: Change) -> str:
    return " and ".join(_MARK[p] for p in change.breaks) or "nobody"


def counterexample_text(change: Change) -> str:
    """One line per witness: which side refuses what, and where."""
    if not change.witnesses:
        return change.note or ("none found" if change.breaking else f"none ({change.tried} tried)")
    parts = []
    for witness in change.witnesses:
        parts.append(
            f"{witness.accepted_by} accepts, {witness.refused_by} refuses "
            f"({witness.error['keyword']} at {witness.error['pointer'] or '/'}): {witness.method}"
        )
    return "; ".join(parts)


def _where(change: Change) -> str:
    return change.pointer + (f" ({change.condition})" if change.condition else "")


def _shorten_json(value: Any, limit: int = 120) -> str:
    """The message with long strings (pictures) cut for reading; --json has them whole."""

    def cut(node: Any) -> Any:
        if isinstance(node, str) and len(node) > limit:
            return node[:limit] + f"… ({len(node)} chars)"
        if isinstance(node, dict):
            return {k: cut(v) for k, v in node.items()}
        if isinstance(node, list):
            return [cut(v) for v in node]
        return node

    return json.dumps(cut(value), ensure_ascii=False, indent=2, allow_nan=False)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")
