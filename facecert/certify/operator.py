"""Talking to the person at the device or the platform: instructions and
countdowns while the suite waits for something only they can do."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from facecert.clicommon import stop_requested

PROGRESS_EVERY_S = 5.0


class Operator:
    """Prints what to do and waits, showing how long is left."""

    def __init__(self, console: Console | None = None, interactive: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        # nobody at the console (CI, a pipe): steps that need a person end as errors after a short wait
        self.interactive = sys.stdin is not None and sys.stdin.isatty() if interactive is None else interactive
        self._last_progress = 0.0

    def say(self, message: str) -> None:
        self.console.print(message, soft_wrap=True, highlight=False)

    def wait(self, what: str, probe: Callable[[float], Any], timeout: float) -> Any:
        """Call ``probe(step)`` (which itself waits up to ``step`` seconds on an
        event) until it returns something, showing a countdown."""
        deadline = time.monotonic() + timeout
        self._last_progress = time.monotonic()  # a wait shorter than PROGRESS_EVERY_S prints nothing
        with self.console.status(f"waiting for {what}") as status:
            while True:
                if stop_requested():  # its KeyboardInterrupt may have been lost (facecert.clicommon.STOP)
                    raise KeyboardInterrupt
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
                status.update(f"waiting for {what}: {left:4.0f} s left")
                self._log_progress(f"waiting for {what}", left)
                found = probe(min(1.0, left))
                if found:
                    return found

    def countdown(self, what: str, seconds: float) -> None:
        """Give a person ``seconds`` to act, showing how long is left (nothing to wait on)."""
        done = threading.Event()
        deadline = time.monotonic() + seconds
        self._last_progress = time.monotonic()
        with self.console.status(f"{what}") as status:
            while (left := deadline - time.monotonic()) > 0:
                if stop_requested():  # its KeyboardInterrupt may have been lost (facecert.clicommon.STOP)
                    raise KeyboardInterrupt
                status.update(f"{what}: {left:4.0f} s left")
                self._log_progress(what, left)
                done.wait(min(1.0, left))

    def _log_progress(self, what: str, left: float) -> None:
        """Without a terminal (CI, a pipe) the status line shows nothing: a plain line
        every PROGRESS_EVERY_S seconds says the run is alive and how long is left."""
        if self.console.is_terminal:
            return
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.console.print(f"{what}: {left:.0f} s left", soft_wrap=True, highlight=False, markup=False)
