"""The running certification session, for the pytest-bdd steps.

Steps run inside pytest, started by ``facecert certify`` in the same
process; this module is how they find the live peers.
"""

from __future__ import annotations

from typing import Any

_CURRENT: Any = None


def install(session: Any) -> None:
    global _CURRENT
    _CURRENT = session


def current() -> Any:
    if _CURRENT is None:
        raise RuntimeError("no certification session: run the plans with `facecert certify device|server`")
    return _CURRENT


def clear() -> None:
    install(None)
