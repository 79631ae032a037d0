"""Protocol version strings ("1.2.3") compared as tuples."""

from __future__ import annotations


def parse_version(text: str) -> tuple[int, ...]:
    cleaned = str(text).strip().lstrip("vV")
    try:
        return tuple(int(part) for part in cleaned.split("."))
    except ValueError:
        raise ValueError(f"not a protocol version: {text!r} (expected digits and dots, e.g. 1.8 or 1.2.3)") from None


def since_ok(since: str | None, version: str) -> bool:
    """True when something introduced in ``since`` exists in ``version``."""
    return since is None or parse_version(since) <= parse_version(version)
