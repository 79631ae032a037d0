"""pytest-bdd wiring for the certification plans: the live session and the
per-scenario state. Step definitions live in the modules imported here."""

from __future__ import annotations

from typing import Any

import pytest

from facecert.certify import context
from steps.common import *  # noqa: F401,F403 - step definitions are fixtures
from steps.device_steps import *  # noqa: F401,F403
from steps.server_steps import *  # noqa: F401,F403


@pytest.fixture
def cert() -> Any:
    """The running certification session (started by `facecert certify`)."""
    return context.current()


@pytest.fixture
def scn() -> dict[str, Any]:
    """What one scenario remembers between its steps (request ids, start marks)."""
    return {}
