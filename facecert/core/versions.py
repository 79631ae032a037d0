"""Protocol version strings ("1.2.3") compared as tuples.

Both functions are memoised: the engine asks them about the same few strings (the
catalogue's versions and ``since`` values) for every message it judges."""

from __future__ import annotations

import functools


def parse_version(text: str) -> tuple[int, ...]:
    try:
        return _parse(str(text))
    except ValueError:
        raise ValueError(f"not a protocol version: {text!r} (expected digits and dots, e.g. 1.8 or 1.2.3)") from None


@functools.lru_cache(maxsize=512)  # bounded: a version given on a command line or in a message is not ours
def _parse(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().lstrip("vV").split("."))


@functools.lru_cache(maxsize=4096)
def since_ok(since: str | None, version: str) -> bool:
    """True when something introduced in ``since`` exists in ``version``."""
    return since is None or parse_version(since) <= parse_version(version)
