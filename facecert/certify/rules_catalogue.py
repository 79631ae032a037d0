"""``facecert rules``: every rule of the registry in one place, with what it means.

One row per rule id of facecert/core/rules/registry.py: its severity in each profile
(schemas/profiles/*.yaml: the base severity, and where an override changes it),
who breaks it, the section of the document, its title, whether the engine finds
it in the exchanges or a certification step checks it, what a finding's message
looks like (the registry's ``example``), and the fault knob of the reference
device (mock_device/faults.py) or the misbehaviour of the mock server
(mock_server/misbehaviours.py) that proves it fires. Everything is read from those
tables; docs/rules.md is this module's Markdown (a test keeps it current).

It lives beside the certification plans because it reads the peers' tables: the
engine package itself never imports the peers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from facecert.core.jsonsafe import dumps_strict
from facecert.core.profiles import PROFILES, load_profile
from facecert.core.rules.registry import RULES

TABLE_WIDTH = 160  # below this the table's example column is too narrow to read: blocks instead


@dataclass
class Entry:
    """One rule as the catalogue shows it."""

    id: str
    title: str
    party: str
    spec: str
    origin: str
    severity: dict[str, str]  # profile -> the rule's severity there (before any override)
    overrides: dict[str, list[dict[str, str]]]  # profile -> where that profile changes the severity
    example: str
    knobs: list[str] = field(default_factory=list)  # fault knobs of the reference device
    misbehaviours: list[str] = field(default_factory=list)  # misbehaviours of the mock server
    exempt: str = ""  # why no knob exists (mock_device.faults.EXEMPT_RULES)

    def proved_by(self) -> str:
        """The knobs and misbehaviours as one phrase (or why there are none)."""
        parts = [f"--fault {k}" for k in self.knobs] + [f"--misbehave {m}" for m in self.misbehaviours]
        if parts:
            return ", ".join(parts)
        if self.exempt:
            return f"no knob: {self.exempt}"
        return "no knob: the harness's own failure" if self.party == "harness" else ""

    def severities(self, profile: str) -> str:
        """``error``, or ``error; warning in 2 cases`` when the profile overrides some findings."""
        changed = self.overrides.get(profile) or []
        if not changed:
            return self.severity[profile]
        counts: dict[str, int] = {}
        for override in changed:
            counts[override["severity"]] = counts.get(override["severity"], 0) + 1
        cases = ", ".join(f"{severity} in {n} case{'s' if n > 1 else ''}" for severity, n in counts.items())
        return f"{self.severity[profile]}; {cases}"


def catalogue() -> list[Entry]:
    """Every rule, in the registry's order."""
    from facecert.mock_device.faults import EXEMPT_RULES, FAULTS
    from facecert.mock_server.misbehaviours import MISBEHAVIOURS

    profiles = {name: load_profile(name) for name in PROFILES}
    entries = []
    for rule in RULES.values():
        entries.append(
            Entry(
                id=rule.id,
                title=rule.title,
                party=rule.party,
                spec=rule.spec,
                origin=rule.origin,
                severity={name: rule.severity.value for name in PROFILES},
                overrides={
                    name: [_override(o) for o in profile.overrides if o.rule == rule.id]
                    for name, profile in profiles.items()
                },
                example=rule.example,
                knobs=[f.name for f in FAULTS if f.rule == rule.id],
                misbehaviours=[m.name for m in MISBEHAVIOURS.values() if m.rule == rule.id],
                exempt=EXEMPT_RULES.get(rule.id, ""),
            )
        )
    return entries


def _override(override: Any) -> dict[str, str]:
    where = [f"schema {override.schema}"] if override.schema != "*" else []
    where += [f"pointer {override.pointer}"] if override.pointer != "*" else []
    where += [f"{name} {json.dumps(value)}" for name, value in override.when.items()]
    return {"severity": override.severity.value, "where": ", ".join(where) or "every finding", "note": override.note}


def select(entries: list[Entry], patterns: list[str]) -> list[Entry]:
    """The entries whose id matches one of the patterns (globs, any case); all without patterns."""
    wanted = [p.upper() for p in patterns]
    return [e for e in entries if not wanted or any(fnmatchcase(e.id, p) for p in wanted)]


# ---- outputs -----------------------------------------------------------------------------------
def to_json(entries: list[Entry]) -> str:
    return dumps_strict(
        {"profiles": list(PROFILES), "rules": [{**asdict(e), "proved_by": e.proved_by()} for e in entries]}, indent=2
    )


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, on one line."""
    return " ".join(text.replace("|", "\\|").split())


def to_markdown(entries: list[Entry]) -> str:
    """docs/rules.md: an overview table, then a section per rule with its example message."""
    lines = [
        "# Rules",
        "",
        "Generated by `facecert rules --markdown > docs/rules.md` from the rule registry",
        "(`facecert/core/rules/registry.py`), the profiles (`schemas/profiles/*.yaml`), the reference device's",
        "fault knobs (`mock_device/faults.py`) and the mock server's misbehaviours",
        "(`mock_server/misbehaviours.py`); `tests/engine/test_rules_catalogue.py` fails when this file differs.",
        "",
        "Every finding names one of these rule ids. *Origin* `engine`: found in the exchanges (live, in",
        "`facecert validate`, in the proxy); `plan`: a check a certification step makes. *Party*: who breaks",
        "it (`sender`: whoever sent the message; `harness`: facecert itself could not carry the scenario out,",
        "its verdict is error). *Proved by*: the knob that breaks our own peer this way; the mutation",
        "matrix (`docs/mutation-matrix.md`) shows each one caught.",
        "",
        "| rule | " + " | ".join(PROFILES) + " | party | origin | title | proved by |",
        "|---|" + "---|" * len(PROFILES) + "---|---|---|---|",
    ]
    for e in entries:
        severities = " | ".join(_cell(e.severities(p)) for p in PROFILES)
        lines.append(
            f"| [{e.id}](#{e.id.lower()}) | {severities} | {e.party} | {e.origin} | {_cell(e.title)} | "
            f"{_cell(e.proved_by())} |"
        )
    for e in entries:
        lines += [
            "",
            f"## {e.id}",
            "",
            f"{e.title}.",
            "",
            f"- section of the document: {e.spec}",
            f"- party: {e.party}; origin: {e.origin}",
            *[f"- {p}: {e.severities(p)}" for p in PROFILES],
        ]
        for profile in PROFILES:
            lines += [f"  - {profile}, {o['severity']} where {o['where']}: {o['note']}" for o in e.overrides[profile]]
        if e.proved_by():
            lines.append(f"- proved by: {e.proved_by()}")
        lines += ["", "A finding reads like:", "", "    " + e.example]
    return "\n".join(lines) + "\n"


class RulesView:
    """The catalogue for a console: a table when it is wide, else a block per rule."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        if options.max_width >= TABLE_WIDTH:
            yield self._table()
            return
        for entry in self.entries:
            yield from self._block(entry, console, options.max_width)

    def _table(self) -> Table:
        table = Table(title=f"{len(self.entries)} rules", show_lines=True, expand=True)
        table.add_column("rule", no_wrap=True, style="bold")
        for profile in PROFILES:
            table.add_column(profile, overflow="fold")
        for column in ("party", "origin"):
            table.add_column(column, no_wrap=True)
        for column, ratio in (("section", 1), ("title", 2), ("a finding reads like", 4), ("proved by", 2)):
            table.add_column(column, overflow="fold", ratio=ratio)
        for e in self.entries:
            table.add_row(
                e.id,
                *(e.severities(p) for p in PROFILES),
                e.party,
                e.origin,
                Text(e.spec),
                Text(e.title),
                Text(e.example),
                Text(e.proved_by()),
            )
        return table

    @staticmethod
    def _block(e: Entry, console: Console, width: int) -> Iterator[RenderableType]:
        head = Text(e.id, style="bold")
        head.append(f"  {', '.join(f'{p}: {e.severities(p)}' for p in PROFILES)}  {e.party}  {e.origin}")
        yield head
        for label, value in (
            ("", e.title),
            ("section: ", e.spec),
            ("reads like: ", e.example),
            ("proved by: ", e.proved_by()),
        ):
            if value:
                for line in Text(label + value).wrap(console, max(20, width - 4)):
                    line.rstrip()
                    yield Text("    ") + line


def rules_command(
    patterns: list[str] | None = typer.Argument(None, help="only these rule ids (globs: 'MSG-*', 'cadence-*')"),
    json_out: bool = typer.Option(False, "--json", help="print the catalogue as JSON"),
    markdown: bool = typer.Option(False, "--markdown", help="print the catalogue as Markdown (docs/rules.md)"),
) -> None:
    """List every rule: severity per profile, party, section, title, a finding's message, the knob that proves it."""
    from facecert.clicommon import fail

    console = Console()
    entries = select(catalogue(), patterns or [])
    if not entries:
        fail(console, escape(f"no rule matches {' '.join(patterns or [])!r}: `facecert rules` lists them all"))
    if json_out and markdown:
        fail(console, "choose one of --json and --markdown")
    if json_out:
        sys.stdout.write(to_json(entries) + "\n")
    elif markdown:
        sys.stdout.write(to_markdown(entries))
    else:
        console.print(RulesView(entries))


def register_rules(app: typer.Typer) -> None:
    app.command("rules")(rules_command)
