"""Is the peer under test still there? And waiting on it without waiting in vain.

A device that stopped polling (POLL-STOPPED) or a server that stopped
answering (ANSWER-MISSING on every recent poll) cannot be examined further:
the scenario during which it went away fails with that rule, and every later
one ends at once as ``error`` with the same cause, instead of each waiting out
its own deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from facecert.certify.verdicts import RuleFailure, ScenarioError


@dataclass(frozen=True)
class Down:
    """Why the peer under test can no longer be examined."""

    rules: tuple[str, ...]
    message: str
    since: float  # epoch seconds: when it went away (its last sign of life)


def ensure_alive(session: Any) -> None:
    """At a scenario's start: a peer already gone makes the scenario an error at once."""
    down = session.down()
    if down is not None:
        raise ScenarioError(down.rules, f"not run: {down.message}")


def wait_for(
    session: Any,
    what: str,
    probe: Callable[[float], Any],
    timeout: float,
    rules: Iterable[str],
    explain: Callable[[], tuple[tuple[str, ...], str]] | None = None,
    step: float | None = None,
    cause_replaces: bool = False,
) -> Any:
    """Call ``probe(seconds)`` (which itself waits up to that long on an event) until it
    returns something truthy. The peer going away ends the wait at once (RuleFailure with
    its rule); running out of time fails with ``rules`` and what ``explain()`` says
    happened instead (its rules first: they are the root cause; with ``cause_replaces``
    they stand alone, when what explain found is by itself why nothing came)."""
    slice_s = step if step is not None else max(0.05, session.scaled("idle_interval_s") / 8)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            extra, why = explain() if explain is not None else ((), "")
            named = extra if extra and cause_replaces else (*extra, *rules)
            raise RuleFailure(named, f"{what} did not happen within {timeout:.1f} s" + (f": {why}" if why else ""))
        found = probe(min(slice_s, left))
        if found:
            return found
        down = session.down()
        if down is not None:
            raise RuleFailure(down.rules, f"{what} did not happen: {down.message}")


def timed(fn: Callable[[float], Any]) -> Callable[[float], Any]:
    """Adapt a ``wait(timeout)`` that raises TimeoutError into a probe that returns None."""

    def probe(seconds: float) -> Any:
        try:
            return fn(seconds)
        except TimeoutError:
            return None

    return probe
