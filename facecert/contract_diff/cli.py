"""``facecert contract diff``, registered on the main typer app by facecert/cli.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from facecert.contract_diff import ContractDiff

FAIL_ON = ("breaking", "devices", "servers", "unconfirmed", "never")
contract_app = typer.Typer(no_args_is_help=True, help="Look at the contract itself (schemas/, catalogue.yaml).")


@contract_app.command("diff")
def contract_diff(
    from_version: str | None = typer.Option(
        None, "--from", help="protocol version of the old side (default: the latest the old tree knows)"
    ),
    to_version: str | None = typer.Option(
        None, "--to", help="protocol version of the new side (default: the latest the new tree knows)"
    ),
    old: Path | None = typer.Option(
        None, "--old", help="the old schema tree (a schemas/ folder with catalogue.yaml); default: ours"
    ),
    new: Path | None = typer.Option(None, "--new", help="the new schema tree; default: ours"),
    json_out: bool = typer.Option(False, "--json", help="print the diff as JSON (every counterexample whole)"),
    markdown: bool = typer.Option(False, "--markdown", help="print Markdown, e.g. for a pull-request comment"),
    output: Path | None = typer.Option(None, "-o", "--output", help="write there instead of stdout"),
    fail_on: str = typer.Option(
        "never",
        "--fail-on",
        help="exit 1 when a change is breaking (breaks anyone), "
        "breaks devices, breaks servers, or is unconfirmed (no message shows it); never",
    ),
    check: bool = typer.Option(True, "--check/--no-check", help="look for a counterexample of every change"),
) -> None:
    """Compare two contracts: every change per message, who it breaks, and a message that shows it.
    Exit 0, 1 (--fail-on matched), 2 unusable input."""
    from facecert.contract_diff import Side, diff_contracts
    from facecert.contract_diff.render import markdown as to_markdown
    from facecert.contract_diff.render import print_diff, to_json

    console = Console(stderr=False)
    if fail_on not in FAIL_ON:
        _fail(console, f"--fail-on {fail_on}: choose one of {', '.join(FAIL_ON)}")
    if json_out and markdown:
        _fail(console, "--json or --markdown, not both")
    same_tree = (old or Path()).resolve() == (new or Path()).resolve()
    try:
        old_side = Side.load(old, from_version, _label(old, from_version, "old", same_tree))
        new_side = Side.load(new, to_version, _label(new, to_version, "new", same_tree))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _fail(console, f"cannot load the contracts: {type(exc).__name__}: {exc}")
    old_side.label = _label(old, old_side.version, "old", same_tree)
    new_side.label = _label(new, new_side.version, "new", same_tree)
    try:
        diff = diff_contracts(old_side, new_side, check=check)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # a schema of the trees given is not usable
        _fail(console, f"cannot compare the contracts: {type(exc).__name__}: {exc}")
    if json_out:
        _write(to_json(diff) + "\n", output)
    elif markdown:
        _write(to_markdown(diff), output)
    elif output:
        _write(to_json(diff) + "\n", output)
    else:
        print_diff(console, diff)
    raise typer.Exit(1 if _failed(diff, fail_on) else 0)


def _failed(diff: ContractDiff, fail_on: str) -> bool:
    if fail_on == "breaking":
        return bool(diff.breaking())
    if fail_on in ("devices", "servers"):
        return bool(diff.breaking(fail_on.removesuffix("s")))
    if fail_on == "unconfirmed":
        return any(not c.confirmed for c in diff.changes)
    return False


def _label(root: Path | None, version: str | None, side: str, same_tree: bool) -> str:
    """How the output names a side: the version alone for two versions of one tree."""
    version = version or "latest"
    return version if same_tree else f"{side} {version}" if root is None else f"{root} {version}"


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    from facecert.core.files import replace_with

    replace_with(output, lambda out: out.write(text))


def _fail(console: Console, message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(contract_app, name="contract")
