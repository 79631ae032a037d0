"""Options shared by the sub-commands, so every command spells them alike."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from facecert.core.defaults import CADENCE_TOLERANCE, TIME_SCALE_MAX, TIME_SCALE_MIN, TOLERANCE_MAX, TOLERANCE_MIN
from facecert.core.profiles import PROFILES

if TYPE_CHECKING:
    from typer._click.core import Context  # typer 0.2x carries its own click
    from typer.core import _TyperParameter


def _profile(value: str) -> str:
    if value not in PROFILES:
        raise typer.BadParameter(f"choose one of {', '.join(PROFILES)}")
    return value


def _version(value: str | None) -> str | None:
    if value is None:
        return None
    from facecert.core.contract import get_contract

    try:
        return get_contract().check_version(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


ProfileOpt = Annotated[
    str,
    typer.Option(
        "--profile",
        callback=_profile,
        help="strict: the document with errata resolved; field: known departures are warnings",
    ),
]
VersionOpt = Annotated[
    str | None,
    typer.Option(
        "--protocol-version", callback=_version, help="judge as this protocol version (e.g. 1.3); default: latest (2.0)"
    ),
]
ToleranceOpt = Annotated[
    float,
    typer.Option(
        "--tolerance",
        min=TOLERANCE_MIN,
        max=TOLERANCE_MAX,
        help=f"relative tolerance on the poll cadence: the idle and task intervals (default {CADENCE_TOLERANCE:g} = "
        f"±{CADENCE_TOLERANCE:.0%})",
    ),
]
TimeScaleOpt = Annotated[
    float,
    typer.Option(
        "--time-scale",
        min=TIME_SCALE_MIN,
        max=TIME_SCALE_MAX,
        help="protocol intervals are multiplied by this (simulators run at e.g. 0.05)",
    ),
]

BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="an earlier summary.json (or its report folder, or a --write-baseline file): fail only on "
        "what is new since then (docs/ci.md)",
    ),
]
WriteBaselineOpt = Annotated[
    Path | None,
    typer.Option("--write-baseline", help="save this run's findings and failing scenarios as a baseline here"),
]


# A stop asked for by SIGINT or SIGTERM while a command runs (sigterm_interrupts). Python turns the signal into
# a KeyboardInterrupt in whatever the main thread runs next, and one raised inside a weakref callback or a
# __del__ is printed as "Exception ignored" and lost: a certify waiting for a device's first poll went on
# waiting for its ten minutes. The long waits (facecert.certify.operator) look at this too, every second.
STOP = threading.Event()
_depth = [0]  # nested sigterm_interrupts (the CLI's, the runner's): the outermost clears STOP as it ends


@contextmanager
def sigterm_interrupts(noticed: Callable[[], None] | None = None) -> Iterator[None]:
    """SIGTERM (``kill``, a CI job's timeout, a service manager) stops the command as Ctrl-C does: a
    KeyboardInterrupt in the main thread, so what was done is still reported and written; SIGTERM's default
    killed the process with nothing written. ``noticed`` is called first (to say which signal it was).
    Either signal also sets STOP, which the long waits look at: the interrupt itself can be lost. Outside
    the main thread, which alone may set a handler, the signals keep their handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        STOP.set()
        if noticed is not None and signum == signal.SIGTERM:
            noticed()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    # Ctrl-C only where Python's own handler has it (a job started in the background ignores it: it still does)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if not _depth[0]:
            STOP.clear()
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM asked the running command to stop (see STOP)."""
    return STOP.is_set()


def fail(console: Console, message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


_HELP_TYPES = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "FLOAT",
    "int range": "INTEGER",
    "float range": "FLOAT",
    "path": "PATH",
    "Path": "PATH",
    "file": "FILE",
    "directory": "DIR",
    "bool": "BOOLEAN",
}


def conventional_help_types() -> None:
    """Help shows what a value looks like the way click always did (``TEXT``, ``INTEGER``,
    ``PATH``) and nothing after a flag; typer 0.2x prints Python types instead
    (``--json <bool>``, ``<list[Path]>``), which read as if a flag took a value."""
    from typer.core import TyperArgument, TyperOption

    def plain(label: str) -> str:
        label = label.strip("<>")
        while label.startswith("list[") and label.endswith("]"):  # repeatable: the option is named once per value
            label = label[5:-1]
        return _HELP_TYPES.get(label, label.upper())

    def option_type(self: TyperOption, ctx: Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.is_flag or self.count:
            return None
        return plain(self.display_type(ctx))

    def argument_type(self: _TyperParameter, ctx: Context) -> str | None:  # the method TyperArgument inherits
        return self.metavar or plain(self.display_type(ctx))

    def usage_name(self: TyperArgument) -> str:
        """``FILES...`` in the usage line, as click writes it (typer 0.2x: ``{files}...``)."""
        name = self.metavar or self.name.upper()
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")

    TyperOption.display_type_rich = option_type  # type: ignore[method-assign]
    TyperArgument.display_type_rich = argument_type  # type: ignore[method-assign]
    if hasattr(TyperArgument, "_usage_display_name"):  # a private hook: left alone where typer has none
        TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
