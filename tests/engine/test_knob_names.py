"""One naming style for what breaks our peers on purpose: device fault knobs and
server misbehaviours are hyphenated, and the old underscore spellings are read
wherever a name is given (facecert.core.knobs.knob_name)."""

from __future__ import annotations

import re

import pytest

from facecert.core.knobs import knob_name
from facecert.mock_device.config import DeviceConfig
from facecert.mock_device.faults import FAULTS, check_faults
from facecert.mock_server.misbehaviours import MISBEHAVIOURS, misbehaviour_name
from facecert.mock_server.platform import Rejected

HYPHENATED = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def test_every_name_is_hyphenated() -> None:
    names = [fault.name for fault in FAULTS] + list(MISBEHAVIOURS)
    assert [name for name in names if not HYPHENATED.match(name)] == []


def test_old_spellings_are_read() -> None:
    assert knob_name(" capture_no_echo ") == "capture-no-echo"
    assert check_faults(["cadence_idle", "missing-field"]) == {"cadence-idle", "missing-field"}
    assert DeviceConfig(server="http://127.0.0.1:1", faults={"result_for_idle"}).faults == {"result-for-idle"}
    assert misbehaviour_name("capture_5xx") == "capture-5xx"


def test_unknown_names_say_so() -> None:
    with pytest.raises(ValueError, match="unknown fault knob.*no-such-knob.*known: cadence-idle"):
        check_faults(["no_such_knob"])
    with pytest.raises(ValueError, match="unknown misbehaviour 'nope'; one of duplicate-request-id"):
        misbehaviour_name("nope")


def test_the_platform_reads_old_spellings() -> None:
    from facecert.mock_server.config import ServerConfig
    from facecert.mock_server.server import MockServer

    server = MockServer(ServerConfig())  # not started: the platform alone
    try:
        server.set_misbehaviour("capture_code_nonzero")
        assert server.platform.misbehaving == {"capture-code-nonzero"}
        assert server.platform.misbehaves("capture-code-nonzero") and server.platform.misbehaves("capture_code_nonzero")
        with pytest.raises(Rejected, match="unknown misbehaviour"):
            server.set_misbehaviour("capture-code-zero")
    finally:
        server.stop()
