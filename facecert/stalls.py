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

A process can also be slow to answer while it runs: a commit the disk was slow to take, a lock
another thread held, a loop behind. The judge stamps an answer when it is decided and stored with
its exchange, before it is sent, so a device that heard it 0.4 s late was judged 0.4 s late for it
(CADENCE-TASK on our own reference device, whose commit of its result waited). The HTTP layer
tells the clock about each answer it sent later than its stamp (:meth:`StallClock.held_since`).
That time counts like a stall of the process: what was held at the same time as something else
(two answers, an oversleep of the thread) is counted once.

The thread costs a wake-up every 10 ms (about 0.1 % of a core here). It is a service, not engine
core: the engine only receives the numbers."""

from __future__ import annotations

import threading
import time
from collections import deque

PERIOD = 0.01  # seconds between two readings of the thread: how finely a stall is seen
NOISE = 0.002  # oversleep up to this is the timer's own jitter, not a stall of the process
# how long the time already counted is remembered, so that a hold over it is not counted twice: far longer
# than an answer is held (a hold longer than this may count again what it overlaps before it)
SPAN_MEMORY_S = 10.0


class StallClock:
    """Seconds this process was held beyond its sleeps, summed since :meth:`start`."""

    def __init__(self, period: float = PERIOD, noise: float = NOISE) -> None:
        self.period, self.noise = period, noise
        self._total = 0.0
        self._due = 0.0  # when the thread should wake next (0: not running)
        self._since = 0.0  # when it started (time.monotonic()): nothing before is counted
        # the time counted lately, as disjoint (begin, end) spans in order: time in them is not counted again
        self._spans: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StallClock:
        """Start counting (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None:
                self._since = time.monotonic()
                self._due = self._since + self.period
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
            now = time.monotonic()
            late = now - self._due
            return self._total + (self._uncounted(self._due, now) if late > self.noise else 0.0)

    def held_since(self, started: float) -> None:
        """Count the time from ``started`` (:func:`time.monotonic`) until now as a stall, when it is longer
        than the noise: an answer stamped then and handed to the socket only now. Nothing is counted
        while the clock is not running, nothing from before it started, and nothing twice."""
        now = time.monotonic()
        if now - started <= self.noise:
            return
        with self._lock:
            if self._due:
                self._count(max(started, self._since), now)

    def _uncounted(self, begin: float, end: float) -> float:
        """The part of ``begin``..``end`` no span covers. A span ends no later than anything counted after
        it (each ends at the moment it is counted), so the ones that overlap are the last few."""
        new = end - begin
        for span_begin, span_end in reversed(self._spans):
            if span_end <= begin:
                break
            new -= max(0.0, min(span_end, end) - max(span_begin, begin))
        return max(0.0, new)

    def _count(self, begin: float, end: float) -> None:
        """Add the part of ``begin``..``end`` not counted yet, and remember it counted (under the lock)."""
        self._total += self._uncounted(begin, end)
        spans = self._spans
        while spans and spans[-1][1] >= begin:  # merged with the spans it overlaps: they stay disjoint
            span_begin, span_end = spans.pop()
            begin, end = min(begin, span_begin), max(end, span_end)
        spans.append((begin, end))
        while spans[0][1] < end - SPAN_MEMORY_S:
            spans.popleft()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            now = time.monotonic()
            with self._lock:
                if now - self._due > self.noise:
                    self._count(self._due, now)
                self._due = now + self.period


_CLOCK = StallClock()


def stall_clock() -> StallClock:
    """This process's stall clock, started on first use (the mock server and the proxy read one)."""
    return _CLOCK.start()
