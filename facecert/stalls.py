"""How long this process could not run: the stall clock a judge reads beside its timestamps.

A judge of the cadence measures a device by when its own process saw the poll. When that process
could not run (another program took the cores, the collector stopped every thread, one thread held
the interpreter), a poll that came on time is stamped late, and the gap looks too long: CADENCE-TASK
fired on our own reference device, on a correct one, on a loaded machine. Nobody can tell how late
the device really was from inside a process that was not running; what the process can tell is how
long it was held.

:class:`StallClock` counts it: a daemon thread sleeps :data:`PERIOD` at a time and adds up how much
longer than asked each sleep took (beyond :data:`NOISE`, the timer's ordinary jitter). The sum only
grows, like a clock; a judge reads it when it stamps a message (``Exchange.stall_started`` /
``stall_ended``) and widens a cadence window by what it advanced during the gap
(docs/architecture.md, Cadence). A stall still in progress counts when read, so the first message
after one is not stamped before the stall is known.

The thread costs a wake-up every 10 ms (about 0.1 % of a core here). It is a service, not engine
core: the engine only receives the numbers."""

from __future__ import annotations

import threading
import time

PERIOD = 0.01  # seconds between two readings of the thread: how finely a stall is seen
NOISE = 0.002  # oversleep up to this is the timer's own jitter, not a stall of the process


class StallClock:
    """Seconds this process was held beyond its sleeps, summed since :meth:`start`."""

    def __init__(self, period: float = PERIOD, noise: float = NOISE) -> None:
        self.period, self.noise = period, noise
        self._total = 0.0
        self._due = 0.0  # when the thread should wake next (0: not running)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StallClock:
        """Start counting (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None:
                self._due = time.monotonic() + self.period
                self._thread = threading.Thread(target=self._run, name="facecert-stall-clock", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1)

    def read(self) -> float:
        """The seconds counted so far, a stall in progress included (0.0 before :meth:`start`)."""
        with self._lock:
            if not self._due:
                return 0.0
            late = time.monotonic() - self._due
            return self._total + (late if late > self.noise else 0.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            now = time.monotonic()
            with self._lock:
                late = now - self._due
                if late > self.noise:
                    self._total += late
                self._due = now + self.period


_CLOCK = StallClock()


def stall_clock() -> StallClock:
    """This process's stall clock, started on first use (the mock server and the proxy read one)."""
    return _CLOCK.start()
