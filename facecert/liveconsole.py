"""A live console that never holds up the program it shows: lines queued, printed from a thread.

The peers show what they see as it happens (``facecert serve`` a line per exchange, ``facecert
proxy`` mitmdump's live findings). Printing where the event happens put the console in the path of
every answer: rich's rendering cost about as much CPU as judging and storing an exchange, and a
stdout nobody reads (a pipe whose reader paused, a terminal on hold) blocked the printer once its
buffer filled, and with it the server's event loop or mitmdump's output. :class:`LiveConsole` only
queues what it is given (bounded); a thread of its own prints what came in, a batch at a time:
rich markup on a terminal, plain text elsewhere (a file, a pipe, CI's log: a fraction of the cost).
When the console falls behind by more than ``capacity`` lines, the lines beyond are dropped,
counted and the count printed: the console is a view, the records are elsewhere.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Self

from rich.console import Console
from rich.markup import escape

CAPACITY = 10_000  # lines waiting to be printed before new ones are dropped
TICK_S = 0.1  # how often the printer takes what came in


class LiveConsole[Item]:
    """Queue items (never blocking the caller); a thread prints ``render(item, markup)`` of each."""

    def __init__(
        self,
        console: Console,
        render: Callable[[Item, bool], str],
        dropped_note: str = "line(s) not shown: the console fell behind",
        capacity: int = CAPACITY,
        tick_s: float = TICK_S,
    ) -> None:
        self.console, self.render, self.dropped_note = console, render, dropped_note
        self.capacity, self.tick_s = capacity, tick_s
        self.pending: collections.deque[Item] = collections.deque()
        self.dropped = 0  # since the last line that said so
        self.dropped_total = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.broken = False  # stdout went away (a closed pipe): nothing more is printed
        self.thread = threading.Thread(target=self._run, name="facecert-console", daemon=True)

    def start(self) -> Self:
        self.thread.start()
        return self

    def __call__(self, item: Item) -> None:
        """Queue ``item``, or count it dropped: O(1), whatever the console is doing."""
        with self.lock:
            if len(self.pending) < self.capacity:
                self.pending.append(item)
            else:
                self.dropped += 1
                self.dropped_total += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Print what is still queued (bounded by ``timeout``: a stdout that blocks is left behind)."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _take(self) -> tuple[list[Item], int]:
        with self.lock:
            items, dropped = list(self.pending), self.dropped
            self.pending.clear()
            self.dropped = 0
        return items, dropped

    def _run(self) -> None:
        while not self.broken:
            stopping = self.stopping.wait(self.tick_s)
            items, dropped = self._take()
            if items or dropped:
                self._print(items, dropped)
            if stopping:
                return

    def _print(self, items: list[Item], dropped: int) -> None:
        markup = self.console.is_terminal
        lines = [self.render(item, markup) for item in items]
        if dropped:
            note = f"… {dropped} {self.dropped_note}"
            lines.append(f"[yellow]{escape(note)}[/]" if markup else note)
        try:
            if markup:
                self.console.print("\n".join(lines), highlight=False, soft_wrap=True)
            else:
                self.console.file.write("\n".join(lines) + "\n")
                self.console.file.flush()
        except (OSError, ValueError):  # stdout closed (BrokenPipeError) or gone: the program carries on unseen
            self.broken = True
