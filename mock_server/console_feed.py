"""The live console of ``facecert serve``: a line per exchange, printed off the event loop.

The server announces every exchange to its listeners on the event loop; printing there made the
console part of every answer (CPU, and a stdout nobody read stopped every device's answer once its
pipe filled). :class:`ConsoleFeed` is the listener instead: a :class:`~facecert.liveconsole.LiveConsole`
of exchange events, whose dropped lines are all in the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape

from facecert.core.jsonsafe import printable
from facecert.liveconsole import CAPACITY, TICK_S, LiveConsole

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def exchange_line(event: dict[str, Any], markup: bool = True) -> str:
    """One line per exchange, its findings below it: rich markup, or the same text plain."""

    def styled(style: str, text: str) -> str:
        return f"[{style}]{text}[/]" if markup and style else text

    def text(value: Any) -> str:  # a device's id, a path, a message quoting a device: never raw control bytes
        shown = printable(str(value))
        return escape(shown) if markup else shown

    status = event.get("status")
    what = event.get("endpoint") or event.get("path") or event.get("kind")
    shown = "no answer" if status is None else str(status)
    colour = "green" if status is not None and 200 <= status < 300 else "red"
    head = f"{styled(colour, f'{text(shown):>9}')} {text(event.get('device_id') or '-'):24} {text(what)}"
    if event.get("kind") == "download":
        head += f" ({event.get('bytes')} bytes, {'completed' if event.get('completed') else 'aborted'})"
    lines = [head]
    for finding in event.get("findings") or []:
        label = f"{finding['severity'].upper():7} {finding['rule']}"
        lines.append(f"          {styled(_STYLE.get(finding['severity'], ''), label)} {text(finding['message'])}")
    return "\n".join(lines)


Event = dict[str, Any] | Callable[[], dict[str, Any]]


def _event_line(event: Event, markup: bool) -> str:
    return exchange_line(event() if callable(event) else event, markup)


class ConsoleFeed(LiveConsole[Event]):
    """The platform's listener for ``facecert serve``: exchange events, printed by :func:`exchange_line`.
    It ``takes_factory``: the platform hands it the function that makes an event, called here on the
    printer's thread (the findings' strict copies cost the event loop nothing); a dict is taken too."""

    takes_factory = True

    def __init__(self, console: Console, capacity: int = CAPACITY, tick_s: float = TICK_S) -> None:
        super().__init__(
            console,
            _event_line,
            "exchange line(s) not shown: the console fell behind (all are in the database)",
            capacity,
            tick_s,
        )
