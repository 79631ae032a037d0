"""A stop whose KeyboardInterrupt was lost still stops a long wait. Python raises it in whatever the main
thread runs next, and one raised inside a weakref callback or a ``__del__`` is printed as "Exception
ignored" and dropped: a fresh-clone CI rehearsal saw ``certify device`` go on waiting for a device's first
poll after Ctrl-C (its ten minutes). The signal also sets facecert.clicommon.STOP, which the waits read."""

from __future__ import annotations

import gc
import signal
import time
import weakref

import pytest

from facecert.certify.operator import Operator
from facecert.clicommon import STOP, sigterm_interrupts


class _Collected:
    """Something whose weakref callback runs the signal's handler, as the garbage collector may."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the interrupt lost, on purpose
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_wait_stops_though_the_interrupt_was_lost(how: signal.Signals) -> None:
    # Ctrl-C as a command's process has it (Python's handler; a pytest-xdist worker ignores SIGINT)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _wait_stopped(how)
    finally:
        signal.signal(signal.SIGINT, before)


def _wait_stopped(how: signal.Signals) -> None:
    with sigterm_interrupts():
        thing = _Collected()
        # the callback's exception is printed and ignored: the KeyboardInterrupt is lost there
        ref = weakref.ref(thing, lambda _: signal.raise_signal(how))
        del thing
        gc.collect()
        assert ref() is None and STOP.is_set()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            Operator(interactive=False).wait("a device that never comes", lambda step: time.sleep(step), 30)
        assert time.monotonic() - started < 3
    assert not STOP.is_set()  # the command is over: the next one starts without it
