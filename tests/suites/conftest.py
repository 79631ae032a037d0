"""The mutation matrix starts in the background as collection ends (tests/suites/matrix_job.py), so that
its rows run beside the other tests; tests/suites/test_matrix.py, scheduled last, reads their outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

MATRIX_MODULE = "tests/suites/test_matrix.py"


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        start_matrix(session)


def start_matrix(session: pytest.Session) -> Path | None:
    """The matrix job of the rows whose tests the session selected, started by the first worker to get
    here (idempotent); its folder, or None when no row was selected."""
    from tests.background import claim, launch

    keys = [
        item.callspec.id
        for item in session.items
        if item.nodeid.startswith(f"{MATRIX_MODULE}::test_knob_is_caught[") and hasattr(item, "callspec")
    ]
    if not keys:
        return None
    folder, first, watch = claim(session.config, "matrix")
    if first:
        launch(folder, "tests.suites.matrix_job", str(folder), *keys, "--watch", str(watch))
    return folder
