"""The live console of ``facecert serve``: a line per exchange, printed off the event loop.

The server announces every exchange to its listeners on the event loop. Printing there made the
console part of every answer: rich's rendering cost about as much CPU as judging and storing the
exchange, and a stdout nobody reads (a pipe whose reader paused, a terminal on hold) blocked the
loop once its buffer filled, so every device waited on the console. :class:`ConsoleFeed` is the
listener instead: it only queues the event (bounded), and a thread of its own prints what came
in, a batch at a time: with rich's markup on a terminal, as plain text elsewhere (a file, a pipe,
CI's log), which costs a fraction. When the console falls behind by more than ``capacity`` lines,
the lines beyond are dropped and counted, and the count is printed: the console is a view, every
exchange is in the database.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from rich.console import Console
from rich.markup import escape

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
CAPACITY = 10_000  # lines waiting to be printed before new ones are dropped
TICK_S = 0.1  # how often the printer takes what came in


def exchange_line(event: dict[str, Any], markup: bool = True) -> str:
    """One line per exchange, its findings below it: rich markup, or the same text plain."""

    def styled(style: str, text: str) -> str:
        return f"[{style}]{text}[/]" if markup and style else text

    def text(value: Any) -> str:
        return escape(str(value)) if markup else str(value)

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


class ConsoleFeed:
    """A listener of the platform that never blocks it (see the module's docstring)."""

    def __init__(self, console: Console, capacity: int = CAPACITY, tick_s: float = TICK_S) -> None:
        self.console, self.capacity, self.tick_s = console, capacity, tick_s
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.dropped = 0  # since the last line that said so
        self.dropped_total = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.broken = False  # stdout went away (a closed pipe): nothing more is printed
        self.thread = threading.Thread(target=self._run, name="facecert-console", daemon=True)

    def start(self) -> ConsoleFeed:
        self.thread.start()
        return self

    def __call__(self, event: dict[str, Any]) -> None:
        """Called on the server's event loop for every exchange: queue it, or count it dropped."""
        with self.lock:
            if len(self.pending) < self.capacity:
                self.pending.append(event)
            else:
                self.dropped += 1
                self.dropped_total += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Print what is still queued (bounded by ``timeout``: a stdout that blocks is left behind)."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _take(self) -> tuple[list[dict[str, Any]], int]:
        with self.lock:
            events, dropped = list(self.pending), self.dropped
            self.pending.clear()
            self.dropped = 0
        return events, dropped

    def _run(self) -> None:
        while not self.broken:
            stopping = self.stopping.wait(self.tick_s)
            events, dropped = self._take()
            if events or dropped:
                self._print(events, dropped)
            if stopping:
                return

    def _print(self, events: list[dict[str, Any]], dropped: int) -> None:
        markup = self.console.is_terminal
        lines = [exchange_line(event, markup) for event in events]
        if dropped:
            note = f"… {dropped} exchange line(s) not shown: the console fell behind (all are in the database)"
            lines.append(f"[yellow]{escape(note)}[/]" if markup else note)
        try:
            if markup:
                self.console.print("\n".join(lines), highlight=False)
            else:
                self.console.file.write("\n".join(lines) + "\n")
                self.console.file.flush()
        except (OSError, ValueError):  # stdout closed (BrokenPipeError) or gone: the server carries on unseen
            self.broken = True
